// Package stripetest is a stateful fake of the Stripe Connect endpoints the
// service uses, on an httptest server speaking Stripe's wire format
// (form-encoded requests, its JSON objects and error envelope), and behaving
// like Stripe where that is unkind to a client (../shared/PSP.md):
//
//   - Idempotency-Key: the status and body of the first request that began
//     executing are saved, errors (4xx, 500) included, and replayed to every
//     later request with that key; other parameters with the key answer 400
//     idempotency_error; a concurrent request with the key answers 409
//     idempotency_key_in_use. Requests refused before executing (an outage
//     from FailNext, malformed parameters, 409) are not saved. Saved keys are
//     forgotten after KeyTTL (24 h) on the fake's clock (Advance).
//   - A transfer draws on the platform's available balance: with
//     SetBalanceAvailable(false) it is refused, 400 balance_insufficient
//     (saved, like any executed request). A reversal can fail the same way
//     when the connected account lacks the balance.
//   - Transfers are listed by transfer_group with their metadata.
//   - An answer can be lost after the work is done (LoseNext, LoseRandomly:
//     502, reset, HTML 200, timeout), and an executed request can end in a
//     saved 500 without doing the work (SaveErrorNext).
//   - Two kinds of 429, refused before executing and never saved: the rate
//     limit (FailNext(n, 429), SetRateLimit), and lock_timeout
//     (LockTimeoutNext): another request or a Stripe process holds the
//     object. stripe-go retries only the second; only the first is about
//     the account's rate.
package stripetest

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v82/webhook"

	"github.com/veza/backend/internal/fake"
	"github.com/veza/backend/stripeconnect"
)

// SecretKey is the key the fake accepts.
const SecretKey = "sk_test_fake_veza"

// KeyTTL is how long Stripe keeps a key's saved result.
const KeyTTL = 24 * time.Hour

// Transfer is the fake's record of a transfer.
type Transfer struct {
	ID             string            `json:"id"`
	Object         string            `json:"object"`
	Amount         int64             `json:"amount"`
	AmountReversed int64             `json:"amount_reversed"`
	Currency       string            `json:"currency"`
	Destination    string            `json:"destination"`
	TransferGroup  string            `json:"transfer_group"`
	Reversed       bool              `json:"reversed"`
	Metadata       map[string]string `json:"metadata"`
	IdempotencyKey string            `json:"-"`
}

// Reversal is the fake's record of a reversal.
type Reversal struct {
	ID       string `json:"id"`
	Object   string `json:"object"`
	Amount   int64  `json:"amount"`
	Currency string `json:"currency"`
	Transfer string `json:"transfer"`
}

type saved struct {
	fingerprint string
	status      int
	body        []byte
	at          time.Time
}

// Server is the fake. Its controls (FailNext, SetLatency, Calls,
// MaxInFlight, LoseNext, LoseRandomly) count calls by "METHOD path", e.g.
// "POST /v1/transfers", with "POST reversals", "GET transfer" and
// "GET /v1/transfers" (the listing) for the others.
type Server struct {
	URL string
	fake.Controls

	mu           sync.Mutex
	transfers    map[string]*Transfer
	reversals    []Reversal
	keys         map[string]saved
	running      map[string]bool // keys of requests executing now
	saveErrors   map[string][]int
	lockTimeouts map[string]int
	// slow: per call key, how long the next requests keep executing after
	// our client lost the connection (SlowNext).
	slow         map[string][]time.Duration
	savedShare   float64 // of executing POSTs that end in a saved 500
	savedErrors  int
	rng          *rand.Rand
	noBalance    bool
	poorAccounts map[string]bool
	accounts     map[string]*Account
	clockOffset  time.Duration
	keyTTL       time.Duration
	missingKeys  int
	seq          int
	// onboardingURL: where an account link leads (SetOnboardingURL).
	onboardingURL func(account string) string
}

// Start runs the fake until the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	s, stop := New()
	t.Cleanup(stop)
	return s
}

// New runs the fake until stop is called (benchmarks, tools).
func New() (*Server, func()) {
	s := NewHandler("")
	srv := httptest.NewServer(s)
	s.URL = srv.URL
	return s, srv.Close
}

// NewHandler is the fake without a server of its own, served by ServeHTTP
// wherever it is mounted at url (the development sandbox).
func NewHandler(url string) *Server {
	return &Server{URL: url, transfers: map[string]*Transfer{}, keys: map[string]saved{}, running: map[string]bool{},
		saveErrors: map[string][]int{}, lockTimeouts: map[string]int{}, poorAccounts: map[string]bool{}, accounts: map[string]*Account{}, keyTTL: KeyTTL}
}

// ServeHTTP answers a call as Stripe would (paths relative to URL).
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.serve(w, r) }

// State is what the fake holds, for a sandbox that keeps it across
// restarts (Snapshot, Restore): the objects and the saved idempotency
// results, which Stripe keeps for 24 h whatever happens to the caller.
type State struct {
	Transfers map[string]*Transfer `json:"transfers"`
	Reversals []Reversal           `json:"reversals"`
	Accounts  map[string]*Account  `json:"accounts"`
	Keys      map[string]SavedKey  `json:"keys"`
	Seq       int                  `json:"seq"`
}

// SavedKey is one idempotency key's saved result.
type SavedKey struct {
	Fingerprint string    `json:"fingerprint"`
	Status      int       `json:"status"`
	Body        []byte    `json:"body"`
	At          time.Time `json:"at"`
}

// Snapshot is the fake's objects and saved keys as JSON.
func (s *Server) Snapshot() ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	keys := make(map[string]SavedKey, len(s.keys))
	for k, v := range s.keys {
		if s.now().Sub(v.at) > s.keyTTL {
			continue // forgotten, as Stripe prunes them: the snapshot stays small
		}
		keys[k] = SavedKey{Fingerprint: v.fingerprint, Status: v.status, Body: v.body, At: v.at}
	}
	return json.Marshal(State{Transfers: s.transfers, Reversals: s.reversals, Accounts: s.accounts, Keys: keys, Seq: s.seq})
}

// Restore replaces the fake's objects and saved keys with a Snapshot's.
func (s *Server) Restore(snapshot []byte) error {
	st := State{}
	if err := json.Unmarshal(snapshot, &st); err != nil {
		return fmt.Errorf("stripetest: restore: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.transfers, s.reversals, s.accounts, s.seq = st.Transfers, st.Reversals, st.Accounts, st.Seq
	if s.transfers == nil {
		s.transfers = map[string]*Transfer{}
	}
	if s.accounts == nil {
		s.accounts = map[string]*Account{}
	}
	s.keys = map[string]saved{}
	for k, v := range st.Keys {
		s.keys[k] = saved{fingerprint: v.Fingerprint, status: v.Status, body: v.Body, at: v.At}
	}
	return nil
}

// SetOnboardingURL says where an account link leads (default: a path under
// URL that nothing answers, as a test needs no page).
func (s *Server) SetOnboardingURL(f func(account string) string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.onboardingURL = f
}

// CompleteOnboarding is the seller finishing Stripe's onboarding: details
// submitted, charges and payouts enabled. It reports false for an account
// the platform never created.
func (s *Server) CompleteOnboarding(id string) (Account, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.accounts[id]
	if !ok {
		return Account{}, false
	}
	a.PayoutsEnabled, a.ChargesEnabled, a.DetailsSubmitted = true, true, true
	return *a, true
}

// Account is a connected account on the wire (the fields we read, and a
// few we do not).
type Account struct {
	ID               string `json:"id"`
	Object           string `json:"object"`
	Type             string `json:"type"`
	PayoutsEnabled   bool   `json:"payouts_enabled"`
	ChargesEnabled   bool   `json:"charges_enabled"`
	DetailsSubmitted bool   `json:"details_submitted"`
	Country          string `json:"country"`
}

// PutAccount connects an account to the platform (onboarded or not).
func (s *Server) PutAccount(id string, payoutsEnabled bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.accounts[id] = &Account{ID: id, Object: "account", Type: "express", PayoutsEnabled: payoutsEnabled,
		ChargesEnabled: payoutsEnabled, DetailsSubmitted: payoutsEnabled, Country: "FR"}
}

// Client returns a real client pointed at the fake.
func (s *Server) Client() *stripeconnect.Client { return stripeconnect.New(SecretKey, s.URL, nil) }

// Advance moves the fake's clock: saved keys older than KeyTTL are then
// forgotten, as Stripe prunes them.
func (s *Server) Advance(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.clockOffset += d
}

// SetKeyTTL shortens how long keys are kept, for a service whose key window
// is shortened to match (the crash suite: keys expire while retries go on).
func (s *Server) SetKeyTTL(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keyTTL = d
}

func (s *Server) now() time.Time { return time.Now().Add(s.clockOffset) }

// SetBalanceAvailable says whether the platform's balance covers transfers
// (false: every transfer is refused with balance_insufficient).
func (s *Server) SetBalanceAvailable(ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.noBalance = !ok
}

// SetAccountBalanceInsufficient makes reversals of transfers to acct fail
// with balance_insufficient while poor is true.
func (s *Server) SetAccountBalanceInsufficient(acct string, poor bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.poorAccounts[acct] = poor
}

// SaveErrorNext makes the next n requests under key (e.g. "POST reversals")
// begin executing and end in status (500: Stripe's own failure) without
// doing the work; the answer is saved under their idempotency key.
func (s *Server) SaveErrorNext(key string, n, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.saveErrors[key] = append(s.saveErrors[key], status)
	}
}

// LockTimeoutNext makes the next n requests under key answer 429
// lock_timeout, as Stripe does when another request or one of its own
// processes holds the object: refused before executing, nothing saved
// under the key, Stripe-Should-Retry true.
func (s *Server) LockTimeoutNext(key string, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lockTimeouts[key] += n
}

// SlowNext makes the next request under key (e.g. "POST /v1/transfers")
// outlive our client: the connection drops at once (an answer lost) while
// Stripe keeps executing it, and its work (a transfer) exists, and its
// answer is saved under the key, only d later. Meanwhile the key is in use
// (409 idempotency_key_in_use) and a list shows no transfer.
func (s *Server) SlowNext(key string, d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.slow == nil {
		s.slow = map[string][]time.Duration{}
	}
	s.slow[key] = append(s.slow[key], d)
}

func (s *Server) takeSlow(key string) time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	q := s.slow[key]
	if len(q) == 0 {
		return 0
	}
	s.slow[key] = q[1:]
	return q[0]
}

func (s *Server) takeLockTimeout(key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lockTimeouts[key] == 0 {
		return false
	}
	s.lockTimeouts[key]--
	return true
}

// SaveErrorsRandomly makes a share (0 to 1) of the POSTs that begin
// executing end in a saved 500 without doing the work (the crash suite's
// weather).
func (s *Server) SaveErrorsRandomly(share float64, seed uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.savedShare, s.rng = share, rand.New(rand.NewPCG(seed, 0x500))
}

// SavedErrors counts the errors saved under keys (SaveErrorNext, SaveErrorsRandomly).
func (s *Server) SavedErrors() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.savedErrors
}

// PutTransfer stores a transfer made outside the test (e.g. legacy data).
func (s *Server) PutTransfer(tr Transfer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	tr.Object = "transfer"
	s.transfers[tr.ID] = &tr
}

// Transfers returns every transfer, sorted by id.
func (s *Server) Transfers() []Transfer {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Transfer, 0, len(s.transfers))
	for _, t := range s.transfers {
		out = append(out, *t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// TransferCount is how many transfers the fake holds, without copying
// them: what a poll that waits for transfers can read every few ms.
func (s *Server) TransferCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.transfers)
}

// Transfer returns one transfer.
func (s *Server) Transfer(id string) (Transfer, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.transfers[id]
	if !ok {
		return Transfer{}, false
	}
	return *t, true
}

// Reversals returns every reversal made.
func (s *Server) Reversals() []Reversal {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Reversal(nil), s.reversals...)
}

// MissingKeys counts POSTs that came without an Idempotency-Key.
func (s *Server) MissingKeys() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.missingKeys
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Request-Id", fmt.Sprintf("req_fake_%d", time.Now().UnixNano()))
	switch {
	case status == http.StatusConflict || status == http.StatusTooManyRequests || status >= 500:
		// A retry may succeed (both 429s were refused before executing).
		w.Header().Set("Stripe-Should-Retry", "true")
	case status >= 400:
		w.Header().Set("Stripe-Should-Retry", "false")
	}
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

func stripeError(typ, code, msg, param string) map[string]any {
	e := map[string]any{"type": typ, "message": msg}
	if code != "" {
		e["code"] = code
	}
	if param != "" {
		e["param"] = param
	}
	return map[string]any{"error": e}
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	path := strings.TrimSuffix(r.URL.Path, "/")
	key := r.Method + " " + path
	if strings.HasSuffix(path, "/reversals") {
		key = r.Method + " reversals"
	} else if r.Method == http.MethodGet && strings.HasPrefix(path, "/v1/transfers/") {
		key = "GET transfer"
	}
	fail, done := s.Begin(key)
	defer done()

	if r.Header.Get("Authorization") != "Bearer "+SecretKey {
		writeJSON(w, http.StatusUnauthorized, stripeError("invalid_request_error", "", "Invalid API Key provided", ""))
		return
	}
	// Stripe's two 429s, refused before executing and never saved under
	// the key: its rate limit, and an object another request holds.
	if fail == http.StatusTooManyRequests {
		writeJSON(w, fail, stripeError("invalid_request_error", "rate_limit",
			"Request rate limit exceeded. You can learn more about rate limits here https://stripe.com/docs/rate-limits.", ""))
		return
	}
	if s.takeLockTimeout(key) {
		writeJSON(w, http.StatusTooManyRequests, stripeError("invalid_request_error", "lock_timeout",
			"This object cannot be accessed right now because another API request or Stripe process is currently accessing it. If you see this error intermittently, retry the request.", ""))
		return
	}
	if fail != 0 {
		// An outage: refused before anything executes; nothing is saved.
		writeJSON(w, fail, stripeError("api_error", "", "Stripe is having trouble (fake outage)", ""))
		return
	}
	if err := r.ParseForm(); err != nil {
		writeJSON(w, http.StatusBadRequest, stripeError("invalid_request_error", "", "malformed form", ""))
		return
	}
	if r.Method != http.MethodPost {
		s.Wait()
		rec := httptest.NewRecorder()
		s.route(rec, r, path)
		s.Deliver(w, rec, s.Loss(key))
		return
	}
	idemKey := r.Header.Get("Idempotency-Key")
	if idemKey == "" {
		s.mu.Lock()
		s.missingKeys++
		s.mu.Unlock()
		s.Wait()
		rec := httptest.NewRecorder()
		s.route(rec, r, path)
		s.Deliver(w, rec, s.Loss(key))
		return
	}
	s.idempotent(w, r, path, key, idemKey)
}

// idempotent serves a POST with an Idempotency-Key as Stripe does.
func (s *Server) idempotent(w http.ResponseWriter, r *http.Request, path, callKey, idemKey string) {
	fingerprint := path + "?" + r.PostForm.Encode()
	s.mu.Lock()
	prev, seen := s.keys[idemKey]
	if seen && s.now().Sub(prev.at) > s.keyTTL {
		delete(s.keys, idemKey) // pruned: the key is new again
		seen = false
	}
	switch {
	case seen && prev.fingerprint != fingerprint:
		s.mu.Unlock()
		writeJSON(w, http.StatusBadRequest, stripeError("idempotency_error", "",
			"Keys for idempotent requests can only be used with the same parameters they were first used with.", ""))
		return
	case seen:
		// The saved answer, which a proxy in the way may lose again.
		s.mu.Unlock()
		rec := httptest.NewRecorder()
		rec.Header().Set("Content-Type", "application/json")
		rec.Header().Set("Idempotent-Replayed", "true")
		rec.WriteHeader(prev.status)
		_, _ = rec.Write(prev.body)
		s.Deliver(w, rec, s.Loss(callKey))
		return
	case s.running[idemKey]:
		s.mu.Unlock()
		writeJSON(w, http.StatusConflict, stripeError("idempotency_error", "idempotency_key_in_use",
			"There is currently another in-progress request using this Idempotent Key.", ""))
		return
	}
	s.running[idemKey] = true
	var savedError int
	if q := s.saveErrors[callKey]; len(q) > 0 {
		savedError, s.saveErrors[callKey] = q[0], q[1:]
	} else if s.savedShare > 0 && s.rng.Float64() < s.savedShare {
		savedError = http.StatusInternalServerError
	}
	s.mu.Unlock()

	execute := func() *httptest.ResponseRecorder {
		s.Wait() // executing, the key held
		rec := httptest.NewRecorder()
		if savedError != 0 {
			writeJSON(rec, savedError, stripeError("api_error", "", "An unknown error occurred (fake, saved under the key)", ""))
		} else {
			s.route(rec, r, path)
		}
		s.mu.Lock()
		if savedError != 0 {
			s.savedErrors++
		}
		delete(s.running, idemKey)
		if !refusedBeforeExecuting(rec) {
			s.keys[idemKey] = saved{fingerprint: fingerprint, status: rec.Code, body: rec.Body.Bytes(), at: s.now()}
		}
		s.mu.Unlock()
		return rec
	}
	if d := s.takeSlow(callKey); d > 0 {
		// Our client is gone; Stripe finishes the request later. (The
		// form was parsed already: the request is not read again.)
		s.Deliver(w, nil, fake.LostReset)
		go func() {
			time.Sleep(d)
			execute()
		}()
		return
	}
	s.Deliver(w, execute(), s.Loss(callKey))
}

// refusedBeforeExecuting: a malformed parameter is refused before the
// endpoint executes, and Stripe does not save it under the key.
func refusedBeforeExecuting(rec *httptest.ResponseRecorder) bool {
	var e struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	_ = json.Unmarshal(rec.Body.Bytes(), &e)
	return rec.Code == http.StatusBadRequest && strings.HasPrefix(e.Error.Code, "parameter_")
}

func (s *Server) route(w http.ResponseWriter, r *http.Request, path string) {
	parts := strings.Split(strings.Trim(path, "/"), "/")
	switch {
	case r.Method == http.MethodPost && path == "/v1/transfers":
		s.createTransfer(w, r)
	case r.Method == http.MethodGet && path == "/v1/transfers":
		s.listTransfers(w, r)
	case r.Method == http.MethodGet && len(parts) == 3 && parts[1] == "transfers":
		cp, ok := s.Transfer(parts[2])
		if !ok {
			writeJSON(w, http.StatusNotFound, stripeError("invalid_request_error", "resource_missing", fmt.Sprintf("No such transfer: '%s'", parts[2]), "id"))
			return
		}
		writeJSON(w, http.StatusOK, cp)
	case r.Method == http.MethodPost && path == "/v1/accounts":
		s.mu.Lock()
		s.seq++
		a := &Account{ID: fmt.Sprintf("acct_fake%08d", s.seq), Object: "account", Type: r.PostForm.Get("type"), Country: "FR"}
		s.accounts[a.ID] = a
		cp := *a
		s.mu.Unlock()
		writeJSON(w, http.StatusOK, cp)
	case r.Method == http.MethodPost && path == "/v1/account_links":
		acct := r.PostForm.Get("account")
		s.mu.Lock()
		_, ok := s.accounts[acct]
		link := s.URL + "/setup/e/" + acct
		if s.onboardingURL != nil {
			link = s.onboardingURL(acct)
		}
		s.mu.Unlock()
		if !ok || r.PostForm.Get("refresh_url") == "" || r.PostForm.Get("return_url") == "" {
			writeJSON(w, http.StatusBadRequest, stripeError("invalid_request_error", "", "No such account, or refresh_url / return_url missing", "account"))
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"object": "account_link", "url": link,
			"created": time.Now().Unix(), "expires_at": time.Now().Add(5 * time.Minute).Unix()})
	case r.Method == http.MethodGet && len(parts) == 3 && parts[1] == "accounts":
		s.mu.Lock()
		a, ok := s.accounts[parts[2]]
		var cp Account
		if ok {
			cp = *a
		}
		s.mu.Unlock()
		if !ok {
			// What Stripe answers for an account that is not connected to
			// the platform (or does not exist).
			writeJSON(w, http.StatusForbidden, stripeError("invalid_request_error", "account_invalid",
				fmt.Sprintf("The provided key '%s' does not have access to account '%s' (or that account does not exist). Application access may have been revoked.", "sk_test_***", parts[2]), ""))
			return
		}
		writeJSON(w, http.StatusOK, cp)
	case r.Method == http.MethodPost && len(parts) == 4 && parts[1] == "transfers" && parts[3] == "reversals":
		s.createReversal(w, r, parts[2])
	default:
		// A wrong URL: 404 without resource_missing.
		writeJSON(w, http.StatusNotFound, stripeError("invalid_request_error", "", "Unrecognized request URL ("+r.Method+": "+path+")", ""))
	}
}

func metadataOf(form map[string][]string) map[string]string {
	md := map[string]string{}
	for k, v := range form {
		if rest, ok := strings.CutPrefix(k, "metadata["); ok && strings.HasSuffix(rest, "]") && len(v) > 0 {
			md[strings.TrimSuffix(rest, "]")] = v[0]
		}
	}
	return md
}

func (s *Server) createTransfer(w http.ResponseWriter, r *http.Request) {
	amount, err := strconv.ParseInt(r.PostForm.Get("amount"), 10, 64)
	if err != nil || amount <= 0 {
		writeJSON(w, http.StatusBadRequest, stripeError("invalid_request_error", "parameter_invalid_integer", "Invalid positive integer", "amount"))
		return
	}
	dest := r.PostForm.Get("destination")
	if !strings.HasPrefix(dest, "acct_") {
		writeJSON(w, http.StatusBadRequest, stripeError("invalid_request_error", "resource_missing", fmt.Sprintf("No such destination: '%s'", dest), "destination"))
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.noBalance {
		writeJSON(w, http.StatusBadRequest, stripeError("invalid_request_error", "balance_insufficient",
			"You have insufficient available funds in your Stripe account.", ""))
		return
	}
	s.seq++
	t := &Transfer{ID: fmt.Sprintf("tr_fake%06d", s.seq), Object: "transfer", Amount: amount, Currency: r.PostForm.Get("currency"),
		Destination: dest, TransferGroup: r.PostForm.Get("transfer_group"), Metadata: metadataOf(r.PostForm),
		IdempotencyKey: r.Header.Get("Idempotency-Key")}
	s.transfers[t.ID] = t
	writeJSON(w, http.StatusOK, t)
}

// listTransfers pages as Stripe does: newest first, limit (default 10, at
// most 100) per page, starting_after an id, has_more.
func (s *Server) listTransfers(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	group := q.Get("transfer_group")
	limit, err := strconv.Atoi(q.Get("limit"))
	if err != nil || limit <= 0 {
		limit = 10
	}
	limit = min(limit, 100)
	all := s.Transfers()
	sort.Slice(all, func(i, j int) bool { return all[i].ID > all[j].ID }) // newest first
	data := []Transfer{}
	after := q.Get("starting_after")
	started := after == ""
	more := false
	for _, t := range all {
		if !started {
			started = t.ID == after
			continue
		}
		if group != "" && t.TransferGroup != group {
			continue
		}
		if len(data) == limit {
			more = true
			break
		}
		data = append(data, t)
	}
	writeJSON(w, http.StatusOK, map[string]any{"object": "list", "url": "/v1/transfers", "has_more": more, "data": data})
}

func (s *Server) createReversal(w http.ResponseWriter, r *http.Request, transferID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.transfers[transferID]
	if !ok {
		writeJSON(w, http.StatusNotFound, stripeError("invalid_request_error", "resource_missing", fmt.Sprintf("No such transfer: '%s'", transferID), "id"))
		return
	}
	if t.Reversed {
		// Stripe gives this no code of its own.
		writeJSON(w, http.StatusBadRequest, stripeError("invalid_request_error", "", fmt.Sprintf("The transfer %s is already fully reversed.", transferID), ""))
		return
	}
	amount := t.Amount - t.AmountReversed
	if raw := r.PostForm.Get("amount"); raw != "" {
		a, err := strconv.ParseInt(raw, 10, 64)
		if err != nil || a <= 0 || a > amount {
			writeJSON(w, http.StatusBadRequest, stripeError("invalid_request_error", "", "Invalid reversal amount", "amount"))
			return
		}
		amount = a
	}
	if s.poorAccounts[t.Destination] {
		writeJSON(w, http.StatusBadRequest, stripeError("invalid_request_error", "balance_insufficient",
			"The connected account has insufficient funds to cover this reversal.", ""))
		return
	}
	t.AmountReversed += amount
	t.Reversed = t.AmountReversed == t.Amount
	s.seq++
	rev := Reversal{ID: fmt.Sprintf("trr_fake%06d", s.seq), Object: "transfer_reversal", Amount: amount, Currency: t.Currency, Transfer: t.ID}
	s.reversals = append(s.reversals, rev)
	writeJSON(w, http.StatusOK, rev)
}

// WebhookSecret is the signing secret the fake's Connect webhooks use.
const WebhookSecret = "whsec_stripe_test_secret"

// SignWebhook returns the Stripe-Signature header Stripe sends for body,
// signed now with secret (stripe-go's test signer: the real scheme, v1).
func SignWebhook(secret string, body []byte) string {
	return webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: body, Secret: secret}).Header
}

// ConnectEvent builds a Connect webhook body (evt id, type, the connected
// account, the object).
func ConnectEvent(id, eventType, account string, object any) []byte {
	body, _ := json.Marshal(map[string]any{"id": id, "object": "event", "type": eventType, "account": account,
		"api_version": "2025-06-30.basil", "created": time.Now().Unix(), "livemode": false,
		"data": map[string]any{"object": object}, "pending_webhooks": 1})
	return body
}

// AccountObject is an account as account.updated carries it.
func (s *Server) AccountObject(id string) Account {
	s.mu.Lock()
	defer s.mu.Unlock()
	if a, ok := s.accounts[id]; ok {
		return *a
	}
	return Account{ID: id, Object: "account"}
}
