package stripetest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/stripe/stripe-go/v82"

	"github.com/veza/backend/internal/fake"
	"github.com/veza/backend/stripeconnect"
	"github.com/veza/backend/stripeconnect/stripetest"
)

type answer struct {
	status      int
	body        map[string]any
	replayed    bool
	shouldRetry string // Stripe-Should-Retry
}

func post(t *testing.T, s *stripetest.Server, path, key string, form url.Values) answer {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, s.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Authorization", "Bearer "+stripetest.SecretKey)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return answer{}
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var body map[string]any
	_ = json.Unmarshal(raw, &body)
	return answer{status: resp.StatusCode, body: body, replayed: resp.Header.Get("Idempotent-Replayed") == "true",
		shouldRetry: resp.Header.Get("Stripe-Should-Retry")}
}

func transferForm(amount string) url.Values {
	return url.Values{"amount": {amount}, "currency": {"eur"}, "destination": {"acct_1"}, "transfer_group": {"order_1"}, "metadata[transfer_id]": {"row_1"}}
}

func TestSavedResultsAreReplayedErrorsIncluded(t *testing.T) {
	t.Parallel()
	s := stripetest.Start(t)
	first := post(t, s, "/v1/transfers", "k1", transferForm("500"))
	require.Equal(t, 200, first.status)
	again := post(t, s, "/v1/transfers", "k1", transferForm("500"))
	require.True(t, again.replayed)
	require.Equal(t, first.body["id"], again.body["id"])
	require.Len(t, s.Transfers(), 1)
	require.Equal(t, 1, s.TransferCount(), "a replay is not a second transfer")

	require.Equal(t, 400, post(t, s, "/v1/transfers", "k1", transferForm("600")).status, "same key, other parameters")

	s.SaveErrorNext("POST /v1/transfers", 1, 500)
	require.Equal(t, 500, post(t, s, "/v1/transfers", "k2", transferForm("500")).status)
	replayed := post(t, s, "/v1/transfers", "k2", transferForm("500"))
	require.Equal(t, 500, replayed.status, "a saved 500 cannot heal with its key")
	require.True(t, replayed.replayed)
	require.Equal(t, 1, s.TransferCount(), "a saved 500 did no work")

	s.SetBalanceAvailable(false)
	refused := post(t, s, "/v1/transfers", "k3", transferForm("500"))
	require.Equal(t, "balance_insufficient", refused.body["error"].(map[string]any)["code"])
	s.SetBalanceAvailable(true)
	require.Equal(t, 400, post(t, s, "/v1/transfers", "k3", transferForm("500")).status, "the refusal is saved under k3")
	require.Equal(t, 200, post(t, s, "/v1/transfers", "k4", transferForm("500")).status, "a new key is paid")
	require.Len(t, s.Transfers(), 2)
}

func TestRefusalsBeforeExecutingAreNotSaved(t *testing.T) {
	t.Parallel()
	s := stripetest.Start(t)
	s.FailNext(1, 503)
	require.Equal(t, 503, post(t, s, "/v1/transfers", "k", transferForm("500")).status)
	require.Equal(t, 400, post(t, s, "/v1/transfers", "k", transferForm("x")).status, "malformed")
	require.Equal(t, 200, post(t, s, "/v1/transfers", "k", transferForm("500")).status, "neither was saved")
}

func TestKeysAreForgottenAfterADay(t *testing.T) {
	t.Parallel()
	s := stripetest.Start(t)
	require.Equal(t, 200, post(t, s, "/v1/transfers", "k", transferForm("500")).status)
	s.Advance(23 * time.Hour)
	require.True(t, post(t, s, "/v1/transfers", "k", transferForm("500")).replayed)
	s.Advance(2 * time.Hour)
	again := post(t, s, "/v1/transfers", "k", transferForm("500"))
	require.False(t, again.replayed)
	require.Len(t, s.Transfers(), 2, "after 24 h the same key makes a second transfer")
}

func TestConcurrentRequestsWithOneKey(t *testing.T) {
	t.Parallel()
	s := stripetest.Start(t)
	s.SetLatency(300 * time.Millisecond)
	var wg sync.WaitGroup
	statuses := make([]int, 2)
	for i := range statuses {
		wg.Add(1)
		go func() { defer wg.Done(); statuses[i] = post(t, s, "/v1/transfers", "same", transferForm("500")).status }()
		time.Sleep(100 * time.Millisecond)
	}
	wg.Wait()
	require.ElementsMatch(t, []int{200, 409}, statuses)
	require.Len(t, s.Transfers(), 1)
}

func TestAnswersLostAfterTheWork(t *testing.T) {
	t.Parallel()
	s := stripetest.Start(t)
	for _, how := range []fake.Loss{fake.Lost502, fake.LostHTML200} {
		s.LoseNext("POST /v1/transfers", 1, how)
		lost := post(t, s, "/v1/transfers", "k-"+how.String(), transferForm("500"))
		require.Nil(t, lost.body["id"], how.String())
		replay := post(t, s, "/v1/transfers", "k-"+how.String(), transferForm("500"))
		require.True(t, replay.replayed, "the work was done and saved: %s", how)
	}
	// A reset: Go's transport resends a request with an Idempotency-Key by
	// itself, and gets the saved answer.
	s.LoseNext("POST /v1/transfers", 1, fake.LostReset)
	resent := post(t, s, "/v1/transfers", "k-reset", transferForm("500"))
	if !resent.replayed {
		// Go resends by itself only on a reused connection; a fresh one
		// (the pool's idle connection closed under load) gives the error
		// to the caller, whose retry with the key gets the saved answer.
		resent = post(t, s, "/v1/transfers", "k-reset", transferForm("500"))
	}
	require.True(t, resent.replayed)
	require.Equal(t, 2, s.Calls("POST /v1/transfers")-4, "the reset call and its resend")
	require.Len(t, s.Transfers(), 3, "one transfer per key")
	require.Equal(t, 3, s.TransferCount(), "a lost answer's transfer counts: the bench's wait reads the fake as a hint and the database decides")
}

func TestTransfersAreListedByGroupWithMetadata(t *testing.T) {
	t.Parallel()
	s := stripetest.Start(t)
	require.Equal(t, 200, post(t, s, "/v1/transfers", "k", transferForm("500")).status)
	req, _ := http.NewRequest(http.MethodGet, s.URL+"/v1/transfers?transfer_group=order_1&limit=100", nil)
	req.Header.Set("Authorization", "Bearer "+stripetest.SecretKey)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var list struct {
		Data []stripetest.Transfer `json:"data"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&list))
	require.Len(t, list.Data, 1)
	require.Equal(t, "row_1", list.Data[0].Metadata["transfer_id"])

	wrong := post(t, s, "/v1/nowhere", "", nil)
	require.Equal(t, 404, wrong.status)
	require.Nil(t, wrong.body["error"].(map[string]any)["code"], "a wrong URL is a 404 without resource_missing")
}

// TestRateLimitRefusesPastTheLimitUnsaved: with a limit of 3 writes a
// second, the 4th write of a second is refused with 429 rate_limit before
// executing (its key is not saved: the same key succeeds in the next
// second), and the counts say so.
func TestRateLimitRefusesPastTheLimitUnsaved(t *testing.T) {
	t.Parallel()
	s := stripetest.Start(t)
	s.SetRateLimit(3, func(key string) bool { return strings.HasPrefix(key, "POST ") })
	time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(time.Second + 10*time.Millisecond))) // a fresh second
	for i := 0; i < 3; i++ {
		require.Equal(t, 200, post(t, s, "/v1/transfers", fmt.Sprint("k", i), transferForm("500")).status)
	}
	refused := post(t, s, "/v1/transfers", "k3", transferForm("500"))
	require.Equal(t, 429, refused.status)
	require.Equal(t, "rate_limit", refused.body["error"].(map[string]any)["code"])
	require.Equal(t, "true", refused.shouldRetry, "refused before executing: a retry may succeed")
	busiest, n := s.RateCounts()
	require.Equal(t, 4, busiest, "refused calls arrived too")
	require.Equal(t, 1, n)
	time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(time.Second + 10*time.Millisecond)))
	again := post(t, s, "/v1/transfers", "k3", transferForm("500"))
	require.Equal(t, 200, again.status, "the refused call was not saved under its key")
	require.False(t, again.replayed)
	require.Len(t, s.Transfers(), 4)
}

// TestLockTimeoutIsRefusedUnsaved: Stripe's other 429, lock_timeout, is
// about one object, not the rate: refused before executing, not saved under
// the key, and stripe-go's own error says a retry may succeed.
func TestLockTimeoutIsRefusedUnsaved(t *testing.T) {
	t.Parallel()
	s := stripetest.Start(t)
	s.LockTimeoutNext("POST /v1/transfers", 1)
	busy := post(t, s, "/v1/transfers", "k", transferForm("500"))
	require.Equal(t, 429, busy.status)
	require.Equal(t, "lock_timeout", busy.body["error"].(map[string]any)["code"])
	require.Equal(t, "true", busy.shouldRetry)
	require.Zero(t, s.TransferCount(), "nothing executed")

	again := post(t, s, "/v1/transfers", "k", transferForm("500"))
	require.Equal(t, 200, again.status, "not saved under its key")
	require.False(t, again.replayed)
	require.Equal(t, 1, s.TransferCount())

	s.LockTimeoutNext("POST /v1/transfers", 1)
	_, err := s.Client().CreateTransfer(context.Background(), stripeconnect.TransferParams{Amount: 500, Currency: "eur",
		Destination: "acct_1", TransferGroup: "order_2", IdempotencyKey: "k2"})
	var se *stripe.Error
	require.ErrorAs(t, err, &se)
	require.Equal(t, 429, se.HTTPStatusCode)
	require.Equal(t, stripe.ErrorCodeLockTimeout, se.Code, "stripe-go tells it from a rate limit")
	require.Equal(t, "true", se.LastResponse.Header.Get("Stripe-Should-Retry"), "Stripe says a retry may succeed")
}
