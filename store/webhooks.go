package store

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// Webhook processing results stored on the log row.
const (
	ResultQueued           = "queued"
	ResultOK               = "ok"
	ResultSkipped          = "skipped"
	ResultSignatureInvalid = "signature_invalid"
)

// ResultError formats an error result.
func ResultError(msg string) string {
	if len(msg) > 500 {
		msg = msg[:500]
	}
	return "error: " + msg
}

// WebhookLog is one delivery to the webhook endpoint.
type WebhookLog struct {
	ID             uuid.UUID `json:"id"`
	ReceivedAt     time.Time `json:"received_at"`
	RequestID      string    `json:"request_id"`
	SourceIP       *string   `json:"source_ip"`
	UserAgent      *string   `json:"user_agent"`
	SignatureValid bool      `json:"signature_valid"`
	EventID        *string   `json:"event_id"`
	EventType      *string   `json:"event_type"`
	Payload        string    `json:"payload"`
	// PayloadSHA256 and PayloadBytes describe the whole body when Payload
	// holds only a prefix of it (an invalid-signature delivery).
	PayloadSHA256    *string    `json:"payload_sha256,omitempty"`
	PayloadBytes     *int       `json:"payload_bytes,omitempty"`
	ProcessingResult string     `json:"processing_result"`
	ProcessedAt      *time.Time `json:"processed_at"`
}

// InsertWebhookLog writes one delivery's row and returns its id: the
// webhook handler logs refused deliveries (bad signature, unparseable) with
// it; valid ones go in batches through InsertDeliveries.
func InsertWebhookLog(ctx context.Context, q Querier, l *WebhookLog) (uuid.UUID, error) {
	var id uuid.UUID
	err := q.QueryRow(ctx, `INSERT INTO hyperswitch_webhook_log
		(request_id, source_ip, user_agent, signature_valid, event_id, event_type, payload, processing_result, payload_sha256, payload_bytes)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id`,
		l.RequestID, l.SourceIP, l.UserAgent, l.SignatureValid, l.EventID, l.EventType, l.Payload, l.ProcessingResult,
		l.PayloadSHA256, l.PayloadBytes).Scan(&id)
	if err != nil {
		return uuid.Nil, fmt.Errorf("error inserting webhook log: %w", err)
	}
	return id, nil
}

// SetWebhookResult records what processing did with a delivery. The log
// is partitioned by day: with the row's receivedAt the update reaches its
// one partition; without it (a job enqueued before the time was carried)
// it probes every partition's primary key, locking each, which on a 90-day
// log is most of an event's processing.
func SetWebhookResult(ctx context.Context, q Querier, id uuid.UUID, receivedAt *time.Time, result string) error {
	if receivedAt == nil {
		_, err := q.Exec(ctx, `UPDATE hyperswitch_webhook_log SET processing_result = $2, processed_at = now() WHERE id = $1`, id, result)
		return err
	}
	_, err := q.Exec(ctx, `UPDATE hyperswitch_webhook_log SET processing_result = $2, processed_at = now() WHERE id = $1 AND received_at = $3`,
		id, result, *receivedAt)
	return err
}

// InsertDeliveries writes the log rows of valid deliveries and records
// their event ids, all in one statement, so a batch of concurrent webhooks
// costs one round trip (group commit; see http's deliveryCommitter). Each
// log needs its ID set by the caller, and EventID and EventType. first[i]
// reports whether logs[i] carried an event not seen before (its ReceivedAt
// is then set, for the job); any other
// delivery (seen in an earlier transaction, or earlier in logs) is stored
// already marked skipped. Event ids are inserted in sorted order, so two
// batches holding the same redelivered events cannot deadlock each other.
func InsertDeliveries(ctx context.Context, tx pgx.Tx, logs []*WebhookLog) (first []bool, err error) {
	n := len(logs)
	ids := make([]uuid.UUID, n)
	requestIDs, eventIDs, eventTypes, payloads := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	sourceIPs, userAgents := make([]*string, n), make([]*string, n)
	index := make(map[uuid.UUID]int, n)
	for i, l := range logs {
		if l.ID == uuid.Nil || l.EventID == nil || l.EventType == nil {
			return nil, fmt.Errorf("delivery %d: id, event id and event type are required", i)
		}
		ids[i], requestIDs[i], sourceIPs[i], userAgents[i] = l.ID, l.RequestID, l.SourceIP, l.UserAgent
		eventIDs[i], eventTypes[i], payloads[i] = *l.EventID, *l.EventType, l.Payload
		index[l.ID] = i
	}
	rows, err := tx.Query(ctx, `WITH input AS (
		SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[]) WITH ORDINALITY
			AS t(id, request_id, source_ip, user_agent, event_id, event_type, payload, ord)),
	e AS (
		INSERT INTO hyperswitch_events (event_id, event_type, log_id)
		SELECT DISTINCT ON (event_id) event_id, event_type, id FROM input ORDER BY event_id, ord
		ON CONFLICT DO NOTHING RETURNING log_id, received_at),
	l AS (
		INSERT INTO hyperswitch_webhook_log
			(id, request_id, source_ip, user_agent, signature_valid, event_id, event_type, payload, processing_result, processed_at)
		SELECT i.id, i.request_id, i.source_ip, i.user_agent, true, i.event_id, i.event_type, i.payload,
			CASE WHEN e.log_id IS NULL THEN '`+ResultSkipped+`' ELSE '`+ResultQueued+`' END,
			CASE WHEN e.log_id IS NULL THEN now() END
		FROM input i LEFT JOIN e ON e.log_id = i.id)
	SELECT log_id, received_at FROM e`, ids, requestIDs, sourceIPs, userAgents, eventIDs, eventTypes, payloads)
	if err != nil {
		return nil, fmt.Errorf("error inserting webhook deliveries: %w", err)
	}
	type inserted struct {
		LogID      uuid.UUID
		ReceivedAt time.Time
	}
	firsts, err := pgx.CollectRows(rows, pgx.RowToStructByPos[inserted])
	if err != nil {
		return nil, fmt.Errorf("error inserting webhook deliveries: %w", err)
	}
	first = make([]bool, n)
	for _, f := range firsts {
		// The event's received_at is the statement's now(), its log row's
		// too: the job names the row's partition with it.
		first[index[f.LogID]] = true
		logs[index[f.LogID]].ReceivedAt = f.ReceivedAt
	}
	return first, nil
}

// RecordEvent remembers an event id (a synthetic one from reconciliation);
// first is false when it was seen before.
func RecordEvent(ctx context.Context, tx pgx.Tx, eventID, eventType string) (first bool, err error) {
	tag, err := tx.Exec(ctx, `INSERT INTO hyperswitch_events (event_id, event_type) VALUES ($1, $2) ON CONFLICT DO NOTHING`, eventID, eventType)
	if err != nil {
		return false, fmt.Errorf("error recording event: %w", err)
	}
	return tag.RowsAffected() == 1, nil
}

// ListWebhookLogs returns recent deliveries, newest first, optionally only
// those with the given signature validity.
//
// eventType, when not empty, keeps one event type ("dispute_lost") or one
// family ("dispute": every dispute_* line).
func ListWebhookLogs(ctx context.Context, q Querier, signatureValid *bool, eventType string, limit int) ([]WebhookLog, error) {
	rows, err := q.Query(ctx, `SELECT id, received_at, request_id, source_ip, user_agent, signature_valid, event_id, event_type,
		payload, processing_result, processed_at, payload_sha256, payload_bytes FROM hyperswitch_webhook_log
		WHERE ($1::boolean IS NULL OR signature_valid = $1)
		  AND ($3 = '' OR event_type = $3 OR starts_with(event_type, $3 || '_'))
		ORDER BY received_at DESC LIMIT $2`, signatureValid, limit, eventType)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (WebhookLog, error) {
		var l WebhookLog
		err := row.Scan(&l.ID, &l.ReceivedAt, &l.RequestID, &l.SourceIP, &l.UserAgent, &l.SignatureValid, &l.EventID, &l.EventType,
			&l.Payload, &l.ProcessingResult, &l.ProcessedAt, &l.PayloadSHA256, &l.PayloadBytes)
		return l, err
	})
}
