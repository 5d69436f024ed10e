package sandbox

import (
	"context"
	"fmt"
	"regexp"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rs/zerolog"

	"github.com/veza/backend/mail"
)

// Inbox is the development inbox: with the sandbox on and no SMTP_HOST,
// emails are kept in sandbox.emails and read at GET /sandbox/emails
// (their links included), instead of only being logged.
type Inbox struct {
	DB     *pgxpool.Pool
	Logger zerolog.Logger
}

// Send keeps the message and logs where to read it.
func (i *Inbox) Send(ctx context.Context, msg mail.Message) error {
	if _, err := i.DB.Exec(ctx, `INSERT INTO sandbox.emails (to_addr, subject, body) VALUES ($1, $2, $3)`, msg.To, msg.Subject, msg.Text); err != nil {
		return fmt.Errorf("sandbox inbox: %w", err)
	}
	i.Logger.Info().Str("to", msg.To).Str("subject", msg.Subject).Strs("links", links(msg.Text)).
		Msg("email kept in the sandbox inbox: GET /sandbox/emails?to=" + msg.To)
	return nil
}

// Email is one message in the inbox.
type Email struct {
	ID      int64     `json:"id"`
	To      string    `json:"to"`
	Subject string    `json:"subject"`
	Text    string    `json:"text"`
	Links   []string  `json:"links"`
	SentAt  time.Time `json:"sent_at"`
}

var linkRE = regexp.MustCompile(`https?://[^\s<>"]+`)

func links(text string) []string {
	out := linkRE.FindAllString(text, -1)
	if out == nil {
		out = []string{}
	}
	return out
}

// ListEmails reads the inbox, newest first; to filters by recipient.
func ListEmails(ctx context.Context, db *pgxpool.Pool, to string, limit int) ([]Email, error) {
	rows, err := db.Query(ctx, `SELECT id, to_addr, subject, body, sent_at FROM sandbox.emails
WHERE $1 = '' OR lower(to_addr) = lower($1) ORDER BY id DESC LIMIT $2`, to, limit)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Email, error) {
		var e Email
		err := r.Scan(&e.ID, &e.To, &e.Subject, &e.Text, &e.SentAt)
		e.Links = links(e.Text)
		return e, err
	})
}
