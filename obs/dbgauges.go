package obs

import (
	"context"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/veza/backend"
	"github.com/veza/backend/jobargs"
)

// The states a job can wait or stop in. Completed jobs are not gauged (they
// are most of the table and counting them would read it all: their rate is
// veza_jobs_total{outcome="completed"}).
var gaugedJobStates = []string{"available", "scheduled", "retryable", "running", "pending", "discarded", "cancelled"}

// DBGauges reads the gauges that live in the database: queue depth and age
// from river_job, and rows by status of orders, transfers, refunds and
// disputes. It reads them when scraped, at most once per Every for the queue
// and once per 6×Every for the business tables (a scrape in between gets
// the last values), so N processes scraped every 15 s cost N queries per
// Every at most, whatever the scrape rate. Every process reports the same
// values: aggregate with max(), not sum().
type DBGauges struct {
	Pool *pgxpool.Pool // the primary: queue age must not lag
	// ReadPool counts the business tables (a replica when configured: a
	// few seconds of lag do not matter there, and the scans leave the
	// primary).
	ReadPool *pgxpool.Pool
	Every    time.Duration
	Metrics  *Metrics // counts refresh errors
	Logger   zerolog.Logger

	mu            sync.Mutex
	queueAt       time.Time
	statusAt      time.Time
	queueJobs     map[[2]string]float64 // queue, state
	oldest        map[string]float64
	statuses      map[[2]string]float64 // table, status
	disputesOpen  float64
	queueJobsDesc *prometheus.Desc
	oldestDesc    *prometheus.Desc
	ordersDesc    *prometheus.Desc
	transfersDesc *prometheus.Desc
	refundsDesc   *prometheus.Desc
	disputesDesc  *prometheus.Desc
}

// NewDBGauges returns the collector; register it with Metrics.Register.
func NewDBGauges(pool, readPool *pgxpool.Pool, every time.Duration, m *Metrics, logger zerolog.Logger) *DBGauges {
	if every <= 0 {
		every = 5 * time.Second
	}
	return &DBGauges{
		Pool: pool, ReadPool: readPool, Every: every, Metrics: m, Logger: logger,
		queueJobsDesc: prometheus.NewDesc("veza_queue_jobs", "River jobs by queue and state (completed excluded).", []string{"queue", "state"}, nil),
		oldestDesc:    prometheus.NewDesc("veza_queue_oldest_available_seconds", "Age of the oldest job waiting to run in each queue (0 when none waits).", []string{"queue"}, nil),
		ordersDesc:    prometheus.NewDesc("veza_orders", "Orders by status.", []string{"status"}, nil),
		transfersDesc: prometheus.NewDesc("veza_transfers", "Seller transfers (payouts) by status.", []string{"status"}, nil),
		refundsDesc:   prometheus.NewDesc("veza_refunds", "Refunds by status.", []string{"status"}, nil),
		disputesDesc:  prometheus.NewDesc("veza_disputes_open", "Disputes not yet decided (opened or challenged).", nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (g *DBGauges) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{g.queueJobsDesc, g.oldestDesc, g.ordersDesc, g.transfersDesc, g.refundsDesc, g.disputesDesc} {
		ch <- d
	}
}

// Collect implements prometheus.Collector: refresh what is due, then report.
func (g *DBGauges) Collect(ch chan<- prometheus.Metric) {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if now.Sub(g.queueAt) >= g.Every {
		if err := g.refreshQueues(ctx); err != nil {
			g.failed(err)
		} else {
			g.queueAt = now
		}
	}
	if now.Sub(g.statusAt) >= 6*g.Every {
		if err := g.refreshStatuses(ctx); err != nil {
			g.failed(err)
		} else {
			g.statusAt = now
		}
	}
	for _, q := range jobargs.Queues {
		for _, s := range gaugedJobStates {
			ch <- prometheus.MustNewConstMetric(g.queueJobsDesc, prometheus.GaugeValue, g.queueJobs[[2]string{q, s}], q, s)
		}
		ch <- prometheus.MustNewConstMetric(g.oldestDesc, prometheus.GaugeValue, g.oldest[q], q)
	}
	for _, t := range statusTables {
		for _, s := range t.statuses {
			ch <- prometheus.MustNewConstMetric(g.descFor(t.name), prometheus.GaugeValue, g.statuses[[2]string{t.name, s}], s)
		}
	}
	ch <- prometheus.MustNewConstMetric(g.disputesDesc, prometheus.GaugeValue, g.disputesOpen)
}

func (g *DBGauges) failed(err error) {
	if g.Metrics != nil {
		g.Metrics.refreshErrors.Inc()
	}
	g.Logger.Warn().Err(err).Msg("metrics: could not refresh the database gauges")
}

// refreshQueues is one query on river_job's (state, queue, ...) index: the
// states listed never include completed.
func (g *DBGauges) refreshQueues(ctx context.Context) error {
	rows, err := g.Pool.Query(ctx, `
		SELECT queue, state::text, count(*)::float8,
		       COALESCE(EXTRACT(EPOCH FROM now() - min(scheduled_at) FILTER (WHERE state = 'available')), 0)::float8
		FROM river_job
		WHERE state = ANY($1::river_job_state[])
		GROUP BY queue, state`, gaugedJobStates)
	if err != nil {
		return err
	}
	defer rows.Close()
	jobs, oldest := map[[2]string]float64{}, map[string]float64{}
	for rows.Next() {
		var queue, state string
		var n, age float64
		if err := rows.Scan(&queue, &state, &n, &age); err != nil {
			return err
		}
		jobs[[2]string{queue, state}] = n
		if state == "available" {
			oldest[queue] = max(age, 0)
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	g.queueJobs, g.oldest = jobs, oldest
	return nil
}

type statusTable struct {
	name     string
	statuses []string
}

func (g *DBGauges) descFor(table string) *prometheus.Desc {
	switch table {
	case "orders":
		return g.ordersDesc
	case "seller_transfers":
		return g.transfersDesc
	default:
		return g.refundsDesc
	}
}

var statusTables = []statusTable{
	{"orders", strs(veza.OrderPending, veza.OrderCompleted, veza.OrderFailed, veza.OrderCancelled, veza.OrderExpired,
		veza.OrderDisputed, veza.OrderChargedBack, veza.OrderRefundPending, veza.OrderRefunded)},
	{"seller_transfers", strs(veza.TransferPending, veza.TransferCompleted, veza.TransferFailed, veza.TransferPermanentlyFailed,
		veza.TransferReversalPending, veza.TransferReversed, veza.TransferReversalFailed)},
	{"refunds", strs(veza.RefundPending, veza.RefundSucceeded, veza.RefundFailed)},
}

func strs[T ~string](vs ...T) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = string(v)
	}
	return out
}

// refreshStatuses counts rows by status in one statement.
func (g *DBGauges) refreshStatuses(ctx context.Context) error {
	rows, err := g.ReadPool.Query(ctx, `
		SELECT 'orders', status::text, count(*)::float8 FROM orders GROUP BY status
		UNION ALL SELECT 'seller_transfers', status::text, count(*)::float8 FROM seller_transfers GROUP BY status
		UNION ALL SELECT 'refunds', status::text, count(*)::float8 FROM refunds GROUP BY status
		UNION ALL SELECT 'disputes_open', '', count(*)::float8 FROM disputes WHERE status IN ('opened', 'challenged')`)
	if err != nil {
		return err
	}
	defer rows.Close()
	statuses := map[[2]string]float64{}
	var open float64
	for rows.Next() {
		var table, status string
		var n float64
		if err := rows.Scan(&table, &status, &n); err != nil {
			return err
		}
		if table == "disputes_open" {
			open = n
			continue
		}
		statuses[[2]string{table, status}] = n
	}
	if err := rows.Err(); err != nil {
		return err
	}
	g.statuses, g.disputesOpen = statuses, open
	return nil
}
