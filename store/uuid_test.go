package store_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/veza/backend/store"
	"github.com/veza/backend/store/dbtest"
)

func TestUUIDEncodesWithoutTheTextDetour(t *testing.T) {
	t.Parallel()
	require.Contains(t, uuidPlans(pgtype.NewMap())[0], "DriverValuer", "pgx alone goes through text")
	m := pgtype.NewMap()
	store.RegisterUUID(m)
	requireDirectUUIDPlans(t, m)
}

// The service's pools (store.Open) and the test pools register the plan on
// every connection.
func TestPoolsRegisterTheUUIDPlan(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, err := store.Open(ctx, store.Opts{URL: dbtest.URL(t), MaxConns: 2, WorkerMaxConns: 3})
	require.NoError(t, err)
	defer db.Close()
	for _, pool := range []*pgxpool.Pool{db.Primary(), db.Workers().Primary(), dbtest.Pool(t)} {
		conn, err := pool.Acquire(ctx)
		require.NoError(t, err)
		m := conn.Conn().TypeMap()
		conn.Release() // before asserting: Close waits for acquired connections
		requireDirectUUIDPlans(t, m)
	}
}

// uuidPlans names the encode plans for a uuid, an array of them and a
// pointer to one.
func uuidPlans(m *pgtype.Map) []string {
	id := uuid.New()
	return []string{
		fmt.Sprintf("%T", m.PlanEncode(pgtype.UUIDOID, pgtype.BinaryFormatCode, id)),
		fmt.Sprintf("%T", m.PlanEncode(pgtype.UUIDArrayOID, pgtype.BinaryFormatCode, []uuid.UUID{id})),
		fmt.Sprintf("%T", m.PlanEncode(pgtype.UUIDOID, pgtype.BinaryFormatCode, &id)),
	}
}

func requireDirectUUIDPlans(t *testing.T, m *pgtype.Map) {
	t.Helper()
	for _, plan := range uuidPlans(m) {
		require.NotEqual(t, "<nil>", plan)
		require.NotContains(t, plan, "DriverValuer")
	}
}

// The values arrive intact: one id, an array, a pointer and a nil pointer.
func TestUUIDRoundTrip(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := dbtest.Pool(t)
	id, other := uuid.New(), uuid.New()
	var nilID *uuid.UUID
	var gotID uuid.UUID
	var gotIDs []uuid.UUID
	var gotPtr, gotNil *uuid.UUID
	var text string
	require.NoError(t, pool.QueryRow(ctx, `SELECT $1::uuid, $2::uuid[], $3::uuid, $4::uuid, $1::uuid::text`, id, []uuid.UUID{id, other}, &other, nilID).
		Scan(&gotID, &gotIDs, &gotPtr, &gotNil, &text))
	require.Equal(t, id, gotID)
	require.Equal(t, []uuid.UUID{id, other}, gotIDs)
	require.Equal(t, other, *gotPtr)
	require.Nil(t, gotNil)
	require.Equal(t, id.String(), text)
}
