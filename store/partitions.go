package store

import (
	"context"
	"fmt"
	"time"
)

// LogTables are the webhook logs partitioned by UTC day on received_at
// (migration 0014): each has day partitions <table>_pYYYYMMDD and a
// <table>_default that catches a delivery whose day has none yet.
var LogTables = []string{"hyperswitch_webhook_log", "stripe_webhook_log"}

// utcDay is t's UTC calendar day.
func utcDay(t time.Time) time.Time {
	t = t.UTC()
	return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
}

// EnsureLogPartitions creates every log's partitions for the UTC days from
// first to last (rows of those days waiting in a default partition move
// into theirs) and returns how many it created.
func EnsureLogPartitions(ctx context.Context, q Querier, first, last time.Time) (int, error) {
	created := 0
	for _, table := range LogTables {
		var n int
		if err := q.QueryRow(ctx, `SELECT veza_partition_days($1, $2::date, $3::date)`, table, utcDay(first), utcDay(last)).Scan(&n); err != nil {
			return created, fmt.Errorf("error creating partitions of %s: %w", table, err)
		}
		created += n
	}
	return created, nil
}

// DropLogPartitionsBefore drops every log's day partitions wholly older
// than cutoff (days before cutoff's UTC day: whole days only, so rows stay
// up to a day past their retention) and returns how many. Each drop is a
// catalog change, whatever the rows: constant time, no dead tuples. Call it
// in a transaction with a lock_timeout: dropping a partition locks its
// parent for a moment.
func DropLogPartitionsBefore(ctx context.Context, q Querier, cutoff time.Time) (int, error) {
	dropped := 0
	for _, table := range LogTables {
		var n int
		if err := q.QueryRow(ctx, `SELECT veza_drop_day_partitions($1, $2::date)`, table, utcDay(cutoff)).Scan(&n); err != nil {
			return dropped, fmt.Errorf("error dropping partitions of %s: %w", table, err)
		}
		dropped += n
	}
	return dropped, nil
}

// LogPartitions lists a log's day partitions, oldest first (tests, docs).
func LogPartitions(ctx context.Context, q Querier, table string) ([]string, error) {
	rows, err := q.Query(ctx, `SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
		WHERE i.inhparent = $1::regclass ORDER BY c.relname`, table)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return nil, err
		}
		out = append(out, name)
	}
	return out, rows.Err()
}

// DeleteDefaultLogRowsBefore deletes up to limit rows older than cutoff
// from each log's default partition (deliveries of a day that had no
// partition when they came; normally none) and returns how many.
func DeleteDefaultLogRowsBefore(ctx context.Context, q Querier, cutoff time.Time, limit int) (int64, error) {
	var total int64
	for _, table := range LogTables {
		def := table + "_default"
		tag, err := q.Exec(ctx, `DELETE FROM `+def+` WHERE id = ANY(ARRAY(SELECT id FROM `+def+` WHERE received_at < $1 LIMIT $2))`, cutoff, limit)
		if err != nil {
			return total, err
		}
		total += tag.RowsAffected()
	}
	return total, nil
}

// DeleteEventsBefore deletes up to limit dedupe rows (hyperswitch_events,
// stripe_events) received before cutoff, per table, and returns how many.
// These narrow tables are the dedupe authority; their retention
// (WEBHOOK_EVENT_RETENTION_DAYS) outlasts the providers' redeliveries.
func DeleteEventsBefore(ctx context.Context, q Querier, cutoff time.Time, limit int) (int64, error) {
	var total int64
	for _, table := range []string{"hyperswitch_events", "stripe_events"} {
		// = ANY(ARRAY(...)): the batch's keys first (by received_at),
		// then each row by its primary key. An IN (subquery) is planned as
		// a semi-join that may read the whole table to match the batch.
		tag, err := q.Exec(ctx, `DELETE FROM `+table+` WHERE event_id = ANY(ARRAY(SELECT event_id FROM `+table+` WHERE received_at < $1 LIMIT $2))`, cutoff, limit)
		if err != nil {
			return total, err
		}
		total += tag.RowsAffected()
	}
	return total, nil
}
