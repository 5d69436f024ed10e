package config_test

import (
	"bytes"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/veza/backend/config"
	"github.com/veza/backend/jobargs"
	"github.com/veza/backend/mail"
)

func envFunc(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// prodBase is a production environment that passes every rule; cases break
// one rule each.
func prodBase() map[string]string {
	return map[string]string{
		"APP_ENV":           "production",
		"DATABASE_URL":      "postgres://app@db/veza",
		"SMTP_HOST":         "smtp.example.com",
		"RIVER_UI_USERNAME": "ops",
		"RIVER_UI_PASSWORD": "s3cret-ui",
	}
}

func TestDefaults(t *testing.T) {
	t.Parallel()
	cfg, err := config.Load(envFunc(nil))
	require.NoError(t, err)
	require.NoError(t, cfg.ValidateForEnvironment(zerolog.Nop()))
	require.Equal(t, config.Development, cfg.Env)
	require.Equal(t, ":8080", cfg.HTTPAddr)
	require.Equal(t, config.DefaultDatabaseURL, cfg.DatabaseURL)
	require.Equal(t, "local", cfg.TrackStorageBackend)
	require.Equal(t, "./data/tracks", cfg.TrackStorageDir)
	require.Equal(t, 90, cfg.Hyperswitch.WebhookLogRetentionDays)
	require.True(t, cfg.Reconcile.Enabled)
	require.Equal(t, time.Hour, cfg.Reconcile.Interval)
	require.Equal(t, 30*time.Minute, cfg.Reconcile.OrderStuckAfter)
	require.Equal(t, 30*time.Minute, cfg.Reconcile.RefundStuckAfter)
	require.Equal(t, 5*time.Minute, cfg.Reconcile.RefundOrphanAfter)
	require.Equal(t, 7*24*time.Hour, cfg.Reconcile.DisputeStuckAfter)
	require.Equal(t, 50, cfg.Reconcile.BatchLimit)
	require.Equal(t, 1000, cfg.Stripe.PlatformFeeBPS)
	require.Equal(t, jobargs.Retry{MaxAttempts: 30, Base: time.Minute, Max: time.Hour}, cfg.Transfer)
	require.Equal(t, jobargs.Retry{MaxAttempts: 30, Base: time.Minute, Max: time.Hour}, cfg.Reversal.Retry, "REVERSAL_MAX_RETRIES=29 retries after the first attempt")
	require.Equal(t, 23*time.Hour, cfg.Stripe.KeyWindow)
	require.Equal(t, time.Hour, cfg.BalanceWait)
	// The default budgets outlast a day of Stripe trouble.
	for _, r := range []jobargs.Retry{cfg.Transfer, cfg.Reversal.Retry} {
		var span time.Duration
		for retry := range r.MaxAttempts - 1 {
			span += r.Delay(retry)
		}
		require.GreaterOrEqual(t, span, 24*time.Hour)
	}
	require.True(t, cfg.Reversal.Enabled)
	require.Equal(t, mail.TLSMandatory, cfg.SMTP.TLS)
	require.Equal(t, "http://localhost:8080", cfg.PublicBaseURL)
	require.Equal(t, time.Minute, cfg.River.JobTimeout)
	require.Equal(t, time.Hour, cfg.River.RescueStuckJobsAfter)
	for _, q := range jobargs.Queues {
		require.Positive(t, cfg.River.Workers[q], q)
	}
	require.Positive(t, cfg.DatabaseMaxConns)
	require.False(t, cfg.RiverUIEnabled())
}

func TestTypedParsing(t *testing.T) {
	t.Parallel()
	cfg, err := config.Load(envFunc(map[string]string{
		"RECONCILE_INTERVAL":                     "5m",
		"RECONCILE_BATCH_LIMIT":                  "10",
		"RECONCILE_DISPUTE_STUCK_AFTER":          "2d12h",
		"AWS_S3_USE_SSL":                         "false",
		"RIVER_WORKERS_EMAIL":                    "3",
		"HYPERSWITCH_WEBHOOK_LOG_RETENTION_DAYS": "-4",
	}))
	require.NoError(t, err)
	require.NoError(t, cfg.ValidateForEnvironment(zerolog.Nop()))
	require.Equal(t, 5*time.Minute, cfg.Reconcile.Interval)
	require.Equal(t, 10, cfg.Reconcile.BatchLimit)
	require.Equal(t, 60*time.Hour, cfg.Reconcile.DisputeStuckAfter, "days are accepted")
	require.False(t, cfg.S3.UseSSL)
	require.Equal(t, 3, cfg.River.Workers[jobargs.QueueEmail])
	require.Equal(t, 90, cfg.Hyperswitch.WebhookLogRetentionDays, "0 or negative means the default")
}

func TestUnknownAppEnvAlwaysFails(t *testing.T) {
	t.Parallel()
	_, err := config.Load(envFunc(map[string]string{"APP_ENV": "prod"}))
	require.ErrorContains(t, err, "APP_ENV")
}

// TestRules covers every rule in both modes: production fails naming the
// variable; development warns naming it and falls back.
// settleRepaired checks a bad REVERSAL_KEY_SETTLE was repaired to the default.
func settleRepaired(t *testing.T, c *config.Config) {
	require.Equal(t, jobargs.DefaultReversalSettle, c.Reversal.KeySettle)
}

func TestRules(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		env     map[string]string
		unset   []string
		varName string
		// check runs on the repaired config in development.
		check func(t *testing.T, c *config.Config)
	}{
		{"storage backend wrong case", map[string]string{"TRACK_STORAGE_BACKEND": "S3"}, nil, "TRACK_STORAGE_BACKEND",
			func(t *testing.T, c *config.Config) { require.Equal(t, "local", c.TrackStorageBackend) }},
		{"storage backend unknown", map[string]string{"TRACK_STORAGE_BACKEND": "minio"}, nil, "TRACK_STORAGE_BACKEND",
			func(t *testing.T, c *config.Config) { require.Equal(t, "local", c.TrackStorageBackend) }},
		{"s3 backend without s3 client", map[string]string{"TRACK_STORAGE_BACKEND": "s3"}, nil, "TRACK_STORAGE_BACKEND",
			func(t *testing.T, c *config.Config) { require.Equal(t, "local", c.TrackStorageBackend) }},
		{"s3 enabled without bucket", map[string]string{"AWS_S3_ENABLED": "true", "AWS_S3_ENDPOINT": "minio:9000", "TRACK_STORAGE_BACKEND": "s3"}, nil, "AWS_S3_BUCKET",
			func(t *testing.T, c *config.Config) {
				require.False(t, c.S3.Enabled)
				require.Equal(t, "local", c.TrackStorageBackend)
			}},
		{"s3 enabled without endpoint", map[string]string{"AWS_S3_ENABLED": "true", "AWS_S3_BUCKET": "tracks"}, nil, "AWS_S3_ENDPOINT",
			func(t *testing.T, c *config.Config) { require.False(t, c.S3.Enabled) }},
		{"database url missing", nil, []string{"DATABASE_URL"}, "DATABASE_URL",
			func(t *testing.T, c *config.Config) { require.Equal(t, config.DefaultDatabaseURL, c.DatabaseURL) }},
		{"smtp host missing", nil, []string{"SMTP_HOST"}, "SMTP_HOST",
			func(t *testing.T, c *config.Config) { require.False(t, c.SMTP.Enabled()) }},
		{"river ui credentials missing", nil, []string{"RIVER_UI_USERNAME", "RIVER_UI_PASSWORD"}, "RIVER_UI_USERNAME",
			func(t *testing.T, c *config.Config) { require.False(t, c.RiverUIEnabled()) }},
		{"river ui password missing", nil, []string{"RIVER_UI_PASSWORD"}, "RIVER_UI_PASSWORD",
			func(t *testing.T, c *config.Config) { require.False(t, c.RiverUIEnabled()) }},
		{"malformed duration", map[string]string{"RECONCILE_INTERVAL": "often"}, nil, "RECONCILE_INTERVAL",
			func(t *testing.T, c *config.Config) { require.Equal(t, time.Hour, c.Reconcile.Interval) }},
		{"metrics on the public port", map[string]string{"METRICS_ADDR": "0.0.0.0:8080", "HTTP_ADDR": ":8080"}, nil, "METRICS_ADDR",
			func(t *testing.T, c *config.Config) { require.Empty(t, c.MetricsAddr) }},
		{"metrics address malformed", map[string]string{"METRICS_ADDR": "9464"}, nil, "METRICS_ADDR",
			func(t *testing.T, c *config.Config) { require.Empty(t, c.MetricsAddr) }},
		{"bad trusted proxy", map[string]string{"TRUSTED_PROXIES": "10.0.0.0/8, balancer.internal"}, nil, "TRUSTED_PROXIES",
			func(t *testing.T, c *config.Config) { require.Equal(t, []string{"10.0.0.0/8"}, c.TrustedProxies) }},
		{"malformed days", map[string]string{"RECONCILE_DISPUTE_STUCK_AFTER": "xd"}, nil, "RECONCILE_DISPUTE_STUCK_AFTER",
			func(t *testing.T, c *config.Config) { require.Equal(t, 7*24*time.Hour, c.Reconcile.DisputeStuckAfter) }},
		{"malformed int", map[string]string{"RECONCILE_BATCH_LIMIT": "fifty"}, nil, "RECONCILE_BATCH_LIMIT",
			func(t *testing.T, c *config.Config) { require.Equal(t, 50, c.Reconcile.BatchLimit) }},
		{"int out of range", map[string]string{"PLATFORM_FEE_BPS": "10001"}, nil, "PLATFORM_FEE_BPS",
			func(t *testing.T, c *config.Config) { require.Equal(t, 1000, c.Stripe.PlatformFeeBPS) }},
		{"malformed bool", map[string]string{"RECONCILE_WORKER_ENABLED": "yes please"}, nil, "RECONCILE_WORKER_ENABLED",
			func(t *testing.T, c *config.Config) { require.True(t, c.Reconcile.Enabled) }},
		{"malformed smtp port", map[string]string{"SMTP_PORT": "smtp"}, nil, "SMTP_PORT",
			func(t *testing.T, c *config.Config) { require.Zero(t, c.SMTP.Port) }},
		{"unknown smtp tls", map[string]string{"SMTP_TLS": "starttls"}, nil, "SMTP_TLS",
			func(t *testing.T, c *config.Config) { require.Equal(t, mail.TLSMandatory, c.SMTP.TLS) }},
		{"rescue shorter than job timeout", map[string]string{"RIVER_JOB_TIMEOUT": "10m", "RIVER_RESCUE_STUCK_JOBS_AFTER": "5m"}, nil, "RIVER_RESCUE_STUCK_JOBS_AFTER",
			func(t *testing.T, c *config.Config) {
				require.GreaterOrEqual(t, c.River.RescueStuckJobsAfter, c.River.JobTimeout)
			}},
		// A job whose process died mid-call is re-run after the rescue
		// delay; its request may have been sent as late as the job
		// timeout, and a payout's look-up must come the settle time after
		// it, or it misses the transfer and closes a paid payout unpaid.
		{"rescue shorter than job timeout plus key settle", map[string]string{"RIVER_JOB_TIMEOUT": "1m", "REVERSAL_KEY_SETTLE": "2m", "RIVER_RESCUE_STUCK_JOBS_AFTER": "2m"}, nil, "RIVER_RESCUE_STUCK_JOBS_AFTER",
			func(t *testing.T, c *config.Config) {
				require.GreaterOrEqual(t, c.River.RescueStuckJobsAfter, 3*time.Minute)
			}},
		{"hyperswitch enabled without key", map[string]string{"HYPERSWITCH_ENABLED": "true", "HYPERSWITCH_WEBHOOK_SECRET": "whsec"}, nil, "HYPERSWITCH_API_KEY",
			func(t *testing.T, c *config.Config) { require.False(t, c.Hyperswitch.Enabled) }},
		{"stripe enabled without key", map[string]string{"STRIPE_CONNECT_ENABLED": "true"}, nil, "STRIPE_SECRET_KEY",
			func(t *testing.T, c *config.Config) { require.False(t, c.Stripe.Enabled) }},
		{"backoff max under base", map[string]string{"TRANSFER_BACKOFF_BASE": "10m", "TRANSFER_BACKOFF_MAX": "1m"}, nil, "TRANSFER_BACKOFF_MAX",
			func(t *testing.T, c *config.Config) { require.Equal(t, 10*time.Minute, c.Transfer.Max) }},
		{"pprof on a public address", map[string]string{"PPROF_ADDR": "0.0.0.0:6060"}, nil, "PPROF_ADDR",
			func(t *testing.T, c *config.Config) { require.Empty(t, c.PprofAddr) }},
		{"public base url not a url", map[string]string{"PUBLIC_BASE_URL": "veza.example"}, nil, "PUBLIC_BASE_URL", nil},
		{"reversal key settle of zero", map[string]string{"REVERSAL_KEY_SETTLE": "0s"}, nil, "REVERSAL_KEY_SETTLE",
			settleRepaired},
		{"reversal key settle not a duration", map[string]string{"REVERSAL_KEY_SETTLE": "soon"}, nil, "REVERSAL_KEY_SETTLE",
			settleRepaired},
	}
	for _, tc := range cases {
		t.Run(tc.name+"/production", func(t *testing.T) {
			t.Parallel()
			env := prodBase()
			for k, v := range tc.env {
				env[k] = v
			}
			for _, k := range tc.unset {
				delete(env, k)
			}
			cfg, err := config.Load(envFunc(env))
			require.NoError(t, err)
			err = cfg.ValidateForEnvironment(zerolog.Nop())
			require.Error(t, err)
			require.Contains(t, err.Error(), tc.varName)
		})
		for _, mode := range []string{"development", "staging"} {
			t.Run(tc.name+"/"+mode, func(t *testing.T) {
				t.Parallel()
				env := prodBase()
				env["APP_ENV"] = mode
				for k, v := range tc.env {
					env[k] = v
				}
				for _, k := range tc.unset {
					delete(env, k)
				}
				cfg, err := config.Load(envFunc(env))
				require.NoError(t, err)
				var logs bytes.Buffer
				require.NoError(t, cfg.ValidateForEnvironment(zerolog.New(&logs)))
				if tc.varName == "DATABASE_URL" || tc.varName == "SMTP_HOST" || (tc.varName == "RIVER_UI_USERNAME" && len(tc.unset) == 2) {
					// Required only in production: nothing to warn about.
					require.NotContains(t, logs.String(), tc.varName)
				} else {
					require.Contains(t, logs.String(), `"var":"`+tc.varName+`"`)
					require.Contains(t, logs.String(), `"level":"warn"`)
				}
				if tc.check != nil {
					tc.check(t, cfg)
				}
			})
		}
	}
}

func TestProductionReportsEveryProblemAtOnce(t *testing.T) {
	t.Parallel()
	cfg, err := config.Load(envFunc(map[string]string{"APP_ENV": "production", "TRACK_STORAGE_BACKEND": "S3"}))
	require.NoError(t, err)
	err = cfg.ValidateForEnvironment(zerolog.Nop())
	for _, name := range []string{"TRACK_STORAGE_BACKEND", "DATABASE_URL", "SMTP_HOST", "RIVER_UI_USERNAME"} {
		require.Contains(t, err.Error(), name)
	}
}

func TestProductionWarnsOnPlainSMTP(t *testing.T) {
	t.Parallel()
	env := prodBase()
	env["SMTP_TLS"] = "none"
	cfg, err := config.Load(envFunc(env))
	require.NoError(t, err)
	var logs bytes.Buffer
	require.NoError(t, cfg.ValidateForEnvironment(zerolog.New(&logs)))
	require.Contains(t, logs.String(), "SMTP_TLS")
}

func TestSecretsNeverInProblems(t *testing.T) {
	t.Parallel()
	env := prodBase()
	env["RIVER_UI_USERNAME"] = ""
	env["RIVER_UI_PASSWORD"] = "hunter2-ui"
	env["HYPERSWITCH_ENABLED"] = "true"
	env["HYPERSWITCH_API_KEY"] = "snd_secret_key"
	cfg, err := config.Load(envFunc(env))
	require.NoError(t, err)
	err = cfg.ValidateForEnvironment(zerolog.Nop())
	require.Error(t, err)
	require.NotContains(t, err.Error(), "hunter2-ui")
	require.NotContains(t, err.Error(), "snd_secret_key")
}

// TestConfigDriftCheck fails when a variable config reads is missing from
// .env.template or from the README's configuration table.
func TestConfigDriftCheck(t *testing.T) {
	t.Parallel()
	template, err := os.ReadFile("../.env.template")
	require.NoError(t, err)
	readme, err := os.ReadFile("../README.md")
	require.NoError(t, err)
	tableRow := regexp.MustCompile("(?m)^\\|.*`([A-Z0-9_]+)`")
	inTable := map[string]bool{}
	for _, m := range tableRow.FindAllStringSubmatch(string(readme), -1) {
		for _, name := range regexp.MustCompile("`([A-Z][A-Z0-9_]+)`").FindAllStringSubmatch(m[0], -1) {
			inTable[name[1]] = true
		}
	}
	vars := config.Vars()
	require.Contains(t, vars, "TRACK_STORAGE_BACKEND")
	require.Contains(t, vars, "SMTP_USER", "deprecated names are read, so documented too")
	for _, name := range vars {
		require.Regexp(t, "(?m)^#? ?"+name+"=", string(template), "%s is read by config but missing from .env.template", name)
		require.True(t, inTable[name], "%s is read by config but missing from the README's configuration table", name)
	}
	require.True(t, strings.Contains(string(template), "# SMTP_HOST=localhost"), ".env.template offers the local SMTP catcher, commented out")
	require.False(t, regexp.MustCompile(`(?m)^SMTP_HOST=.`).Match(template), "copied as is, .env must work with what make run starts (no SMTP server there)")
}

// A key window of Stripe's 24 h or more would let a retry reuse a key
// Stripe has forgotten: a second transfer.
func TestKeyWindowUnderStripesKeyLifetime(t *testing.T) {
	t.Parallel()
	env := map[string]string{"APP_ENV": "production", "STRIPE_KEY_REUSE_WINDOW": "24h"}
	cfg, err := config.Load(func(k string) string { return env[k] })
	require.NoError(t, err)
	err = cfg.ValidateForEnvironment(zerolog.Nop())
	require.ErrorContains(t, err, "STRIPE_KEY_REUSE_WINDOW")

	env["APP_ENV"] = "development"
	cfg, _ = config.Load(func(k string) string { return env[k] })
	require.NoError(t, cfg.ValidateForEnvironment(zerolog.Nop()))
	require.Equal(t, config.DefaultKeyWindow, cfg.Stripe.KeyWindow, "falls back in development")
}

func TestMetricsAddrDefaults(t *testing.T) {
	t.Parallel()
	dev, err := config.Load(envFunc(nil))
	require.NoError(t, err)
	require.Equal(t, config.DefaultDevMetricsAddr, dev.MetricsAddr)
	off, err := config.Load(envFunc(map[string]string{"METRICS_ADDR": "off"}))
	require.NoError(t, err)
	require.Empty(t, off.MetricsAddr)
	prod, err := config.Load(envFunc(prodBase()))
	require.NoError(t, err)
	require.Empty(t, prod.MetricsAddr, "production serves no metrics unless told where")
	require.NoError(t, prod.ValidateForEnvironment(zerolog.Nop()))
	require.Empty(t, prod.OTLPEndpoint, "tracing off by default")
}

func TestRateLimitMaxWaitUnderTheJobTimeout(t *testing.T) {
	t.Parallel()
	c, err := config.Load(envFunc(map[string]string{"RATE_LIMIT_MAX_WAIT": "45s", "RIVER_JOB_TIMEOUT": "1m"}))
	require.NoError(t, err)
	require.NoError(t, c.ValidateForEnvironment(zerolog.Nop()))
	require.Equal(t, 15*time.Second, c.RateLimits.MaxWait, "a quarter of the job timeout")
	prod := prodBase()
	prod["RATE_LIMIT_MAX_WAIT"] = "45s"
	c, err = config.Load(envFunc(prod))
	require.NoError(t, err)
	require.ErrorContains(t, c.ValidateForEnvironment(zerolog.Nop()), "RATE_LIMIT_MAX_WAIT")
	d, err := config.Load(envFunc(nil))
	require.NoError(t, err)
	require.Equal(t, config.RateLimitConfig{Stripe: 70, StripeBurst: 15, Hyperswitch: 50, HyperswitchBurst: 10, SMTP: 10, SMTPBurst: 2, MaxWait: 5 * time.Second}, d.RateLimits)
}

func TestCORSOrigins(t *testing.T) {
	t.Parallel()
	dev, err := config.Load(envFunc(nil))
	require.NoError(t, err)
	require.NoError(t, dev.ValidateForEnvironment(zerolog.Nop()))
	require.Equal(t, []string{"http://localhost:3000", "http://localhost:5173"}, dev.CORSAllowedOrigins)

	prod, err := config.Load(envFunc(map[string]string{"APP_ENV": "production"}))
	require.NoError(t, err)
	require.Empty(t, prod.CORSAllowedOrigins, "production allows no origin unless told")

	prod, err = config.Load(envFunc(map[string]string{"APP_ENV": "production", "CORS_ALLOWED_ORIGINS": "https://app.veza.example, *"}))
	require.NoError(t, err)
	require.ErrorContains(t, prod.ValidateForEnvironment(zerolog.Nop()), "CORS_ALLOWED_ORIGINS")

	dev, err = config.Load(envFunc(map[string]string{"CORS_ALLOWED_ORIGINS": "https://App.Veza.example/, http://localhost:3000/path"}))
	require.NoError(t, err)
	require.NoError(t, dev.ValidateForEnvironment(zerolog.Nop()))
	require.Empty(t, dev.CORSAllowedOrigins, "an origin with a path is refused: CORS off in development with a warning")

	dev, err = config.Load(envFunc(map[string]string{"CORS_ALLOWED_ORIGINS": "https://App.Veza.example/"}))
	require.NoError(t, err)
	require.NoError(t, dev.ValidateForEnvironment(zerolog.Nop()))
	require.Equal(t, []string{"https://app.veza.example"}, dev.CORSAllowedOrigins, "a trailing slash and case are forgiven")
}

func TestSandboxDefaults(t *testing.T) {
	t.Parallel()
	dev, err := config.Load(envFunc(nil))
	require.NoError(t, err)
	require.True(t, dev.Sandbox.Enabled, "on in development without providers")
	withHS, err := config.Load(envFunc(map[string]string{"HYPERSWITCH_ENABLED": "true"}))
	require.NoError(t, err)
	require.False(t, withHS.Sandbox.Enabled, "a configured provider turns it off")
	for _, env := range []string{"staging", "production"} {
		c, err := config.Load(envFunc(map[string]string{"APP_ENV": env}))
		require.NoError(t, err)
		require.False(t, c.Sandbox.Enabled, env)
		c, err = config.Load(envFunc(map[string]string{"APP_ENV": env, "SANDBOX_ENABLED": "true"}))
		require.NoError(t, err)
		require.ErrorContains(t, c.ValidateForEnvironment(zerolog.Nop()), "SANDBOX_ENABLED", "%s refuses the sandbox, not a warning", env)
	}
}

// TestShortReversalSettleWarns: production accepts a REVERSAL_KEY_SETTLE
// under the Stripe client's timeout but says what it risks.
func TestShortReversalSettleWarns(t *testing.T) {
	t.Parallel()
	for settle, warns := range map[string]bool{"5s": true, "2m": false} {
		env := prodBase()
		env["REVERSAL_KEY_SETTLE"] = settle
		cfg, err := config.Load(envFunc(env))
		require.NoError(t, err)
		var logs bytes.Buffer
		require.NoError(t, cfg.ValidateForEnvironment(zerolog.New(&logs)))
		require.Equal(t, warns, strings.Contains(logs.String(), `"var":"REVERSAL_KEY_SETTLE"`), settle)
	}
	require.Equal(t, jobargs.DefaultReversalSettle, jobargs.Policy{}.ReversalSettleTime())
	cfg, err := config.Load(envFunc(map[string]string{"REVERSAL_KEY_SETTLE": "45s"}))
	require.NoError(t, err)
	require.Equal(t, 45*time.Second, cfg.Policy().ReversalSettleTime())
}
