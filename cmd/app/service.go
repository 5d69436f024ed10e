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

	"github.com/rs/zerolog"

	"github.com/veza/backend/config"
	vezahttp "github.com/veza/backend/http"
	"github.com/veza/backend/hyperswitch"
	"github.com/veza/backend/jobs"
	"github.com/veza/backend/mail"
	"github.com/veza/backend/migrations"
	"github.com/veza/backend/riverui"
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
		WorkerMaxConns: cfg.DatabaseWorkerMaxConns,
	})
	if err != nil {
		return nil, err
	}
	runner, err := migrations.NewRunner(db.Primary(), jobs.SlogLogger(log.Level(max(cfg.LogLevel, zerolog.WarnLevel))))
	if err != nil {
		db.Close()
		return nil, err
	}
	return &app{cfg: cfg, log: log, db: db, runner: runner}, nil
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

	if err := a.runner.CheckCurrent(ctx); err != nil {
		return err
	}

	var hs *hyperswitch.Client
	if cfg.Hyperswitch.Enabled {
		hs = hyperswitch.New(cfg.Hyperswitch.BaseURL, cfg.Hyperswitch.APIKey, nil)
	}
	var sc *stripeconnect.Client
	if cfg.Stripe.Enabled {
		sc = stripeconnect.New(cfg.Stripe.SecretKey, cfg.Stripe.APIBase, nil)
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
	stores, err := openStores(ctx, cfg)
	if err != nil {
		return err
	}
	// River and its workers on their own pool; the API (and its
	// transactional inserts, which use the API's transaction) on a.db.
	workerDB := a.db.Workers()
	// The workers' state changes insert their jobs through an insert-only
	// client (a working client needs its workers first); the handlers
	// insert through the same one, in the API's transactions.
	inserter, err := jobs.NewInserter(workerDB.Primary(), jobs.ClientOpts{River: cfg.River, Logger: log})
	if err != nil {
		return fmt.Errorf("error creating River inserter: %w", err)
	}
	settler := jobs.NewSettler(cfg, log)
	client, err := jobs.NewClient(workerDB.Primary(), jobs.ClientOpts{
		River:        cfg.River,
		Logger:       log,
		PeriodicJobs: jobs.PeriodicJobs(cfg),
		Workers: jobs.NewWorkers(jobs.Deps{
			Config:      cfg,
			DB:          workerDB,
			Inserter:    inserter,
			Settle:      settler,
			Mail:        mail.NewSender(cfg.SMTP, log, cfg.Env == config.Development),
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

	var srv *vezahttp.Server
	serveErr := make(chan error, 1)
	uiCtx, stopUI := context.WithCancel(context.WithoutCancel(ctx))
	defer stopUI()
	if withHTTP {
		opts := vezahttp.ServerOpts{
			Logger:                   log,
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
		srv = vezahttp.NewServer(opts)
		ln, err := net.Listen("tcp", cfg.HTTPAddr)
		if err != nil {
			stopRiver(client, cfg.ShutdownTimeout, log)
			return fmt.Errorf("error listening on HTTP_ADDR %s: %w", cfg.HTTPAddr, err)
		}
		lifecycle(log).Str("addr", ln.Addr().String()).Bool("river_ui", opts.RiverUI != nil).Msg("http server listening")
		go func() { serveErr <- srv.Serve(ln) }()
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
func openStores(ctx context.Context, cfg *config.Config) (jobs.Stores, error) {
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
			CreateBucket: cfg.Env == config.Development,
		})
		if err != nil {
			return stores, err
		}
		stores.ByName[storage.BackendS3] = s3
	}
	return stores, nil
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
