package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	nethttp "net/http"
	"net/http/pprof"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river/rivertype"
	"github.com/rs/zerolog"

	"github.com/veza/backend/config"
	vezahttp "github.com/veza/backend/http"
	"github.com/veza/backend/hyperswitch"
	"github.com/veza/backend/jobs"
	"github.com/veza/backend/mail"
	"github.com/veza/backend/migrations"
	"github.com/veza/backend/obs"
	"github.com/veza/backend/ratelimit"
	"github.com/veza/backend/riverui"
	"github.com/veza/backend/sandbox"
	"github.com/veza/backend/storage"
	"github.com/veza/backend/store"
	"github.com/veza/backend/stripeconnect"
)

// app is what every subcommand that touches the database boots.
type app struct {
	cfg    *config.Config
	log    zerolog.Logger
	db     *store.DB
	runner *migrations.Runner
	// tracing is nil unless OTEL_EXPORTER_OTLP_*ENDPOINT is set (service
	// commands only).
	tracing *obs.Tracing
}

// lifecycle is an info line printed whatever LOG_LEVEL: that the process is
// up, where it listens and that it stopped are what an operator (and a test
// harness waiting for a process on port 0) always needs.
func lifecycle(log zerolog.Logger) *zerolog.Event {
	return log.Log().Str(zerolog.LevelFieldName, zerolog.InfoLevel.String())
}

func newLogger(w io.Writer, level zerolog.Level) zerolog.Logger {
	return zerolog.New(w).Level(level).With().Timestamp().Str("service", "veza").Logger()
}

// boot loads and validates the configuration and opens the pools. validate
// is false for commands that only need the database (migrate): a migration
// job must not need SMTP settings to run.
func boot(ctx context.Context, getenv func(string) string, stdout io.Writer, validate bool) (*app, error) {
	cfg, err := config.Load(getenv)
	if err != nil {
		return nil, err
	}
	log := newLogger(stdout, cfg.LogLevel)
	var tracing *obs.Tracing
	var tracer pgx.QueryTracer
	if validate {
		tracing, err = obs.NewTracing(ctx, obs.TraceConfig{
			Endpoint: cfg.OTLPEndpoint, TracesEndpoint: cfg.OTLPTracesEndpoint, ServiceName: cfg.OTELServiceName, Version: version,
		})
		if err != nil {
			return nil, err
		}
		if tracing != nil {
			log = log.Hook(obs.TraceHook{})
			tracer = &obs.QueryTracer{Tracer: tracing.Tracer()}
		}
	}
	if validate {
		if err := cfg.ValidateForEnvironment(log); err != nil {
			return nil, err
		}
	} else if cfg.Env == config.Production && !cfg.IsSet("DATABASE_URL") {
		return nil, &config.VarError{Name: "DATABASE_URL", Reason: "is required in production"}
	}
	// Deprecated SMTP names warn once, here, with the real logger.
	mail.LoadConfigWithLogger(getenv, &log)

	db, err := store.Open(ctx, store.Opts{
		URL: cfg.DatabaseURL, ReadURL: cfg.DatabaseReadURL,
		MaxConns: cfg.DatabaseMaxConns, ReadMaxConns: cfg.DatabaseReadMaxConns,
		WorkerMaxConns: cfg.DatabaseWorkerMaxConns, Tracer: tracer,
	})
	if err != nil {
		return nil, err
	}
	runner, err := migrations.NewRunner(db.Primary(), jobs.SlogLogger(log.Level(max(cfg.LogLevel, zerolog.WarnLevel))))
	if err != nil {
		db.Close()
		return nil, err
	}
	return &app{cfg: cfg, log: log, db: db, runner: runner, tracing: tracing}, nil
}

// command boots a one-shot command on a current schema (configuration not
// validated: it needs only the database) and runs fn with it, then closes
// the pools. inserter is an insert-only River client for commands that
// enqueue.
func command(ctx context.Context, getenv func(string) string, fn func(a *app, inserter *jobs.Client) error) error {
	a, err := boot(ctx, getenv, io.Discard, false)
	if err != nil {
		return err
	}
	defer a.db.Close()
	if err := a.runner.CheckCurrent(ctx); err != nil {
		return err
	}
	inserter, err := jobs.NewInserter(a.db.Primary(), jobs.ClientOpts{Logger: a.log})
	if err != nil {
		return err
	}
	return fn(a, inserter)
}

// runService runs workers (and, with withHTTP, the API and River UI) until
// ctx ends, then shuts down gracefully: stop accepting, finish in-flight
// requests, let running jobs finish within SHUTDOWN_TIMEOUT.
func runService(ctx context.Context, getenv func(string) string, stdout io.Writer, withHTTP bool) error {
	a, err := boot(ctx, getenv, stdout, true)
	if err != nil {
		return err
	}
	defer a.db.Close()
	cfg, log := a.cfg, a.log

	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := a.tracing.Shutdown(sctx); err != nil {
			log.Warn().Err(err).Msg("tracing: spans not exported at shutdown")
		}
	}()

	if err := a.runner.CheckCurrent(ctx); err != nil {
		return err
	}

	var metrics *obs.Metrics
	if cfg.MetricsAddr != "" {
		metrics = obs.NewMetrics()
		metrics.Register(obs.NewDBGauges(a.db.Primary(), a.db.ForRead(), cfg.MetricsRefresh, metrics, log))
	}
	tp := a.tracing.Provider()
	limits, err := newLimiters(ctx, a.db, cfg.RateLimits)
	if err != nil {
		return err
	}
	// The sandbox replaces both providers: the clients below call its
	// simulators, which `app serve` answers under /sandbox.
	var ln net.Listener
	defer func() {
		if ln != nil {
			_ = ln.Close()
		}
	}()
	var sbx *sandbox.Sandbox
	if cfg.Sandbox.Enabled {
		var base string
		if withHTTP {
			// Listen first: the simulators' address is the service's own.
			if ln, err = net.Listen("tcp", cfg.HTTPAddr); err != nil {
				return fmt.Errorf("error listening on HTTP_ADDR %s: %w", cfg.HTTPAddr, err)
			}
			base = loopbackURL(ln.Addr().String())
		} else if base = loopbackURL(cfg.HTTPAddr); strings.HasSuffix(base, ":0") {
			return &config.VarError{Name: "HTTP_ADDR", Reason: "app work in the sandbox calls the simulators of the app serve on HTTP_ADDR; port 0 cannot be reached"}
		}
		useSandbox(cfg, base)
		if withHTTP {
			if sbx, err = sandbox.Open(ctx, sandbox.Opts{DB: a.db.Primary(), URL: base + sandbox.Path, ServiceURL: base,
				RefundDelay: cfg.Sandbox.RefundDelay, Logger: log}); err != nil {
				return err
			}
		} else if err := sandbox.EnsureSchema(ctx, a.db.Primary()); err != nil {
			return err
		}
		lifecycle(log).Str("url", base+sandbox.Path).Str("emails", base+sandbox.Path+"/emails").
			Msg("sandbox: simulated Hyperswitch and Stripe (development only; set HYPERSWITCH_ENABLED or STRIPE_CONNECT_ENABLED to use real ones)")
	}
	// Pacing outside metrics: a call our bucket holds back is not a call.
	var hs *hyperswitch.Client
	if cfg.Hyperswitch.Enabled {
		hc := hyperswitch.DefaultHTTPClient()
		hc.Transport = ratelimit.Transport(obs.Transport(hc.Transport, obs.ProviderHyperswitch, metrics, tp), limits.hyperswitch)
		hs = hyperswitch.New(cfg.Hyperswitch.BaseURL, cfg.Hyperswitch.APIKey, hc)
	}
	var sc *stripeconnect.Client
	if cfg.Stripe.Enabled {
		hc := stripeconnect.DefaultHTTPClient()
		if cfg.Sandbox.Enabled {
			hc.Transport = sandbox.StripeTransport(hc.Transport)
		}
		hc.Transport = ratelimit.Transport(obs.Transport(hc.Transport, obs.ProviderStripe, metrics, tp), limits.stripe,
			ratelimit.ObjectBusy(stripeconnect.ObjectBusy))
		sc = stripeconnect.New(cfg.Stripe.SecretKey, cfg.Stripe.APIBase, hc)
	}
	var middleware []rivertype.Middleware
	if metrics != nil || a.tracing != nil {
		middleware = append(middleware, &obs.RiverMiddleware{Metrics: metrics, Tracer: a.tracing.Tracer()})
	}
	if cfg.PprofAddr != "" {
		// Profiling endpoint on loopback only (config refuses other hosts).
		go func() {
			srv := &nethttp.Server{Addr: cfg.PprofAddr, Handler: pprofMux(), ReadHeaderTimeout: 5 * time.Second}
			log.Info().Str("addr", cfg.PprofAddr).Msg("pprof listening")
			if err := srv.ListenAndServe(); err != nil {
				log.Warn().Err(err).Msg("pprof server stopped")
			}
		}()
	}
	stores, err := openStores(ctx, cfg, func(rt nethttp.RoundTripper) nethttp.RoundTripper {
		return obs.Transport(rt, obs.ProviderS3, metrics, tp)
	})
	if err != nil {
		return err
	}
	// River and its workers on their own pool; the API (and its
	// transactional inserts, which use the API's transaction) on a.db.
	workerDB := a.db.Workers()
	// The workers' state changes insert their jobs through an insert-only
	// client (a working client needs its workers first); the handlers
	// insert through the same one, in the API's transactions.
	inserter, err := jobs.NewInserter(workerDB.Primary(), jobs.ClientOpts{River: cfg.River, Logger: log, Middleware: middleware})
	if err != nil {
		return fmt.Errorf("error creating River inserter: %w", err)
	}
	settler := jobs.NewSettler(cfg, log)
	client, err := jobs.NewClient(workerDB.Primary(), jobs.ClientOpts{
		River:        cfg.River,
		Logger:       log,
		PeriodicJobs: jobs.PeriodicJobs(cfg),
		Middleware:   middleware,
		Workers: jobs.NewWorkers(jobs.Deps{
			Config:      cfg,
			DB:          workerDB,
			Inserter:    inserter,
			Settle:      settler,
			Mail:        sender(cfg, log, metrics, limits.smtp, a.db),
			Metrics:     metrics,
			Hyperswitch: hs,
			Stripe:      sc,
			Stores:      stores,
			Logger:      log,
		}),
	})
	if err != nil {
		return fmt.Errorf("error creating River client: %w", err)
	}
	// River runs on its own context: a signal must start a graceful stop,
	// not cancel the jobs in flight.
	if err := client.Start(context.WithoutCancel(ctx)); err != nil {
		return fmt.Errorf("error starting River: %w", err)
	}

	serveErr := make(chan error, 1)
	if metrics != nil {
		msrv, err := serveMetrics(cfg, metrics, log, serveErr)
		if err != nil {
			stopRiver(client, cfg.ShutdownTimeout, log)
			return err
		}
		if msrv != nil {
			defer msrv.Close()
		}
	}
	var srv *vezahttp.Server
	uiCtx, stopUI := context.WithCancel(context.WithoutCancel(ctx))
	defer stopUI()
	if withHTTP {
		opts := vezahttp.ServerOpts{
			Logger:                   log,
			CORSAllowedOrigins:       cfg.CORSAllowedOrigins,
			DevPages:                 cfg.Env == config.Development,
			DB:                       a.db,
			Inserter:                 inserter,
			Settle:                   settler,
			Hyperswitch:              hs,
			WebhookSecret:            cfg.Hyperswitch.WebhookSecret,
			Stores:                   stores,
			MaxUploadBytes:           cfg.TrackMaxUploadBytes,
			RateLimitPerMinute:       cfg.RateLimitPerMinute,
			AuthRateLimitPerMinute:   cfg.AuthRateLimitPerMinute,
			InvalidWebhooksPerMinute: cfg.InvalidWebhooksPerMinute,
			TrustedProxies:           cfg.TrustedProxies,
			Stripe:                   sc,
			StripeWebhookSecret:      cfg.Stripe.WebhookSecret,
			PublicBaseURL:            cfg.PublicBaseURL,
			MaxConcurrentHashes:      cfg.MaxConcurrentHashes,
			HSTS:                     strings.HasPrefix(cfg.PublicBaseURL, "https://"),
			Metrics:                  metrics,
			Tracer:                   a.tracing.Tracer(),
			ReadyFunc: func(ctx context.Context) error {
				if err := a.db.Ping(ctx); err != nil {
					return errors.New("database unreachable")
				}
				if err := a.runner.CheckCurrent(ctx); err != nil {
					return errors.New("database schema is not current")
				}
				return nil
			},
		}
		if cfg.RiverUIEnabled() {
			opts.RiverUI, err = riverui.NewHandler(uiCtx, riverui.Opts{
				Client: client, Username: cfg.RiverUIUsername, Password: cfg.RiverUIPassword,
				Logger: jobs.SlogLogger(log),
			})
			if err != nil {
				return err
			}
		} else {
			log.Warn().Msg("River UI disabled: set RIVER_UI_USERNAME and RIVER_UI_PASSWORD to serve it at /riverui")
		}
		if sbx != nil {
			opts.Sandbox, opts.SandboxAllowRemote = sbx.Handler(), cfg.Sandbox.AllowRemote
			go sbx.Run(uiCtx)
		}
		srv = vezahttp.NewServer(opts)
		if ln == nil {
			if ln, err = net.Listen("tcp", cfg.HTTPAddr); err != nil {
				stopRiver(client, cfg.ShutdownTimeout, log)
				return fmt.Errorf("error listening on HTTP_ADDR %s: %w", cfg.HTTPAddr, err)
			}
		}
		lifecycle(log).Str("addr", ln.Addr().String()).Bool("river_ui", opts.RiverUI != nil).Msg("http server listening")
		served := ln
		ln = nil // the server closes it now
		go func() { serveErr <- srv.Serve(served) }()
	}
	lifecycle(log).Str("env", string(cfg.Env)).Str("version", version).Bool("http", withHTTP).Msg("service started")

	select {
	case <-ctx.Done():
		log.Info().Msg("shutdown signal received")
	case err := <-serveErr:
		log.Error().Err(err).Msg("http server stopped unexpectedly")
		stopRiver(client, cfg.ShutdownTimeout, log)
		return fmt.Errorf("http server: %w", err)
	}

	if srv != nil {
		sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
		if err := srv.Shutdown(sctx); err != nil {
			log.Warn().Err(err).Msg("http shutdown did not finish in time")
		}
		cancel()
	}
	stopRiver(client, cfg.ShutdownTimeout, log)
	lifecycle(log).Msg("shutdown complete")
	return nil
}

// stopRiver lets running jobs finish within timeout, then cancels them. A
// cancelled job is not lost: River retries it (or the rescuer does).
func stopRiver(client *jobs.Client, timeout time.Duration, log zerolog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := client.Stop(ctx); err == nil {
		return
	}
	log.Warn().Dur("timeout", timeout).Msg("jobs still running at the shutdown deadline: cancelling them")
	hctx, hcancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer hcancel()
	_ = client.StopAndCancel(hctx)
}

// openStores opens local disk always (tracks uploaded before a switch to S3
// stay readable) and S3 when AWS_S3_ENABLED. The bucket is checked at boot,
// and created only in development.
func openStores(ctx context.Context, cfg *config.Config, wrap func(nethttp.RoundTripper) nethttp.RoundTripper) (jobs.Stores, error) {
	stores := jobs.Stores{ByName: map[string]storage.Store{}, Active: cfg.TrackStorageBackend}
	local, err := storage.NewLocal(cfg.TrackStorageDir)
	if err != nil {
		return stores, err
	}
	stores.ByName[storage.BackendLocal] = local
	if cfg.S3.Enabled {
		s3, err := storage.NewS3(ctx, storage.S3Opts{
			Endpoint: cfg.S3.Endpoint, Bucket: cfg.S3.Bucket, Region: cfg.S3.Region,
			AccessKey: cfg.S3.AccessKey, SecretKey: cfg.S3.SecretKey, UseSSL: cfg.S3.UseSSL,
			CreateBucket: cfg.Env == config.Development, Wrap: wrap,
		})
		if err != nil {
			return stores, err
		}
		stores.ByName[storage.BackendS3] = s3
	}
	return stores, nil
}

// sender is the mail sender the configuration describes, counted as smtp
// calls when it really sends.
func sender(cfg *config.Config, log zerolog.Logger, metrics *obs.Metrics, limit *ratelimit.Limiter, db *store.DB) mail.Sender {
	if cfg.Sandbox.Enabled && !cfg.SMTP.Enabled() {
		return &sandbox.Inbox{DB: db.Primary(), Logger: log}
	}
	s := mail.NewSender(cfg.SMTP, log, cfg.Env == config.Development)
	if !cfg.SMTP.Enabled() {
		return s
	}
	return ratelimit.Sender(obs.Sender(s, metrics), limit)
}

type limiters struct{ stripe, hyperswitch, smtp *ratelimit.Limiter }

// newLimiters opens each provider's bucket (nil: no limit configured).
func newLimiters(ctx context.Context, db *store.DB, c config.RateLimitConfig) (limiters, error) {
	var l limiters
	var err error
	if l.stripe, err = ratelimit.New(ctx, db.Primary(), obs.ProviderStripe, c.Stripe, c.StripeBurst, c.MaxWait); err != nil {
		return l, err
	}
	if l.hyperswitch, err = ratelimit.New(ctx, db.Primary(), obs.ProviderHyperswitch, c.Hyperswitch, c.HyperswitchBurst, c.MaxWait); err != nil {
		return l, err
	}
	l.smtp, err = ratelimit.New(ctx, db.Primary(), obs.ProviderSMTP, c.SMTP, c.SMTPBurst, c.MaxWait)
	return l, err
}

// serveMetrics serves /metrics on METRICS_ADDR, its own listener apart from
// the public port. The development default being taken (another `make run`)
// is a warning; an address the operator chose failing is an error.
func serveMetrics(cfg *config.Config, metrics *obs.Metrics, log zerolog.Logger, serveErr chan<- error) (*nethttp.Server, error) {
	ln, err := net.Listen("tcp", cfg.MetricsAddr)
	if err != nil {
		if cfg.Env == config.Development && !cfg.IsSet("METRICS_ADDR") {
			log.Warn().Err(err).Str("addr", cfg.MetricsAddr).Msg("metrics not served: the development default METRICS_ADDR is taken; set METRICS_ADDR (or off)")
			return nil, nil
		}
		return nil, fmt.Errorf("error listening on METRICS_ADDR %s: %w", cfg.MetricsAddr, err)
	}
	mux := nethttp.NewServeMux()
	mux.Handle("/metrics", metrics.Handler())
	srv := &nethttp.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	lifecycle(log).Str("addr", ln.Addr().String()).Msg("metrics listening")
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, nethttp.ErrServerClosed) {
			serveErr <- fmt.Errorf("metrics server: %w", err)
		}
	}()
	return srv, nil
}

func pprofMux() *nethttp.ServeMux {
	mux := nethttp.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	return mux
}

// loopbackURL is how this machine reaches addr (host:port, the host often
// empty or unspecified): http://127.0.0.1:port unless a host is named.
func loopbackURL(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "http://" + addr
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port)
}

// useSandbox points the provider configuration at the sandbox's
// simulators at base (the service's own address).
func useSandbox(cfg *config.Config, base string) {
	cfg.Hyperswitch.Enabled = true
	cfg.Hyperswitch.BaseURL = base + sandbox.Path + "/hyperswitch"
	cfg.Hyperswitch.APIKey = sandbox.HyperswitchAPIKey
	cfg.Hyperswitch.WebhookSecret = sandbox.HyperswitchWebhookSecret
	cfg.Stripe.Enabled = true
	cfg.Stripe.APIBase = base // and sandbox.StripeTransport adds the path
	cfg.Stripe.SecretKey = sandbox.StripeSecretKey
	cfg.Stripe.WebhookSecret = sandbox.StripeWebhookSecret
}
