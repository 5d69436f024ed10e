package mail_test

import (
	"context"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/veza/backend/internal/logtest"
	"github.com/veza/backend/mail"
	"github.com/veza/backend/mail/mailtest"
)

func TestSMTPSenderDelivers(t *testing.T) {
	t.Parallel()
	srv := mailtest.Start(t, "127.0.0.1:0")
	sender := mail.NewSender(mail.Config{Host: srv.Host, Port: srv.Port, TLS: mail.TLSNone, From: "no-reply@veza.test", FromName: "Veza"}, zerolog.Nop(), false)
	msg, err := mail.Render(mail.TemplateVerifyEmail, "ana@example.test", map[string]any{"Link": "http://localhost:8080/verify-email?token=tok123", "ExpiresIn": "2 days"})
	require.NoError(t, err)
	require.NoError(t, sender.Send(context.Background(), msg))

	got := srv.WaitFor(t, 1, 5*time.Second)[0]
	require.Equal(t, "no-reply@veza.test", got.From)
	require.Equal(t, []string{"ana@example.test"}, got.To)
	require.Equal(t, "Confirm your email for Veza", got.Subject)
	require.Contains(t, got.Text, "http://localhost:8080/verify-email?token=tok123")
	require.Contains(t, got.HTML, `href="http://localhost:8080/verify-email?token=tok123"`)
	require.Equal(t, "tok123", got.Token())
}

func TestMandatoryTLSRefusesPlainServer(t *testing.T) {
	t.Parallel()
	srv := mailtest.Start(t, "127.0.0.1:0")
	sender := mail.NewSender(mail.Config{Host: srv.Host, Port: srv.Port, TLS: mail.TLSMandatory, From: "no-reply@veza.test"}, zerolog.Nop(), false)
	err := sender.Send(context.Background(), mail.Message{To: "a@b.test", Subject: "s", Text: "t"})
	require.Error(t, err, "a server without STARTTLS must not get the mail under the mandatory policy")
	require.Empty(t, srv.Messages())
}

func TestSenderWithoutFromFails(t *testing.T) {
	t.Parallel()
	sender := mail.NewSender(mail.Config{Host: "127.0.0.1", Port: 1, TLS: mail.TLSNone}, zerolog.Nop(), false)
	require.ErrorIs(t, sender.Send(context.Background(), mail.Message{To: "a@b.test"}), mail.ErrNoSender)
}

func TestLogSender(t *testing.T) {
	t.Parallel()
	var logs logtest.Buffer
	sender := mail.NewSender(mail.Config{}, zerolog.New(&logs), false)
	require.NoError(t, sender.Send(context.Background(), mail.Message{To: "a@b.test", Subject: "Hi", Text: "secret link"}))
	require.Contains(t, logs.String(), "a@b.test")
	require.NotContains(t, logs.String(), "secret link", "bodies stay out of logs outside development")

	var devLogs logtest.Buffer
	dev := mail.NewSender(mail.Config{}, zerolog.New(&devLogs), true)
	require.NoError(t, dev.Send(context.Background(), mail.Message{To: "a@b.test", Subject: "Hi", Text: "dev link"}))
	require.Contains(t, devLogs.String(), "dev link")
}
