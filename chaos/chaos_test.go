package chaos_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/veza/backend/hyperswitch"
	"github.com/veza/backend/hyperswitch/hyperswitchtest"
	"github.com/veza/backend/internal/fake"
	"github.com/veza/backend/internal/servicetest"
	"github.com/veza/backend/jobargs"
	"github.com/veza/backend/mail/mailtest"
	"github.com/veza/backend/store/dbtest"
	"github.com/veza/backend/stripeconnect/stripetest"
)

func TestMain(m *testing.M) {
	dbtest.Main(m, servicetest.Cleanup)
}

// keyTTL is how long the fake Stripe keeps keys here: a little longer
// than the service's STRIPE_KEY_REUSE_WINDOW, as 24 h is longer than 23 h.
const keyTTL = 4 * time.Second

const (
	webhookSecret = "whsec_chaos_hash_key_9f3a"
	uiPassword    = "chaos-river-ui-password-77"
	userPassword  = "chaos user password 31"
)

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

type harness struct {
	t      *testing.T
	bin    string
	env    map[string]string
	dir    string
	base   string
	db     *pgxpool.Pool
	hs     *hyperswitchtest.Server
	stripe *stripetest.Server
	smtp   *mailtest.Server

	mu      sync.Mutex
	procs   map[string]*servicetest.Service
	kills   int
	secrets []string
}

func newHarness(t *testing.T) *harness {
	bin, err := servicetest.Build()
	require.NoError(t, err)
	h := &harness{t: t, bin: bin, dir: t.TempDir(), procs: map[string]*servicetest.Service{},
		hs: hyperswitchtest.Start(t), stripe: stripetest.Start(t), smtp: mailtest.Start(t, "127.0.0.1:0")}
	dbURL := dbtest.URL(t)
	h.db = dbtest.PoolFor(t, dbURL)
	h.env = servicetest.FakeEnv(h.hs, h.stripe, h.smtp, webhookSecret)
	for k, v := range map[string]string{
		"APP_ENV": "development", "DATABASE_URL": dbURL, "LOG_LEVEL": "info",
		"SMTP_PASSWORD":     "smtp-secret-not-used",
		"RIVER_UI_USERNAME": "ops", "RIVER_UI_PASSWORD": uiPassword,
		// Killed jobs come back fast: River requires rescue >= timeout.
		"RIVER_JOB_TIMEOUT": "3s", "RIVER_RESCUE_STUCK_JOBS_AFTER": "4s", "RIVER_FETCH_COOLDOWN": "10ms",
		"TRANSFER_BACKOFF_BASE": "1s", "TRANSFER_BACKOFF_MAX": "2s", "TRANSFER_MAX_ATTEMPTS": "25", "TRANSFER_BALANCE_WAIT": "1s",
		// Keys live seconds here (the fake Stripe forgets them after
		// keyTTL): retries outlive their keys, as a day of Stripe trouble
		// would, and new rounds with look-ups happen all the time.
		"STRIPE_KEY_REUSE_WINDOW": "3s",
		"REVERSAL_BACKOFF_BASE":   "1s", "REVERSAL_BACKOFF_MAX": "2s", "REVERSAL_MAX_RETRIES": "25", "REVERSAL_KEY_SETTLE": "1s",
		"RATE_LIMIT_PER_MINUTE": "100000", "RATE_LIMIT_AUTH_PER_MINUTE": "100000",
		"SHUTDOWN_TIMEOUT": "5s", "TRACK_STORAGE_DIR": filepath.Join(h.dir, "tracks"),
	} {
		h.env[k] = v
	}
	h.secrets = []string{webhookSecret, uiPassword, userPassword, hyperswitchtest.APIKey, stripetest.SecretKey, "smtp-secret-not-used"}
	t.Cleanup(h.stopAll)
	return h
}

// start runs `app <command>` as name (its first word is the command), with
// extra variables, and waits until it is ready.
func (h *harness) start(name string, extra map[string]string) {
	h.t.Helper()
	env := map[string]string{}
	for k, v := range h.env {
		env[k] = v
	}
	for k, v := range extra {
		env[k] = v
	}
	svc, err := servicetest.Start(servicetest.Opts{Bin: h.bin, Command: strings.Fields(name)[0], Env: env,
		LogPath: filepath.Join(h.dir, strings.ReplaceAll(name, " ", "_")+".log")})
	require.NoError(h.t, err)
	h.mu.Lock()
	h.procs[name] = svc
	h.mu.Unlock()
	if svc.Addr() != "" {
		h.base = svc.URL()
	}
}

// kill sends SIGKILL: no graceful anything.
func (h *harness) kill(name string) {
	h.mu.Lock()
	svc := h.procs[name]
	h.kills++
	h.mu.Unlock()
	_ = svc.Kill()
}

// launch starts a killed process again without waiting for it: the next
// kill may land while it boots. It returns an error rather than failing the
// test: the killer goroutine may outlive a failed test by a moment.
func (h *harness) launch(name string) error {
	h.mu.Lock()
	svc := h.procs[name]
	h.mu.Unlock()
	return svc.Launch()
}

func (h *harness) starts() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, svc := range h.procs {
		n += svc.Starts()
	}
	return n
}

// eventually waits for cond; on timeout it fails with what is not settled.
func (h *harness) eventually(limit time.Duration, what string, cond func() bool) {
	h.t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			rows, _ := h.db.Query(context.Background(), `SELECT t.id::text, t.status, t.retry_count, COALESCE(t.error_message, ''),
				COALESCE((SELECT string_agg(j.state::text || '/' || j.attempt, ',') FROM river_job j WHERE j.args->>'transfer_id' = t.id::text), 'no job')
				FROM seller_transfers t WHERE t.status NOT IN ('completed', 'reversed') LIMIT 20`)
			var lines []string
			for rows.Next() {
				var id, st, msg, jobs string
				var retries int
				_ = rows.Scan(&id, &st, &retries, &msg, &jobs)
				lines = append(lines, fmt.Sprintf("%s %s retries=%d err=%q jobs=%s", id, st, retries, msg, jobs))
			}
			rows.Close()
			var states []string
			srows, _ := h.db.Query(context.Background(), `SELECT kind || ':' || state || '=' || count(*) FROM river_job WHERE state <> 'completed' GROUP BY kind, state`)
			for srows.Next() {
				var x string
				_ = srows.Scan(&x)
				states = append(states, x)
			}
			srows.Close()
			h.t.Fatalf("%s after %s; unsettled transfers: %v; jobs not completed: %v", what, limit, lines, states)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (h *harness) killCount() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.kills
}

func (h *harness) stopAll() {
	h.mu.Lock()
	procs := h.procs
	h.procs = map[string]*servicetest.Service{}
	h.mu.Unlock()
	for _, svc := range procs {
		_ = svc.Stop(15 * time.Second)
	}
}

func (h *harness) logs() string {
	var all strings.Builder
	entries, _ := os.ReadDir(h.dir)
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".log") {
			b, _ := os.ReadFile(filepath.Join(h.dir, e.Name()))
			all.Write(b)
		}
	}
	return all.String()
}

func (h *harness) call(method, path, token string, headers map[string]string, body any) (int, map[string]any, error) {
	var reader io.Reader
	if body != nil {
		raw, _ := json.Marshal(body)
		reader = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, h.base+path, reader)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	_ = json.Unmarshal(raw, &out)
	return resp.StatusCode, out, nil
}

// must retries a call until it answers want (the API process is never
// killed, but a webhook may meet a busy moment), failing after 30s.
func (h *harness) must(want int, method, path, token string, headers map[string]string, body any) map[string]any {
	h.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		status, out, err := h.call(method, path, token, headers, body)
		if err == nil && status == want {
			return out
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("%s %s: want %d, got %d %v %v", method, path, want, status, out, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// deliver posts a signed webhook until it is accepted, as Hyperswitch
// redelivers non-2xx answers.
func (h *harness) deliver(body []byte) {
	h.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		req, _ := http.NewRequest(http.MethodPost, h.base+"/webhooks/hyperswitch", bytes.NewReader(body))
		req.Header.Set(hyperswitch.SignatureHeader, hyperswitch.Sign(webhookSecret, body))
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("webhook never accepted: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (h *harness) count(sql string, args ...any) int {
	h.t.Helper()
	var n int
	require.NoError(h.t, h.db.QueryRow(context.Background(), sql, args...).Scan(&n))
	return n
}

// fate is what happens to a purchase after it is paid.
type fate string

const (
	kept        fate = ""             // completed, sellers paid
	refunded    fate = "refund"       // the buyer asks a refund
	disputeLost fate = "lost"         // a dispute of the whole payment, lost
	partialLost fate = "partial-lost" // a dispute of a third of it, lost while the payouts run
	disputeWon  fate = "won"          // a dispute opened while the payouts run, then won
)

type purchase struct {
	orderID, paymentID string
	amount             int64
	buyer              string
	fate               fate
	refund             bool
	disputed           int64 // the disputed amount (lost or won)
	disputeID          string
}

// fateOf spreads the fates: a third refunded, a sixth each lost in full,
// lost in part, won, kept.
func fateOf(i int) fate {
	return []fate{refunded, disputeLost, partialLost, refunded, kept, disputeWon}[i%6]
}

// chargedBack is what a lost dispute takes from the order's sellers: their
// total times disputed/amount, rounded half up (the sum of the shares).
func chargedBack(sellers, disputed, amount int64) int64 {
	if disputed >= amount {
		return sellers
	}
	return (2*sellers*disputed + amount) / (2 * amount)
}

// TestCrashSuite: purchases with two sellers each, their payments, refunds
// for a third, while worker processes are kill -9'd and restarted.
func TestCrashSuite(t *testing.T) {
	t.Parallel()
	n := envInt("CHAOS_PURCHASES", 12)
	wantKills := envInt("CHAOS_KILLS", 4)
	h := newHarness(t)
	ctx := context.Background()

	// serve works few jobs itself so the killable workers do most of it.
	one := map[string]string{}
	for _, q := range jobargs.Queues {
		one["RIVER_WORKERS_"+strings.ToUpper(q)] = "1"
	}
	h.start("serve", one)
	h.start("work 1", nil)
	h.start("work 2", nil)

	// Sellers with Stripe accounts and a track each; buyers.
	const sellers = 4
	type seller struct{ id, track, acct string }
	var ss []seller
	for i := 0; i < sellers; i++ {
		email := fmt.Sprintf("seller%d@chaos.test", i)
		h.must(201, "POST", "/v1/auth/register", "", nil, map[string]string{"email": email, "password": userPassword})
		login := h.must(200, "POST", "/v1/auth/login", "", nil, map[string]string{"email": email, "password": userPassword})
		token := login["token"].(string)
		h.secrets = append(h.secrets, token)
		acct := "acct_chaos" + strconv.Itoa(i)
		h.stripe.PutAccount(acct, true)
		h.must(200, "PUT", "/v1/me/payout-account", token, nil, map[string]string{"stripe_account_id": acct, "current_password": userPassword})
		id := login["user"].(map[string]any)["id"].(string)
		var track string
		require.NoError(t, h.db.QueryRow(ctx, `INSERT INTO tracks (owner_id, title, price_cents, currency) VALUES ($1, $2, $3, 'EUR') RETURNING id::text`,
			id, "Chaos "+strconv.Itoa(i), 999+int64(i)*337).Scan(&track))
		ss = append(ss, seller{id: id, track: track, acct: acct})
	}
	var buyers []string
	for i := 0; i < 3; i++ {
		email := fmt.Sprintf("buyer%d@chaos.test", i)
		h.must(201, "POST", "/v1/auth/register", "", nil, map[string]string{"email": email, "password": userPassword})
		login := h.must(200, "POST", "/v1/auth/login", "", nil, map[string]string{"email": email, "password": userPassword})
		buyers = append(buyers, login["token"].(string))
		h.secrets = append(h.secrets, login["token"].(string))
	}

	// Slow providers keep calls in flight, so kills land mid-call. And the
	// weather of real providers (PSP.md): a share of the calls do their
	// work and lose the answer, a share of Stripe's end in a 500 saved
	// under their key, and Stripe forgets keys after keyTTL.
	h.stripe.SetLatency(80 * time.Millisecond)
	h.hs.SetLatency(20 * time.Millisecond)
	seed := uint64(time.Now().UnixNano())
	t.Logf("provider weather seed %d", seed)
	h.stripe.SetKeyTTL(keyTTL)
	h.stripe.LoseRandomly(0.15, seed, fake.Lost502, fake.LostReset, fake.LostHTML200)
	h.stripe.SaveErrorsRandomly(0.1, seed+1)
	h.hs.LoseRandomly(0.1, seed+2, fake.Lost502, fake.LostHTML200)

	// The killer: kill -9 a random worker process at random moments, every
	// 0.3 to 2.5 s, until it has killed wantKills times.
	stopKiller := make(chan struct{})
	var killerDone sync.WaitGroup
	killerDone.Add(1)
	go func() {
		defer killerDone.Done()
		rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
		for h.killCount() < wantKills {
			select {
			case <-stopKiller:
				return
			case <-time.After(time.Duration(300+rng.IntN(2200)) * time.Millisecond):
			}
			name := []string{"work 1", "work 2"}[rng.IntN(2)]
			h.kill(name)
			time.Sleep(time.Duration(rng.IntN(400)) * time.Millisecond)
			if err := h.launch(name); err != nil {
				return
			}
		}
	}()
	var stopOnce sync.Once
	stopKilling := func() { stopOnce.Do(func() { close(stopKiller); killerDone.Wait() }) }
	t.Cleanup(stopKilling) // before the harness stops the processes

	began := time.Now()
	// Purchases: two sellers each, paid by webhook.
	purchases := make([]purchase, n)
	for i := range purchases {
		a, b := ss[i%sellers], ss[(i+1)%sellers]
		buyer := buyers[i%len(buyers)]
		body := h.must(201, "POST", "/v1/orders", buyer, map[string]string{"Idempotency-Key": uuid.NewString()},
			map[string]any{"track_ids": []string{a.track, b.track}})
		o := body["order"].(map[string]any)
		p := purchase{orderID: o["id"].(string), paymentID: o["payment_id"].(string), amount: int64(o["amount"].(float64)), buyer: buyer, fate: fateOf(i)}
		p.refund = p.fate == refunded
		h.hs.SetPaymentStatus(p.paymentID, "succeeded")
		h.deliver(hyperswitchtest.WebhookBody("evt_pay_"+p.orderID, "payment_succeeded",
			map[string]any{"payment_id": p.paymentID, "status": "succeeded", "amount": p.amount, "currency": "EUR"}))
		switch p.fate {
		case disputeWon:
			// Opened while its payouts run: those not yet sent are held.
			d := h.hs.OpenDispute(p.paymentID, 0)
			p.disputeID, p.disputed = d.DisputeID, p.amount
			h.deliver(h.hs.DisputeWebhook("evt_dp_open_"+d.DisputeID, d.DisputeID))
		case partialLost:
			// Lost while its payouts run (some in flight at Stripe): each
			// seller is paid, then reversed for their share.
			d := h.hs.OpenDispute(p.paymentID, p.amount/3)
			p.disputeID, p.disputed = d.DisputeID, p.amount/3
			h.deliver(h.hs.DisputeWebhook("evt_dp_open_"+d.DisputeID, d.DisputeID))
			h.hs.SetDisputeStatus(d.DisputeID, "dispute_lost")
			h.deliver(h.hs.DisputeWebhook("evt_dp_lost_"+d.DisputeID, d.DisputeID))
		}
		purchases[i] = p
	}

	t.Logf("purchases driven after %s", time.Since(began))
	// Refunds for a third and disputes lost, once their payouts are done;
	// the disputes opened earlier are won. All while the kills go on.
	for i, p := range purchases {
		switch p.fate {
		case disputeWon:
			h.hs.SetDisputeStatus(p.disputeID, "dispute_won")
			h.deliver(h.hs.DisputeWebhook("evt_dp_won_"+p.disputeID, p.disputeID))
			continue
		case disputeLost:
		case refunded:
		default:
			continue
		}
		h.eventually(3*time.Minute, "payouts of "+p.orderID, func() bool {
			return h.count(`SELECT count(*) FROM seller_transfers WHERE order_id = $1 AND status = 'completed'`, p.orderID) == 2
		})
		if p.fate == disputeLost {
			disputed := p.amount
			d := h.hs.OpenDispute(p.paymentID, disputed)
			purchases[i].disputeID, purchases[i].disputed = d.DisputeID, disputed
			h.deliver(h.hs.DisputeWebhook("evt_dp_open_"+d.DisputeID, d.DisputeID))
			h.hs.SetDisputeStatus(d.DisputeID, "dispute_lost")
			lost := h.hs.DisputeWebhook("evt_dp_lost_"+d.DisputeID, d.DisputeID)
			h.deliver(lost)
			h.deliver(lost) // Hyperswitch redelivers
			continue
		}
		body := h.must(202, "POST", "/v1/orders/"+p.orderID+"/refund", p.buyer, nil, map[string]string{"reason": "chaos"})
		refundID := body["refund"].(map[string]any)["id"].(string)
		psp := "veza_ref_" + refundID
		require.Eventually(t, func() bool { _, ok := h.hs.Refund(psp); return ok }, 60*time.Second, 50*time.Millisecond)
		h.hs.SetRefundStatus(psp, "succeeded", nil)
		h.deliver(hyperswitchtest.WebhookBody("evt_ref_"+refundID, "refund_succeeded",
			map[string]any{"refund_id": psp, "payment_id": p.paymentID, "status": "succeeded", "amount": p.amount, "currency": "EUR"}))
	}

	t.Logf("refunds and disputes driven after %s", time.Since(began))
	// Let the killer finish its kills while the tail drains.
	require.Eventually(t, func() bool { return h.killCount() >= wantKills }, 10*time.Minute, 100*time.Millisecond)
	stopKilling()

	// Quiescence: every transfer settled, no job left to run.
	refunds, lost := 0, 0
	for _, p := range purchases {
		switch p.fate {
		case refunded:
			refunds++
		case disputeLost, partialLost:
			lost++
		}
	}
	h.eventually(3*time.Minute, "the system never settled", func() bool {
		settled := h.count(`SELECT count(*) FROM seller_transfers WHERE status IN ('completed', 'reversed')`)
		live := h.count(`SELECT count(*) FROM river_job WHERE state IN ('available', 'running', 'retryable', 'pending')`)
		return settled == 2*n && h.count(`SELECT count(*) FROM seller_transfers WHERE status = 'reversed'`) == 2*(refunds+lost) && live == 0
	})

	t.Logf("settled after %s", time.Since(began))
	violations := h.checkInvariants(purchases)
	t.Logf("crash suite: purchases=%d refunds=%d disputes lost=%d won=%d kills=%d process starts=%d violations=%d", n, refunds, lost,
		h.count(`SELECT count(*) FROM disputes WHERE status = 'won'`), h.kills, h.starts(), len(violations))
	t.Logf("provider weather: stripe answers lost %d, saved 500s %d; hyperswitch answers lost %d; transfers that needed a new key round: payouts %d, reversals %d",
		h.stripe.Lost(), h.stripe.SavedErrors(), h.hs.Lost(), h.count(`SELECT count(*) FROM seller_transfers WHERE payout_round > 0`),
		h.count(`SELECT count(*) FROM seller_transfers WHERE reversal_round > 0`))
	require.Empty(t, violations)

	// Secrets never in logs nor in job args; no panic anywhere.
	logs := h.logs()
	require.NotContains(t, logs, `"level":"panic"`)
	require.NotContains(t, logs, "goroutine ", "no stack traces in logs")
	for _, secret := range h.secrets {
		require.NotContains(t, logs, secret, "a secret reached the logs")
	}
	rows, err := h.db.Query(ctx, `SELECT args::text FROM river_job`)
	require.NoError(t, err)
	args, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	for _, a := range args {
		for _, secret := range append(h.secrets, "$argon2id$") {
			require.NotContains(t, a, secret)
		}
	}
}

// checkInvariants compares the database with the fakes' records.
func (h *harness) checkInvariants(purchases []purchase) []string {
	ctx := context.Background()
	var v []string
	bad := func(format string, args ...any) { v = append(v, fmt.Sprintf(format, args...)) }

	transfersAt := map[string][]stripetest.Transfer{}
	for _, tr := range h.stripe.Transfers() {
		transfersAt[tr.TransferGroup] = append(transfersAt[tr.TransferGroup], tr)
	}
	reversalsOf := map[string]int{}
	var reversedAmount = map[string]int64{}
	for _, r := range h.stripe.Reversals() {
		reversalsOf[r.Transfer]++
		reversedAmount[r.Transfer] += r.Amount
	}

	for _, p := range purchases {
		var status string
		if err := h.db.QueryRow(ctx, `SELECT status FROM orders WHERE id = $1`, p.orderID).Scan(&status); err != nil {
			bad("order %s unreadable: %v", p.orderID, err)
			continue
		}
		want := map[fate]string{kept: "completed", disputeWon: "completed", refunded: "refunded", disputeLost: "charged_back", partialLost: "charged_back"}[p.fate]
		if status != want {
			bad("order %s is %s, want %s", p.orderID, status, want)
		}
		if pay, _ := h.hs.Payment(p.paymentID); pay.Status != "succeeded" {
			bad("order %s: payment %s is %s at the PSP", p.orderID, p.paymentID, pay.Status)
		}

		// Exactly one Stripe transfer per seller of the order.
		atStripe := transfersAt[p.orderID]
		perDest := map[string]int{}
		var paid int64
		for _, tr := range atStripe {
			perDest[tr.Destination]++
			paid += tr.Amount
		}
		if len(atStripe) != 2 || len(perDest) != 2 {
			bad("order %s: %d transfers to %d sellers at Stripe, want 2 and 2", p.orderID, len(atStripe), len(perDest))
		}
		if p.disputeID != "" {
			var st string
			var amount int64
			_ = h.db.QueryRow(ctx, `SELECT status, amount FROM disputes WHERE dispute_id = $1`, p.disputeID).Scan(&st, &amount)
			if wantSt := map[bool]string{true: "won", false: "lost"}[p.fate == disputeWon]; st != wantSt || amount != p.disputed {
				bad("order %s: dispute %s is %q for %d, want %s for %d", p.orderID, p.disputeID, st, amount, wantSt, p.disputed)
			}
		}
		lostDispute := p.fate == disputeLost || p.fate == partialLost
		var orderReversed int64
		var fees int64
		rows, err := h.db.Query(ctx, `SELECT status, amount, platform_fee, COALESCE(stripe_transfer_id, '') FROM seller_transfers WHERE order_id = $1`, p.orderID)
		if err != nil {
			bad("order %s: %v", p.orderID, err)
			continue
		}
		for rows.Next() {
			var st, stripeID string
			var amount, fee int64
			_ = rows.Scan(&st, &amount, &fee, &stripeID)
			fees += fee
			wantSt := "completed"
			if p.refund || lostDispute {
				wantSt = "reversed"
			}
			if st != wantSt {
				bad("order %s: transfer %s is %s, want %s", p.orderID, stripeID, st, wantSt)
			}
			tr, ok := h.stripe.Transfer(stripeID)
			if !ok || tr.Amount != amount {
				bad("order %s: transfer %q not at Stripe with amount %d", p.orderID, stripeID, amount)
			}
			if p.refund && (reversalsOf[stripeID] != 1 || reversedAmount[stripeID] != amount || !tr.Reversed) {
				bad("order %s: transfer %s reversed %d times for %d of %d", p.orderID, stripeID, reversalsOf[stripeID], reversedAmount[stripeID], amount)
			}
			if p.fate == disputeLost && (reversalsOf[stripeID] != 1 || reversedAmount[stripeID] != amount || !tr.Reversed) {
				bad("order %s: transfer %s charged back %d times for %d of %d", p.orderID, stripeID, reversalsOf[stripeID], reversedAmount[stripeID], amount)
			}
			if p.fate == partialLost && (reversalsOf[stripeID] != 1 || reversedAmount[stripeID] <= 0 || reversedAmount[stripeID] >= amount) {
				bad("order %s: transfer %s charged back %d times for %d of %d (a share)", p.orderID, stripeID, reversalsOf[stripeID], reversedAmount[stripeID], amount)
			}
			if !p.refund && !lostDispute && reversalsOf[stripeID] != 0 {
				bad("order %s: transfer %s reversed but the order was neither refunded nor charged back", p.orderID, stripeID)
			}
			orderReversed += reversedAmount[stripeID]
		}
		rows.Close()
		if lostDispute {
			if want := chargedBack(p.amount-fees, p.disputed, p.amount); orderReversed != want {
				bad("order %s: chargeback of %d of %d took %d back from the sellers, want their share %d", p.orderID, p.disputed, p.amount, orderReversed, want)
			}
		}
		if paid+fees != p.amount {
			bad("order %s: paid %d + fees %d != order amount %d", p.orderID, paid, fees, p.amount)
		}
	}
	if n := h.count(`SELECT count(*) FROM river_job WHERE state IN ('running', 'discarded')`); n != 0 {
		bad("%d jobs left running or discarded", n)
	}
	if n := h.stripe.MissingKeys(); n != 0 {
		bad("%d Stripe calls without an idempotency key", n)
	}
	if n := len(h.stripe.Transfers()); n != 2*len(purchases) {
		bad("%d transfers at Stripe, want %d", n, 2*len(purchases))
	}

	// No transfer created twice: one per row, whatever the rounds of keys.
	perRow := map[string]int{}
	for _, tr := range h.stripe.Transfers() {
		perRow[tr.Metadata["transfer_id"]]++
	}
	for row, n := range perRow {
		if n != 1 {
			bad("transfer row %s has %d transfers at Stripe", row, n)
		}
	}

	// The money, to the cent: what the sellers hold plus what the platform
	// keeps is what the buyers paid minus what they got back (refunds, and
	// lost disputes: the platform is debited, and recovers the sellers'
	// share by reversals; its fee on the disputed part is its loss).
	var transferred, reversed, fees, paid, refunded, chargebacks int64
	for _, tr := range h.stripe.Transfers() {
		transferred += tr.Amount
	}
	for _, r := range h.stripe.Reversals() {
		reversed += r.Amount
	}
	for _, p := range purchases {
		paid += p.amount
		if p.refund {
			continue
		}
		var f int64
		_ = h.db.QueryRow(ctx, `SELECT COALESCE(sum(platform_fee), 0) FROM seller_transfers WHERE order_id = $1`, p.orderID).Scan(&f)
		if p.fate == disputeLost || p.fate == partialLost {
			chargebacks += p.disputed
			f -= p.disputed - chargedBack(p.amount-f, p.disputed, p.amount) // the fee's part of the chargeback
		}
		fees += f
	}
	for _, rf := range h.hs.Refunds() {
		if rf.Status == "succeeded" {
			refunded += rf.Amount
		}
	}
	if transferred-reversed+fees != paid-refunded-chargebacks {
		bad("money: transfers %d - reversals %d + fees kept %d = %d, but paid %d - refunded %d - charged back %d = %d",
			transferred, reversed, fees, transferred-reversed+fees, paid, refunded, chargebacks, paid-refunded-chargebacks)
	}

	// No row left open.
	for what, sql := range map[string]string{
		"orders not settled":    `SELECT count(*) FROM orders WHERE status NOT IN ('completed', 'refunded', 'charged_back')`,
		"disputes open":         `SELECT count(*) FROM disputes WHERE status IN ('opened', 'challenged')`,
		"refunds not succeeded": `SELECT count(*) FROM refunds WHERE status <> 'succeeded'`,
		"transfers open":        `SELECT count(*) FROM seller_transfers WHERE status NOT IN ('completed', 'reversed')`,
	} {
		if n := h.count(sql); n != 0 {
			bad("%d %s", n, what)
		}
	}
	return v
}
