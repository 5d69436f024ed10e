// Package stripetest is a stateful fake of the Stripe Connect endpoints the
// service uses, on an httptest server speaking Stripe's wire format
// (form-encoded requests, its JSON objects and error envelope). It honours
// Idempotency-Key like Stripe (same key and parameters → the first answer;
// other parameters → idempotency_error), keeps transfers with their
// reversed flag, and can be told to fail the next N calls or to slow down.
package stripetest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/veza/backend/internal/fake"
	"github.com/veza/backend/stripeconnect"
)

// SecretKey is the key the fake accepts.
const SecretKey = "sk_test_fake_veza"

// Transfer is the fake's record of a transfer.
type Transfer struct {
	ID             string `json:"id"`
	Object         string `json:"object"`
	Amount         int64  `json:"amount"`
	AmountReversed int64  `json:"amount_reversed"`
	Currency       string `json:"currency"`
	Destination    string `json:"destination"`
	TransferGroup  string `json:"transfer_group"`
	Reversed       bool   `json:"reversed"`
	IdempotencyKey string `json:"-"`
}

// Reversal is the fake's record of a reversal.
type Reversal struct {
	ID       string `json:"id"`
	Object   string `json:"object"`
	Amount   int64  `json:"amount"`
	Currency string `json:"currency"`
	Transfer string `json:"transfer"`
}

type idemEntry struct {
	fingerprint string
	status      int
	body        []byte
}

// Server is the fake. Its controls (FailNext, SetLatency, Calls,
// MaxInFlight) count calls by "METHOD path", e.g. "POST /v1/transfers",
// with "POST reversals" and "GET transfer" for the per-transfer paths.
type Server struct {
	URL string
	fake.Controls

	mu          sync.Mutex
	transfers   map[string]*Transfer
	reversals   []Reversal
	idem        map[string]idemEntry
	missingKeys int
	seq         int
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
	s := &Server{transfers: map[string]*Transfer{}, idem: map[string]idemEntry{}}
	srv := httptest.NewServer(http.HandlerFunc(s.serve))
	s.URL = srv.URL
	return s, srv.Close
}

// Client returns a real client pointed at the fake.
func (s *Server) Client() *stripeconnect.Client { return stripeconnect.New(SecretKey, s.URL, nil) }

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

func writeJSON(w http.ResponseWriter, status int, v any) []byte {
	body, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Request-Id", fmt.Sprintf("req_fake_%d", time.Now().UnixNano()))
	w.WriteHeader(status)
	_, _ = w.Write(body)
	return body
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
	if fail != 0 {
		writeJSON(w, fail, stripeError("api_error", "", "Stripe is having trouble (fake outage)", ""))
		return
	}
	if err := r.ParseForm(); err != nil {
		writeJSON(w, http.StatusBadRequest, stripeError("invalid_request_error", "", "malformed form", ""))
		return
	}

	if r.Method == http.MethodPost {
		idemKey := r.Header.Get("Idempotency-Key")
		if idemKey == "" {
			s.mu.Lock()
			s.missingKeys++
			s.mu.Unlock()
		} else {
			fingerprint := path + "?" + r.PostForm.Encode()
			s.mu.Lock()
			prev, seen := s.idem[idemKey]
			s.mu.Unlock()
			if seen {
				if prev.fingerprint != fingerprint {
					writeJSON(w, http.StatusBadRequest, stripeError("idempotency_error", "",
						"Keys for idempotent requests can only be used with the same parameters they were first used with.", ""))
					return
				}
				w.Header().Set("Content-Type", "application/json")
				w.Header().Set("Idempotent-Replayed", "true")
				w.WriteHeader(prev.status)
				_, _ = w.Write(prev.body)
				return
			}
			rec := &recorder{ResponseWriter: w}
			s.route(rec, r, path)
			if rec.status < 500 {
				s.mu.Lock()
				s.idem[idemKey] = idemEntry{fingerprint: fingerprint, status: rec.status, body: rec.body}
				s.mu.Unlock()
			}
			return
		}
	}
	s.route(w, r, path)
}

type recorder struct {
	http.ResponseWriter
	status int
	body   []byte
}

func (r *recorder) WriteHeader(status int) { r.status = status; r.ResponseWriter.WriteHeader(status) }
func (r *recorder) Write(b []byte) (int, error) {
	r.body = append(r.body, b...)
	return r.ResponseWriter.Write(b)
}

func (s *Server) route(w http.ResponseWriter, r *http.Request, path string) {
	parts := strings.Split(strings.Trim(path, "/"), "/")
	switch {
	case r.Method == http.MethodPost && path == "/v1/transfers":
		s.createTransfer(w, r)
	case r.Method == http.MethodGet && len(parts) == 3 && parts[1] == "transfers":
		cp, ok := s.Transfer(parts[2])
		if !ok {
			writeJSON(w, http.StatusNotFound, stripeError("invalid_request_error", "resource_missing", fmt.Sprintf("No such transfer: '%s'", parts[2]), "id"))
			return
		}
		writeJSON(w, http.StatusOK, cp)
	case r.Method == http.MethodPost && len(parts) == 4 && parts[1] == "transfers" && parts[3] == "reversals":
		s.createReversal(w, r, parts[2])
	default:
		writeJSON(w, http.StatusNotFound, stripeError("invalid_request_error", "", "Unrecognized request URL ("+r.Method+": "+path+")", ""))
	}
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
	s.seq++
	t := &Transfer{ID: fmt.Sprintf("tr_fake%06d", s.seq), Object: "transfer", Amount: amount, Currency: r.PostForm.Get("currency"),
		Destination: dest, TransferGroup: r.PostForm.Get("transfer_group"), IdempotencyKey: r.Header.Get("Idempotency-Key")}
	s.transfers[t.ID] = t
	writeJSON(w, http.StatusOK, t)
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
	t.AmountReversed += amount
	t.Reversed = t.AmountReversed == t.Amount
	s.seq++
	rev := Reversal{ID: fmt.Sprintf("trr_fake%06d", s.seq), Object: "transfer_reversal", Amount: amount, Currency: t.Currency, Transfer: t.ID}
	s.reversals = append(s.reversals, rev)
	writeJSON(w, http.StatusOK, rev)
}
