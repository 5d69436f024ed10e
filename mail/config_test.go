package mail_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/veza/backend/mail"
)

func load(t *testing.T, env map[string]string) (mail.Config, []string) {
	t.Helper()
	var buf bytes.Buffer
	logger := zerolog.New(&buf)
	cfg, problems := mail.LoadConfigWithLogger(func(k string) string { return env[k] }, &logger)
	require.Empty(t, problems)
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		if l != "" {
			lines = append(lines, l)
		}
	}
	return cfg, lines
}

func TestLoadEmptyEnv(t *testing.T) {
	t.Parallel()
	cfg, logs := load(t, nil)
	require.Empty(t, logs)
	require.Equal(t, mail.Config{TLS: mail.TLSMandatory}, cfg, "no host or port default is injected")
	require.False(t, cfg.Enabled())
}

func TestLoadCanonical(t *testing.T) {
	t.Parallel()
	cfg, logs := load(t, map[string]string{
		"SMTP_HOST": "smtp.example.com", "SMTP_PORT": "2525", "SMTP_USERNAME": "u", "SMTP_PASSWORD": " p w ",
		"SMTP_FROM": "no-reply@veza.test", "SMTP_FROM_NAME": "Veza", "SMTP_TLS": "implicit",
	})
	require.Empty(t, logs)
	require.Equal(t, mail.Config{Host: "smtp.example.com", Port: 2525, Username: "u", Password: " p w ",
		From: "no-reply@veza.test", FromName: "Veza", TLS: mail.TLSImplicit}, cfg)
}

func TestDeprecatedNamesFallBackWithOneWarningEach(t *testing.T) {
	t.Parallel()
	for deprecated, canonical := range map[string]string{"SMTP_USER": "SMTP_USERNAME", "FROM_EMAIL": "SMTP_FROM", "FROM_NAME": "SMTP_FROM_NAME"} {
		t.Run(deprecated, func(t *testing.T) {
			t.Parallel()
			cfg, logs := load(t, map[string]string{deprecated: "old-value"})
			require.Len(t, logs, 1)
			require.Contains(t, logs[0], `"deprecated_var":"`+deprecated+`"`)
			require.Contains(t, logs[0], `"use_instead":"`+canonical+`"`)
			require.Contains(t, logs[0], `"remove_in":"v1.1.0"`)
			require.Contains(t, logs[0], `"level":"warn"`)
			got := map[string]string{"SMTP_USERNAME": cfg.Username, "SMTP_FROM": cfg.From, "SMTP_FROM_NAME": cfg.FromName}
			require.Equal(t, "old-value", got[canonical])
		})
	}
}

func TestCanonicalBeatsDeprecatedSilently(t *testing.T) {
	t.Parallel()
	cfg, logs := load(t, map[string]string{
		"SMTP_USER": "old", "SMTP_USERNAME": "new",
		"FROM_EMAIL": "old@x.test", "SMTP_FROM": "new@x.test",
		"FROM_NAME": "Old", "SMTP_FROM_NAME": "New",
	})
	require.Empty(t, logs)
	require.Equal(t, "new", cfg.Username)
	require.Equal(t, "new@x.test", cfg.From)
	require.Equal(t, "New", cfg.FromName)
}

func TestNilLogger(t *testing.T) {
	t.Parallel()
	cfg, problems := mail.LoadConfigWithLogger(func(k string) string {
		return map[string]string{"SMTP_USER": "old"}[k]
	}, nil)
	require.Empty(t, problems)
	require.Equal(t, "old", cfg.Username)
}

func TestMalformedValuesNameTheVariable(t *testing.T) {
	t.Parallel()
	cfg, problems := mail.LoadConfig(func(k string) string {
		return map[string]string{"SMTP_PORT": "70000", "SMTP_TLS": "STARTTLS"}[k]
	})
	require.Len(t, problems, 2)
	require.Equal(t, "SMTP_PORT", problems[0].Var)
	require.Equal(t, "SMTP_TLS", problems[1].Var)
	require.Zero(t, cfg.Port)
	require.Equal(t, mail.TLSMandatory, cfg.TLS)
}

func TestRenderEveryTemplate(t *testing.T) {
	t.Parallel()
	data := map[string]any{"Link": "http://x/verify-email?token=abc", "ExpiresIn": "2 days", "OrderID": "o-1",
		"Items": []map[string]string{{"Title": "Song", "Amount": "9.99 EUR"}}, "Total": "9.99 EUR"}
	for _, name := range []string{mail.TemplateVerifyEmail, mail.TemplatePasswordReset, mail.TemplatePurchaseReceipt, mail.TemplateRefundConfirmation} {
		msg, err := mail.Render(name, "a@b.test", data)
		require.NoError(t, err, name)
		require.NotEmpty(t, msg.Subject)
		require.NotEmpty(t, msg.Text)
		require.Contains(t, msg.HTML, "<html>")
	}
	_, err := mail.Render(mail.TemplateVerifyEmail, "a@b.test", map[string]any{})
	require.Error(t, err, "a missing link is an error, not a blank")
}
