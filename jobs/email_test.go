package jobs_test

import (
	"context"
	"crypto/sha256"
	"net"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/veza/backend/jobargs"
	"github.com/veza/backend/jobs"
	"github.com/veza/backend/mail"
	"github.com/veza/backend/mail/mailtest"
	"github.com/veza/backend/ratelimit"
	"github.com/veza/backend/store"
	"github.com/veza/backend/store/dbtest"
)

type emailBundle struct {
	db     *store.DB
	client *jobs.Client
	smtp   mail.Config
}

// setupEmail runs a real River client whose email worker sends to smtpAddr
// (which may not be listening yet).
func setupEmail(t *testing.T, smtpAddr string) *emailBundle {
	t.Helper()
	pool := dbtest.Pool(t)
	db := store.New(pool, nil)
	host, portStr, _ := net.SplitHostPort(smtpAddr)
	port, err := strconv.Atoi(portStr)
	require.NoError(t, err)
	smtpCfg := mail.Config{Host: host, Port: port, TLS: mail.TLSNone, From: "no-reply@veza.test"}
	workers := river.NewWorkers()
	river.AddWorker(workers, &jobs.EmailWorker{
		DB: db, Sender: mail.NewSMTPSender(smtpCfg), PublicBaseURL: "http://front.test",
		Logger: zerolog.Nop(), RetryBase: 200 * time.Millisecond,
	})
	client, err := jobs.NewClient(pool, jobs.ClientOpts{River: riverConfig(), Logger: zerolog.Nop(), Workers: workers})
	require.NoError(t, err)
	return &emailBundle{db: db, client: client, smtp: smtpCfg}
}

// enqueueVerify creates a user and a verification token row and enqueues
// its email, in one transaction, as the register handler does.
func (b *emailBundle) enqueueVerify(t *testing.T, email string) (userID, tokenID uuid.UUID) {
	t.Helper()
	ctx := context.Background()
	require.NoError(t, b.db.InTx(ctx, func(tx pgx.Tx) error {
		u, err := store.CreateUser(ctx, tx, email, "x", store.RoleUser)
		if err != nil {
			return err
		}
		userID = u.ID
		tokenID, err = store.CreateEmailToken(ctx, tx, u.ID, store.PurposeVerifyEmail, time.Hour)
		if err != nil {
			return err
		}
		_, err = b.client.InsertTx(ctx, tx, jobargs.EmailArgs{Template: mail.TemplateVerifyEmail, UserID: u.ID, TokenID: &tokenID}, nil)
		return err
	}))
	return userID, tokenID
}

// startUntilCompleted starts the client and waits for its first job to
// complete.
func (b *emailBundle) startUntilCompleted(t *testing.T) {
	t.Helper()
	completed, cancel := b.client.Subscribe(river.EventKindJobCompleted)
	defer cancel()
	require.NoError(t, b.client.Start(context.Background()))
	t.Cleanup(func() { _ = b.client.Stop(context.Background()) })
	select {
	case <-completed:
	case <-time.After(15 * time.Second):
		t.Fatal("job did not complete")
	}
}

func freeLoopback(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

func TestEmailJobMintsTheTokenItSends(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	smtp := mailtest.Start(t, "127.0.0.1:0")
	b := setupEmail(t, smtp.Addr)
	_, tokenID := b.enqueueVerify(t, "ana@example.test")

	require.NoError(t, b.client.Start(ctx))
	t.Cleanup(func() { _ = b.client.Stop(context.Background()) })

	msg := smtp.WaitFor(t, 1, 15*time.Second)[0]
	require.Equal(t, []string{"ana@example.test"}, msg.To)
	require.Contains(t, msg.Text, "http://front.test/verify-email?token=")
	raw, err := url.QueryUnescape(msg.Token())
	require.NoError(t, err)
	require.NotEmpty(t, raw)

	// Only the hash is stored, and it is the hash of the mailed token.
	var stored []byte
	require.NoError(t, b.db.Primary().QueryRow(ctx, `SELECT token_hash FROM email_tokens WHERE id = $1`, tokenID).Scan(&stored))
	sum := sha256.Sum256([]byte(raw))
	require.Equal(t, sum[:], stored)

	// The job's args never held it.
	var args string
	require.NoError(t, b.db.Primary().QueryRow(ctx, `SELECT args::text FROM river_job WHERE kind = 'email'`).Scan(&args))
	require.NotContains(t, args, raw)
}

func TestEmailRetriesUntilSMTPIsBack(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	addr := freeLoopback(t) // nothing listens there yet: connection refused
	b := setupEmail(t, addr)
	b.enqueueVerify(t, "ben@example.test")

	failed, cancel := b.client.Subscribe(river.EventKindJobFailed)
	defer cancel()
	require.NoError(t, b.client.Start(ctx))
	t.Cleanup(func() { _ = b.client.Stop(context.Background()) })

	for i := 0; i < 2; i++ {
		select {
		case ev := <-failed:
			require.Equal(t, "email", ev.Job.Kind)
		case <-time.After(20 * time.Second):
			t.Fatal("expected a failed attempt while SMTP is down")
		}
	}
	smtp := mailtest.Start(t, addr) // the server comes back
	msgs := smtp.WaitFor(t, 1, 30*time.Second)
	require.Equal(t, []string{"ben@example.test"}, msgs[0].To)

	// Completed once; no duplicate mail for the one successful send.
	require.Eventually(t, func() bool {
		var state string
		_ = b.db.Primary().QueryRow(ctx, `SELECT state FROM river_job WHERE kind = 'email'`).Scan(&state)
		return state == "completed"
	}, 10*time.Second, 50*time.Millisecond)
	time.Sleep(300 * time.Millisecond)
	require.Len(t, smtp.Messages(), 1)
	var attempt int
	require.NoError(t, b.db.Primary().QueryRow(ctx, `SELECT attempt FROM river_job WHERE kind = 'email'`).Scan(&attempt))
	require.GreaterOrEqual(t, attempt, 3)
}

func TestEmailSkipsUsedToken(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	smtp := mailtest.Start(t, "127.0.0.1:0")
	b := setupEmail(t, smtp.Addr)
	userID, _ := b.enqueueVerify(t, "cy@example.test")
	// A newer request superseded the token before the job ran.
	require.NoError(t, b.db.InTx(ctx, func(tx pgx.Tx) error {
		return store.InvalidateEmailTokens(ctx, tx, userID, store.PurposeVerifyEmail)
	}))

	b.startUntilCompleted(t)
	require.Empty(t, smtp.Messages(), "no mail with a dead link")
}

// TestEmailNeverMintsATokenOfAnotherPurpose: a verification mail pointed at
// a password-reset token sends nothing and leaves the token unminted.
func TestEmailNeverMintsATokenOfAnotherPurpose(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	smtp := mailtest.Start(t, "127.0.0.1:0")
	b := setupEmail(t, smtp.Addr)
	var tokenID uuid.UUID
	require.NoError(t, b.db.InTx(ctx, func(tx pgx.Tx) error {
		u, err := store.CreateUser(ctx, tx, "dee@example.test", "x", store.RoleUser)
		if err != nil {
			return err
		}
		if tokenID, err = store.CreateEmailToken(ctx, tx, u.ID, store.PurposePasswordReset, time.Hour); err != nil {
			return err
		}
		_, err = b.client.InsertTx(ctx, tx, jobargs.EmailArgs{Template: mail.TemplateVerifyEmail, UserID: u.ID, TokenID: &tokenID}, nil)
		return err
	}))
	b.startUntilCompleted(t)
	require.Empty(t, smtp.Messages())
	var minted bool
	require.NoError(t, b.db.Primary().QueryRow(ctx, `SELECT token_hash IS NOT NULL FROM email_tokens WHERE id = $1`, tokenID).Scan(&minted))
	require.False(t, minted, "a reset token is never minted for a verification link")
}

// recordingSender keeps what it is asked to send.
type recordingSender struct{ sent []mail.Message }

func (s *recordingSender) Send(_ context.Context, msg mail.Message) error {
	s.sent = append(s.sent, msg)
	return nil
}

func TestReceiptEmailReadsBuyerAndOrder(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setupPay(t, 999, 1500)
	sender := &recordingSender{}
	w := &jobs.EmailWorker{DB: b.db, Sender: sender, Logger: zerolog.Nop()}
	receipt := func(userID, orderID uuid.UUID) error {
		return w.Work(ctx, job(jobargs.EmailArgs{Template: mail.TemplatePurchaseReceipt, UserID: userID, OrderID: &orderID}, 1, jobargs.EmailMaxAttempts))
	}

	require.NoError(t, receipt(b.order.BuyerID, b.order.ID))
	require.Len(t, sender.sent, 1)
	buyer, err := store.GetUser(ctx, b.db.Primary(), b.order.BuyerID)
	require.NoError(t, err)
	require.Equal(t, buyer.Email, sender.sent[0].To)
	require.Contains(t, sender.sent[0].Text, b.order.ID.String())
	require.Contains(t, sender.sent[0].Text, "24.99", "the order's total")

	require.NoError(t, receipt(uuid.New(), b.order.ID), "a deleted buyer: skipped, not retried")
	err = receipt(b.order.BuyerID, uuid.New())
	require.ErrorContains(t, err, "error reading order", "a missing order is an error, not a skip")
	require.Len(t, sender.sent, 1)
}

// pacedEmail is an email worker whose sender takes a token from the SMTP
// bucket (rate/s, burst 1, no wait: no token is a *ratelimit.Delay), as
// the service composes it, and a user with a verification token row.
func pacedEmail(t *testing.T, rate float64) (w *jobs.EmailWorker, limit *ratelimit.Limiter, smtp *mailtest.Server, job *river.Job[jobargs.EmailArgs], tokenID uuid.UUID) {
	t.Helper()
	ctx := context.Background()
	smtp = mailtest.Start(t, "127.0.0.1:0")
	pool := dbtest.Pool(t)
	db := store.New(pool, nil)
	host, portStr, _ := net.SplitHostPort(smtp.Addr)
	port, err := strconv.Atoi(portStr)
	require.NoError(t, err)
	limit, err = ratelimit.New(ctx, pool, "smtp", rate, 1, 0)
	require.NoError(t, err)
	sender := mail.NewSMTPSender(mail.Config{Host: host, Port: port, TLS: mail.TLSNone, From: "no-reply@veza.test"})
	w = &jobs.EmailWorker{DB: db, Sender: ratelimit.Sender(sender, limit), PublicBaseURL: "http://front.test", Logger: zerolog.Nop()}
	var userID uuid.UUID
	require.NoError(t, db.InTx(ctx, func(tx pgx.Tx) error {
		u, err := store.CreateUser(ctx, tx, "pace@example.test", "x", store.RoleUser)
		if err != nil {
			return err
		}
		userID = u.ID
		tokenID, err = store.CreateEmailToken(ctx, tx, u.ID, store.PurposeVerifyEmail, time.Hour)
		return err
	}))
	job = &river.Job[jobargs.EmailArgs]{JobRow: &rivertype.JobRow{ID: 1, Attempt: 1}, Args: jobargs.EmailArgs{Template: mail.TemplateVerifyEmail, UserID: userID, TokenID: &tokenID}}
	return w, limit, smtp, job, tokenID
}

// An email the SMTP bucket holds back has not minted its link: the relay's
// turn is taken before the token row is written, so an attempt that only
// waits (a snooze, no attempt used) changes nothing in the database.
func TestPacedEmailMintsNothingBeforeItsTurn(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w, limit, smtp, job, tokenID := pacedEmail(t, 10)
	require.NoError(t, limit.Block(ctx, time.Hour))

	err := w.Work(ctx, job)
	_, paced := ratelimit.AsDelay(err)
	require.True(t, paced, "no SMTP token: the job waits (%v)", err)
	var minted bool
	require.NoError(t, w.DB.Primary().QueryRow(ctx, `SELECT token_hash IS NOT NULL FROM email_tokens WHERE id = $1`, tokenID).Scan(&minted))
	require.False(t, minted, "the link was minted for a mail that waits for the relay")
	require.Empty(t, smtp.Messages())
}

// A mail that got its turn early sends on it: one message, one token. At
// burst 1 and a token every 1,000 s, taking a second token for the send
// itself would hold the mail back.
func TestPacedEmailSendsOnTheTurnItTook(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w, _, smtp, job, tokenID := pacedEmail(t, 0.001)

	require.NoError(t, w.Work(ctx, job))
	msg := smtp.WaitFor(t, 1, 15*time.Second)[0]
	raw, err := url.QueryUnescape(msg.Token())
	require.NoError(t, err)
	var stored []byte
	require.NoError(t, w.DB.Primary().QueryRow(ctx, `SELECT token_hash FROM email_tokens WHERE id = $1`, tokenID).Scan(&stored))
	sum := sha256.Sum256([]byte(raw))
	require.Equal(t, sum[:], stored, "the mailed link is the minted one")

	// The bucket is empty now: the next mail waits.
	_, paced := ratelimit.AsDelay(w.Work(ctx, job))
	require.True(t, paced)
}
