// Package config reads the service's settings from the environment, once, at
// boot. Load parses every variable with its default; ValidateForEnvironment
// then applies the rules of SPEC §1: in production any broken rule fails the
// boot naming the variable, elsewhere it logs a warning and falls back to the
// safe default.
package config

import (
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/veza/backend/jobargs"
	"github.com/veza/backend/mail"
)

// Environment is APP_ENV.
type Environment string

const (
	Development Environment = "development"
	Staging     Environment = "staging"
	Production  Environment = "production"
)

// Stripe keeps an idempotency key's saved result for 24 h and may forget it
// after: a payout reuses its key at most DefaultKeyWindow, then looks the
// transfer up and starts a new key. Budgets of 30 attempts with the
// default backoff (1 min doubling to 1 h) span just over 24 h.
const (
	StripeKeyLifetime = 24 * time.Hour
	DefaultKeyWindow  = jobargs.DefaultKeyWindow
	maxKeyWindow      = StripeKeyLifetime - 30*time.Minute
)

// DefaultDevMetricsAddr is METRICS_ADDR's development default.
const DefaultDevMetricsAddr = "127.0.0.1:9464"

// DefaultDatabaseURL is the local development database that `make run` creates.
const DefaultDatabaseURL = "postgres://postgres@127.0.0.1:55432/veza_dev?sslmode=disable"

// Config is every setting of the service. Fields are plain values; secrets are
// marked in their comment and never logged.
type Config struct {
	Env Environment

	HTTPAddr        string
	ShutdownTimeout time.Duration
	// Requests per minute per client IP on /v1, and on login, register and
	// password reset.
	RateLimitPerMinute     int
	AuthRateLimitPerMinute int
	// InvalidWebhooksPerMinute: WEBHOOK_INVALID_PER_MINUTE.
	InvalidWebhooksPerMinute int
	// MaxConcurrentHashes: ARGON2_MAX_CONCURRENT (19 MiB each).
	MaxConcurrentHashes int
	// RefundWindow: REFUND_WINDOW, how long after completion a buyer may
	// ask a refund (0: no window).
	RefundWindow time.Duration
	// TrustedProxies: TRUSTED_PROXIES, comma-separated CIDRs or addresses
	// of the balancers in front of the service; empty, the peer is the client.
	TrustedProxies []string
	LogLevel       zerolog.Level
	PublicBaseURL  string
	// PprofAddr serves net/http/pprof when set (loopback only, for profiling).
	PprofAddr string
	// MetricsAddr serves /metrics (METRICS_ADDR; empty or "off": none).
	// Never the public port: put it on the private network.
	MetricsAddr string
	// MetricsRefresh: METRICS_REFRESH_INTERVAL, how often the gauges read
	// from the database are refreshed at most (business tables: 6×).
	MetricsRefresh time.Duration
	// OTLP: OTEL_EXPORTER_OTLP_ENDPOINT / _TRACES_ENDPOINT and
	// OTEL_SERVICE_NAME; both endpoints empty, tracing is off.
	OTLPEndpoint       string
	OTLPTracesEndpoint string
	OTELServiceName    string

	DatabaseURL          string // secret: may carry a password
	DatabaseReadURL      string // secret: may carry a password
	DatabaseMaxConns     int32
	DatabaseReadMaxConns int32
	// DatabaseWorkerMaxConns sizes the pool River and its workers share,
	// apart from the API's (DatabaseMaxConns).
	DatabaseWorkerMaxConns int32

	TrackStorageBackend string // "local" or "s3"
	TrackStorageDir     string
	TrackMaxUploadBytes int64
	// TrackOrphanGrace: stored objects without a row are removed only once
	// older than this (an upload in flight has no row yet).
	TrackOrphanGrace time.Duration

	S3 S3Config

	Hyperswitch HyperswitchConfig
	Reconcile   ReconcileConfig
	Stripe      StripeConfig
	// Transfer is the payout jobs' budget (TRANSFER_*).
	Transfer jobargs.Retry
	Reversal ReversalConfig
	// BalanceWait: TRANSFER_BALANCE_WAIT.
	BalanceWait time.Duration

	SMTP mail.Config

	RiverUIUsername string
	RiverUIPassword string // secret

	River RiverConfig

	// RateLimits pace calls to each provider across every process.
	RateLimits RateLimitConfig

	// WebhookEventRetentionDays: WEBHOOK_EVENT_RETENTION_DAYS, how long the
	// dedupe tables keep an event id.
	WebhookEventRetentionDays int

	// Sandbox: SANDBOX_ENABLED, simulated Hyperswitch and Stripe in
	// process (development only; on by default there when neither
	// provider is configured).
	Sandbox SandboxConfig

	// CORSAllowedOrigins: CORS_ALLOWED_ORIGINS, exact origins a browser
	// frontend may call the API from.
	CORSAllowedOrigins []string

	problems []*VarError
	set      map[string]bool
}

// SandboxConfig is the development sandbox (package sandbox).
type SandboxConfig struct {
	Enabled bool
	// AllowRemote: SANDBOX_ALLOW_REMOTE, answer callers other than this
	// machine (a container behind a port mapping).
	AllowRemote bool
	// RefundDelay: SANDBOX_REFUND_DELAY, how long a refund stays pending
	// before it settles by itself.
	RefundDelay time.Duration
}

// DefaultDevCORSOrigins are the frontends' usual development servers
// (Next.js / CRA on 3000, Vite on 5173).
const DefaultDevCORSOrigins = "http://localhost:3000,http://localhost:5173"

type S3Config struct {
	Enabled   bool
	Endpoint  string
	Bucket    string
	Region    string
	AccessKey string
	SecretKey string // secret
	UseSSL    bool
}

type HyperswitchConfig struct {
	Enabled                 bool
	BaseURL                 string
	APIKey                  string // secret
	WebhookSecret           string // secret
	WebhookLogRetentionDays int
}

type ReconcileConfig struct {
	Enabled           bool
	Interval          time.Duration
	OrderStuckAfter   time.Duration
	RefundStuckAfter  time.Duration
	RefundOrphanAfter time.Duration
	// DisputeStuckAfter: an open dispute older than this is read at
	// Hyperswitch (its outcome webhook may have been lost).
	DisputeStuckAfter time.Duration
	BatchLimit        int
}

type StripeConfig struct {
	Enabled   bool
	SecretKey string // secret
	// WebhookSecret: STRIPE_WEBHOOK_SECRET, the Connect endpoint's signing
	// secret (whsec_...); empty, POST /webhooks/stripe answers 503.
	WebhookSecret  string // secret
	APIBase        string
	PlatformFeeBPS int
	// KeyWindow: STRIPE_KEY_REUSE_WINDOW, under Stripe's 24 h.
	KeyWindow time.Duration
}

type ReversalConfig struct {
	Enabled bool
	// Retry.MaxAttempts counts the first attempt too:
	// REVERSAL_MAX_RETRIES + 1.
	Retry jobargs.Retry
	// KeySettle: REVERSAL_KEY_SETTLE (jobargs.Policy.ReversalSettle).
	KeySettle time.Duration
}

// Policy is the retry policy of the jobs whose budget is configured.
func (c *Config) Policy() jobargs.Policy {
	return jobargs.Policy{Payout: c.Transfer, Reversal: c.Reversal.Retry, KeyWindow: c.Stripe.KeyWindow, BalanceWait: c.BalanceWait,
		ReversalSettle: c.Reversal.KeySettle}
}

// RateLimitConfig: calls per second to each provider across every process
// on the database, each with a burst (0: no limit), and how long a call may
// wait for a token before its job snoozes instead (RATE_LIMIT_MAX_WAIT).
type RateLimitConfig struct {
	Stripe, Hyperswitch, SMTP                float64
	StripeBurst, HyperswitchBurst, SMTPBurst int
	MaxWait                                  time.Duration
}

type RiverConfig struct {
	JobTimeout           time.Duration
	RescueStuckJobsAfter time.Duration
	FetchCooldown        time.Duration
	FetchPollInterval    time.Duration
	// River's own retention of finished jobs, set on purpose (the values
	// are River's defaults; docs/DEPLOYMENT.md sizes river_job with them):
	// RIVER_COMPLETED_JOB_RETENTION, RIVER_CANCELLED_JOB_RETENTION,
	// RIVER_DISCARDED_JOB_RETENTION.
	CompletedRetention, CancelledRetention, DiscardedRetention time.Duration
	// PollOnly: RIVER_POLL_ONLY, no LISTEN (PgBouncer in transaction mode).
	PollOnly bool
	// Workers is the MaxWorkers of each queue, keyed by queue name.
	Workers map[string]int
}

// VarError names a variable whose value breaks a rule. Value is omitted for
// secrets.
type VarError struct {
	Name   string
	Reason string
}

func (e *VarError) Error() string { return e.Name + ": " + e.Reason }

// Defaults chosen for a 2-core machine; docs/DEPLOYMENT.md explains them.
const (
	defaultRescueStuckJobsAfter = time.Hour
)

// Sized from `make bench` on 2 cores (docs/DEPLOYMENT.md): events jobs are
// short database transactions; stripe and hyperswitch jobs spend most of
// their time waiting on the provider, so those queues run many at once
// (the providers' rate limits, not the workers, pace them). River's fetch
// rate caps a queue near workers divided by FetchCooldown.
var defaultWorkers = map[string]int{
	jobargs.QueueDefault:     20,
	jobargs.QueueEvents:      50,
	jobargs.QueueStripe:      100,
	jobargs.QueueHyperswitch: 20,
	jobargs.QueueEmail:       10,
	jobargs.QueueMaintenance: 5,
	jobargs.QueuePayments:    10,
}

// Load parses the environment. It fails only when APP_ENV itself is unknown:
// guessing the environment would silently disable production's rules.
// Malformed values become problems that ValidateForEnvironment reports; the
// field keeps its default meanwhile.
func Load(getenv func(string) string) (*Config, error) {
	p := &parser{getenv: getenv, set: map[string]bool{}}
	cfg := &Config{}

	switch env := Environment(p.str("APP_ENV", string(Development))); env {
	case Development, Staging, Production:
		cfg.Env = env
	default:
		return nil, &VarError{Name: "APP_ENV", Reason: fmt.Sprintf("must be development, staging or production; got %q", env)}
	}

	cfg.HTTPAddr = p.str("HTTP_ADDR", ":8080")
	cfg.ShutdownTimeout = p.duration("SHUTDOWN_TIMEOUT", 25*time.Second, time.Second)
	cfg.RateLimitPerMinute = p.integer("RATE_LIMIT_PER_MINUTE", 600, 1, 1_000_000)
	// Development: room for a walkthrough and `app seed` from one address
	// in the same minute; elsewhere tight (guessable passwords).
	authLimit := 10
	if cfg.Env == Development {
		authLimit = 60
	}
	cfg.AuthRateLimitPerMinute = p.integer("RATE_LIMIT_AUTH_PER_MINUTE", authLimit, 1, 1_000_000)
	cfg.MaxConcurrentHashes = p.integer("ARGON2_MAX_CONCURRENT", 8, 1, 1024)
	cfg.RefundWindow = p.duration("REFUND_WINDOW", 14*24*time.Hour, 0)
	cfg.InvalidWebhooksPerMinute = p.integer("WEBHOOK_INVALID_PER_MINUTE", 30, 1, 1_000_000)
	for _, entry := range strings.Split(p.str("TRUSTED_PROXIES", ""), ",") {
		if entry = strings.TrimSpace(entry); entry == "" {
			continue
		}
		_, perr := netip.ParsePrefix(entry)
		if _, aerr := netip.ParseAddr(entry); perr != nil && aerr != nil {
			p.fail("TRUSTED_PROXIES", fmt.Sprintf("%q is neither a CIDR nor an IP address; ignored", entry))
			continue
		}
		cfg.TrustedProxies = append(cfg.TrustedProxies, entry)
	}
	cfg.LogLevel = p.logLevel("LOG_LEVEL", zerolog.InfoLevel)
	cfg.PublicBaseURL = p.str("PUBLIC_BASE_URL", "http://localhost:8080")
	cfg.PprofAddr = p.str("PPROF_ADDR", "")
	defaultMetrics := ""
	if cfg.Env == Development {
		defaultMetrics = DefaultDevMetricsAddr
	}
	if cfg.MetricsAddr = p.str("METRICS_ADDR", defaultMetrics); cfg.MetricsAddr == "off" {
		cfg.MetricsAddr = ""
	}
	cfg.MetricsRefresh = p.duration("METRICS_REFRESH_INTERVAL", 5*time.Second, 100*time.Millisecond)
	cfg.OTLPEndpoint = p.str("OTEL_EXPORTER_OTLP_ENDPOINT", "")
	cfg.OTLPTracesEndpoint = p.str("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "")
	cfg.OTELServiceName = p.str("OTEL_SERVICE_NAME", "veza")

	cfg.DatabaseURL = p.str("DATABASE_URL", DefaultDatabaseURL)
	cfg.DatabaseReadURL = p.str("DATABASE_READ_URL", "")
	cfg.DatabaseMaxConns = int32(p.integer("DATABASE_MAX_CONNS", 50, 2, 1000))
	cfg.DatabaseReadMaxConns = int32(p.integer("DATABASE_READ_MAX_CONNS", 20, 1, 1000))
	cfg.DatabaseWorkerMaxConns = int32(p.integer("DATABASE_WORKER_MAX_CONNS", 8, 3, 1000))

	cfg.TrackStorageBackend = p.str("TRACK_STORAGE_BACKEND", "local")
	cfg.TrackStorageDir = p.str("TRACK_STORAGE_DIR", "./data/tracks")
	cfg.TrackMaxUploadBytes = int64(p.integer("TRACK_MAX_UPLOAD_BYTES", 256<<20, 1<<10, 5<<30))
	cfg.TrackOrphanGrace = p.duration("TRACK_ORPHAN_GRACE", 24*time.Hour, time.Minute)

	cfg.S3 = S3Config{
		Enabled:   p.boolean("AWS_S3_ENABLED", false),
		Endpoint:  p.str("AWS_S3_ENDPOINT", ""),
		Bucket:    p.str("AWS_S3_BUCKET", ""),
		Region:    p.str("AWS_S3_REGION", "us-east-1"),
		AccessKey: p.str("AWS_ACCESS_KEY_ID", ""),
		SecretKey: p.str("AWS_SECRET_ACCESS_KEY", ""),
		UseSSL:    p.boolean("AWS_S3_USE_SSL", true),
	}

	cfg.Hyperswitch = HyperswitchConfig{
		Enabled:       p.boolean("HYPERSWITCH_ENABLED", false),
		BaseURL:       p.str("HYPERSWITCH_BASE_URL", "https://sandbox.hyperswitch.io"),
		APIKey:        p.str("HYPERSWITCH_API_KEY", ""),
		WebhookSecret: p.str("HYPERSWITCH_WEBHOOK_SECRET", ""),
		// 0 or negative means the default (SPEC §1), not "keep nothing".
		WebhookLogRetentionDays: p.integer("HYPERSWITCH_WEBHOOK_LOG_RETENTION_DAYS", 90, -1<<31, 36500),
	}
	if cfg.Hyperswitch.WebhookLogRetentionDays <= 0 {
		cfg.Hyperswitch.WebhookLogRetentionDays = 90
	}

	cfg.Reconcile = ReconcileConfig{
		Enabled:           p.boolean("RECONCILE_WORKER_ENABLED", true),
		Interval:          p.duration("RECONCILE_INTERVAL", time.Hour, time.Second),
		OrderStuckAfter:   p.duration("RECONCILE_ORDER_STUCK_AFTER", 30*time.Minute, time.Second),
		RefundStuckAfter:  p.duration("RECONCILE_REFUND_STUCK_AFTER", 30*time.Minute, time.Second),
		RefundOrphanAfter: p.duration("RECONCILE_REFUND_ORPHAN_AFTER", 5*time.Minute, time.Second),
		DisputeStuckAfter: p.duration("RECONCILE_DISPUTE_STUCK_AFTER", 7*24*time.Hour, time.Second),
		BatchLimit:        p.integer("RECONCILE_BATCH_LIMIT", 50, 1, 10000),
	}

	cfg.Stripe = StripeConfig{
		Enabled:        p.boolean("STRIPE_CONNECT_ENABLED", false),
		SecretKey:      p.str("STRIPE_SECRET_KEY", ""),
		WebhookSecret:  p.str("STRIPE_WEBHOOK_SECRET", ""),
		APIBase:        p.str("STRIPE_API_BASE", "https://api.stripe.com"),
		PlatformFeeBPS: p.integer("PLATFORM_FEE_BPS", 1000, 0, 10000),
		KeyWindow:      p.duration("STRIPE_KEY_REUSE_WINDOW", DefaultKeyWindow, time.Second),
	}

	cfg.Transfer = jobargs.Retry{
		MaxAttempts: p.integer("TRANSFER_MAX_ATTEMPTS", 30, 1, 1000),
		Base:        p.duration("TRANSFER_BACKOFF_BASE", time.Minute, time.Second),
		Max:         p.duration("TRANSFER_BACKOFF_MAX", time.Hour, time.Second),
	}
	cfg.Reversal = ReversalConfig{
		Enabled: p.boolean("REVERSAL_WORKER_ENABLED", true),
		Retry: jobargs.Retry{
			MaxAttempts: p.integer("REVERSAL_MAX_RETRIES", 29, 1, 1000) + 1,
			Base:        p.duration("REVERSAL_BACKOFF_BASE", time.Minute, time.Second),
			Max:         p.duration("REVERSAL_BACKOFF_MAX", time.Hour, time.Second),
		},
		KeySettle: p.duration("REVERSAL_KEY_SETTLE", jobargs.DefaultReversalSettle, time.Second),
	}

	cfg.BalanceWait = p.duration("TRANSFER_BALANCE_WAIT", time.Hour, time.Second)

	smtp, smtpProblems := mail.LoadConfig(p.record)
	cfg.SMTP = smtp
	for _, sp := range smtpProblems {
		p.problems = append(p.problems, &VarError{Name: sp.Var, Reason: sp.Reason})
	}

	cfg.RiverUIUsername = p.str("RIVER_UI_USERNAME", "")
	cfg.RiverUIPassword = p.str("RIVER_UI_PASSWORD", "")

	cfg.River = RiverConfig{
		JobTimeout:           p.duration("RIVER_JOB_TIMEOUT", time.Minute, time.Second),
		RescueStuckJobsAfter: p.duration("RIVER_RESCUE_STUCK_JOBS_AFTER", time.Hour, time.Second),
		FetchCooldown:        p.duration("RIVER_FETCH_COOLDOWN", 10*time.Millisecond, time.Millisecond),
		FetchPollInterval:    p.duration("RIVER_FETCH_POLL_INTERVAL", time.Second, time.Millisecond),
		// Completed jobs are the bulk (several per order): a day is enough
		// to answer "did it run?" in River UI. A discarded job is a money
		// question someone must answer: a week.
		CompletedRetention: p.duration("RIVER_COMPLETED_JOB_RETENTION", 24*time.Hour, time.Minute),
		CancelledRetention: p.duration("RIVER_CANCELLED_JOB_RETENTION", 24*time.Hour, time.Minute),
		DiscardedRetention: p.duration("RIVER_DISCARDED_JOB_RETENTION", 7*24*time.Hour, time.Hour),
		PollOnly:           p.boolean("RIVER_POLL_ONLY", false),
		Workers:            map[string]int{},
	}
	for _, q := range jobargs.Queues {
		cfg.River.Workers[q] = p.integer("RIVER_WORKERS_"+strings.ToUpper(q), defaultWorkers[q], 1, 10000)
	}

	// Defaults under the providers' published limits (Stripe live: 100
	// writes/s; test mode 25) with room for the burst and a margin: the
	// busiest second is limit + burst, and a starved process's late
	// sleepers can bunch ~10% more (docs/DEPLOYMENT.md).
	cfg.RateLimits = RateLimitConfig{
		Stripe:           float64(p.integer("STRIPE_RATE_LIMIT", 70, 0, 100_000)),
		StripeBurst:      p.integer("STRIPE_RATE_BURST", 15, 1, 100_000),
		Hyperswitch:      float64(p.integer("HYPERSWITCH_RATE_LIMIT", 50, 0, 100_000)),
		HyperswitchBurst: p.integer("HYPERSWITCH_RATE_BURST", 10, 1, 100_000),
		SMTP:             float64(p.integer("SMTP_RATE_LIMIT", 10, 0, 100_000)),
		SMTPBurst:        p.integer("SMTP_RATE_BURST", 2, 1, 100_000),
		MaxWait:          p.duration("RATE_LIMIT_MAX_WAIT", 5*time.Second, 0),
	}

	cfg.WebhookEventRetentionDays = p.integer("WEBHOOK_EVENT_RETENTION_DAYS", 30, 4, 36500)
	cfg.Sandbox = SandboxConfig{
		Enabled:     p.boolean("SANDBOX_ENABLED", cfg.Env == Development && !cfg.Hyperswitch.Enabled && !cfg.Stripe.Enabled),
		RefundDelay: p.duration("SANDBOX_REFUND_DELAY", 2*time.Second, 0),
		AllowRemote: p.boolean("SANDBOX_ALLOW_REMOTE", false),
	}
	defaultOrigins := ""
	if cfg.Env == Development {
		defaultOrigins = DefaultDevCORSOrigins
	}
	for _, o := range strings.Split(p.str("CORS_ALLOWED_ORIGINS", defaultOrigins), ",") {
		// An origin has no path: a trailing slash is forgiven.
		if o = strings.TrimSuffix(strings.TrimSpace(o), "/"); o != "" {
			cfg.CORSAllowedOrigins = append(cfg.CORSAllowedOrigins, strings.ToLower(o))
		}
	}

	cfg.problems = p.problems
	cfg.set = p.set
	return cfg, nil
}

// RiverUIEnabled reports whether River UI has credentials to be served with.
func (c *Config) RiverUIEnabled() bool { return c.RiverUIUsername != "" && c.RiverUIPassword != "" }

// Vars returns the names of every variable Load reads, sorted. The config
// drift test checks each is documented.
func Vars() []string {
	seen := map[string]bool{}
	_, _ = Load(func(name string) string { seen[name] = true; return "" })
	names := make([]string, 0, len(seen))
	for n := range seen {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// IsSet reports whether the variable was given a non-empty value.
func (c *Config) IsSet(name string) bool { return c.set[name] }
