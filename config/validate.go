package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"sort"
	"time"

	"github.com/rs/zerolog"

	"github.com/veza/backend/jobargs"
	"github.com/veza/backend/mail"
)

// ValidateForEnvironment applies the cross-variable rules. In production it
// returns every broken rule (and every malformed value Load saw) joined in one
// error; elsewhere it logs one warning per problem and repairs the config to
// the safe default, returning nil.
func (c *Config) ValidateForEnvironment(logger zerolog.Logger) error {
	problems := append([]*VarError(nil), c.problems...)
	prod := c.Env == Production
	add := func(name, format string, args ...any) {
		problems = append(problems, &VarError{Name: name, Reason: fmt.Sprintf(format, args...)})
	}

	// Storage backend: exactly "local" or "s3", case-sensitively.
	switch c.TrackStorageBackend {
	case "local":
	case "s3":
		if !c.S3.Enabled {
			add("TRACK_STORAGE_BACKEND", `is "s3" but AWS_S3_ENABLED is not true: there would be no S3 client; using "local"`)
			c.TrackStorageBackend = "local"
		}
	default:
		add("TRACK_STORAGE_BACKEND", `must be exactly "local" or "s3", got %q; using "local"`, c.TrackStorageBackend)
		c.TrackStorageBackend = "local"
	}
	if c.S3.Enabled && c.S3.Bucket == "" {
		add("AWS_S3_BUCKET", "is required when AWS_S3_ENABLED=true; S3 disabled")
		c.S3.Enabled = false
		if c.TrackStorageBackend == "s3" {
			c.TrackStorageBackend = "local"
		}
	}
	if c.S3.Enabled && c.S3.Endpoint == "" {
		add("AWS_S3_ENDPOINT", "is required when AWS_S3_ENABLED=true (host:port, no scheme); S3 disabled")
		c.S3.Enabled = false
		if c.TrackStorageBackend == "s3" {
			c.TrackStorageBackend = "local"
		}
	}

	if prod && !c.set["DATABASE_URL"] {
		add("DATABASE_URL", "is required in production")
	}
	if prod && c.SMTP.Host == "" {
		add("SMTP_HOST", "is required in production (an empty host only logs emails)")
	}
	if prod && c.SMTP.TLS == mail.TLSNone {
		// A warning, not a failure: some relays sit on a private network.
		logger.Warn().Str("var", "SMTP_TLS").Msg("SMTP_TLS=none in production: mail credentials and content travel in clear text")
	}
	if prod && c.Reversal.KeySettle < 30*time.Second {
		// A warning: an operator may know their Stripe answers fast.
		logger.Warn().Str("var", "REVERSAL_KEY_SETTLE").Dur("value", c.Reversal.KeySettle).
			Msg("REVERSAL_KEY_SETTLE is under the Stripe client's 30 s timeout: a reversal's new key may go out while its last request still runs at Stripe, and reverse twice")
	}
	if (c.RiverUIUsername == "") != (c.RiverUIPassword == "") || (prod && c.RiverUIUsername == "") {
		name := "RIVER_UI_USERNAME"
		if c.RiverUIUsername != "" {
			name = "RIVER_UI_PASSWORD"
		}
		add(name, "RIVER_UI_USERNAME and RIVER_UI_PASSWORD are both required to serve River UI (and in production); River UI disabled")
		c.RiverUIUsername, c.RiverUIPassword = "", ""
	}

	if c.PprofAddr != "" {
		if host, _, err := net.SplitHostPort(c.PprofAddr); err != nil || (host != "127.0.0.1" && host != "localhost" && host != "::1") {
			add("PPROF_ADDR", "must be a loopback address such as 127.0.0.1:6060 (profiles expose internals); pprof disabled")
			c.PprofAddr = ""
		}
	}
	if c.MetricsAddr != "" {
		_, mport, merr := net.SplitHostPort(c.MetricsAddr)
		_, hport, herr := net.SplitHostPort(c.HTTPAddr)
		switch {
		case merr != nil:
			add("METRICS_ADDR", "must be host:port (such as 10.0.0.5:9464), or empty or off; metrics disabled")
			c.MetricsAddr = ""
		case herr == nil && mport == hport && mport != "0":
			add("METRICS_ADDR", "must not be HTTP_ADDR's port: /metrics belongs on the private network, never on the public port; metrics disabled")
			c.MetricsAddr = ""
		}
	}
	if c.RateLimits.MaxWait > c.River.JobTimeout/2 {
		add("RATE_LIMIT_MAX_WAIT", "must be at most half of RIVER_JOB_TIMEOUT (%s): a job waiting for a token must still have time for its call; using %s",
			c.River.JobTimeout, c.River.JobTimeout/4)
		c.RateLimits.MaxWait = c.River.JobTimeout / 4
	}
	// A job whose process died is re-run after the rescue delay, and its
	// lost request may have gone out as late as the job timeout: the re-run
	// must come the key settle time after that, or a payout's look-up can
	// miss the transfer Stripe is still making and close it unpaid.
	if least := c.River.JobTimeout + c.Reversal.KeySettle; c.River.RescueStuckJobsAfter < least {
		add("RIVER_RESCUE_STUCK_JOBS_AFTER", "must be at least RIVER_JOB_TIMEOUT + REVERSAL_KEY_SETTLE (%s), got %s: a re-run of a job whose process died must not ask Stripe while its lost request may still run; using %s",
			least, c.River.RescueStuckJobsAfter, max(defaultRescueStuckJobsAfter, least))
		c.River.RescueStuckJobsAfter = max(defaultRescueStuckJobsAfter, least)
	}

	if c.Hyperswitch.Enabled {
		for name, v := range map[string]string{
			"HYPERSWITCH_BASE_URL":       c.Hyperswitch.BaseURL,
			"HYPERSWITCH_API_KEY":        c.Hyperswitch.APIKey,
			"HYPERSWITCH_WEBHOOK_SECRET": c.Hyperswitch.WebhookSecret,
		} {
			if v == "" {
				add(name, "is required when HYPERSWITCH_ENABLED=true; Hyperswitch disabled")
				c.Hyperswitch.Enabled = false
			}
		}
	}
	if c.Stripe.Enabled && c.Stripe.SecretKey == "" {
		add("STRIPE_SECRET_KEY", "is required when STRIPE_CONNECT_ENABLED=true; Stripe Connect disabled")
		c.Stripe.Enabled = false
	}
	if c.Stripe.KeyWindow > maxKeyWindow {
		// A retry after Stripe forgot the key would make a second transfer;
		// the margin covers a request in flight and clock skew.
		add("STRIPE_KEY_REUSE_WINDOW", "must be at most %s (Stripe keeps keys 24h), got %s; using %s", maxKeyWindow, c.Stripe.KeyWindow, DefaultKeyWindow)
		c.Stripe.KeyWindow = DefaultKeyWindow
	}
	for name, r := range map[string]*jobargs.Retry{"TRANSFER_BACKOFF_MAX": &c.Transfer, "REVERSAL_BACKOFF_MAX": &c.Reversal.Retry} {
		if r.Max < r.Base {
			add(name, "must be at least the matching _BACKOFF_BASE (%s), got %s; using the base", r.Base, r.Max)
			r.Max = r.Base
		}
	}
	for name, raw := range map[string]string{"PUBLIC_BASE_URL": c.PublicBaseURL, "STRIPE_API_BASE": c.Stripe.APIBase, "HYPERSWITCH_BASE_URL": c.Hyperswitch.BaseURL} {
		if raw == "" {
			continue
		}
		if u, err := url.Parse(raw); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			add(name, "must be an absolute http(s) URL, got %q", raw)
		}
	}

	if c.Sandbox.Enabled && c.Env != Development {
		// Not repaired with a warning: simulated payments where real
		// money is expected must stop the boot, in staging too.
		return &VarError{Name: "SANDBOX_ENABLED", Reason: fmt.Sprintf("the sandbox simulates Hyperswitch and Stripe: development only, refused in %s", c.Env)}
	}
	if c.Sandbox.Enabled && (c.Hyperswitch.Enabled || c.Stripe.Enabled) {
		add("SANDBOX_ENABLED", "the sandbox replaces both providers; it is off while HYPERSWITCH_ENABLED or STRIPE_CONNECT_ENABLED is true")
		c.Sandbox.Enabled = false
	}
	for _, o := range c.CORSAllowedOrigins {
		u, err := url.Parse(o)
		switch {
		case o == "*" && prod:
			add("CORS_ALLOWED_ORIGINS", `must list exact origins in production, not "*" (any site could call the API with a user's token)`)
		case o == "*":
			continue // development: any origin
		case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "":
			add("CORS_ALLOWED_ORIGINS", "%q is not an origin (scheme://host[:port], no path); CORS disabled", o)
		default:
			continue
		}
		c.CORSAllowedOrigins = nil
		break
	}

	if len(problems) == 0 {
		return nil
	}
	sort.SliceStable(problems, func(i, j int) bool { return problems[i].Name < problems[j].Name })
	if prod {
		errs := make([]error, len(problems))
		for i, pr := range problems {
			errs[i] = pr
		}
		return fmt.Errorf("invalid configuration for APP_ENV=production: %w", errors.Join(errs...))
	}
	for _, pr := range problems {
		logger.Warn().Str("var", pr.Name).Str("env", string(c.Env)).Msg(pr.Reason)
	}
	return nil
}
