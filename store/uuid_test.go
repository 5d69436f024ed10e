package store_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/stretchr/testify/require"

	"github.com/veza/backend/store"
	"github.com/veza/backend/store/dbtest"
)

func TestUUIDEncodesWithoutTheTextDetour(t *testing.T) {
	t.Parallel()
	plain := pgtype.NewMap()
	require.Contains(t, fmt.Sprintf("%T", plain.PlanEncode(pgtype.UUIDOID, pgtype.BinaryFormatCode, uuid.New())), "DriverValuer",
		"pgx alone goes through text")
	m := pgtype.NewMap()
	store.RegisterUUID(m)
	for _, v := range []any{uuid.New(), []uuid.UUID{uuid.New()}, &[]uuid.UUID{uuid.New()}[0]} {
		plan := m.PlanEncode(pgtype.UUIDOID, pgtype.BinaryFormatCode, v)
		if ids, ok := v.([]uuid.UUID); ok {
			plan = m.PlanEncode(pgtype.UUIDArrayOID, pgtype.BinaryFormatCode, ids)
		}
		require.NotNil(t, plan, "%T", v)
		require.NotContains(t, fmt.Sprintf("%T", plan), "DriverValuer", "%T", v)
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
