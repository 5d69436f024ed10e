// Package stripeconnect pays sellers with Stripe Connect transfers and takes
// the money back with transfer reversals, through stripe-go v82.
//
// River owns the retry schedule, so stripe-go's own retries are off
// (MaxNetworkRetries 0). Every create carries an idempotency key derived
// from our row: a retried job can never pay or reverse twice, and a create
// without a key fails before any network call.
package stripeconnect

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/stripe/stripe-go/v82"
)

// Sentinels callers branch on.
var (
	// ErrTransferAlreadyReversed: Stripe refused the reversal and reading the
	// transfer back shows it fully reversed.
	ErrTransferAlreadyReversed = errors.New("stripeconnect: transfer is already fully reversed")
	// ErrTransferNotFound: Stripe answered resource_missing (404).
	ErrTransferNotFound = errors.New("stripeconnect: transfer does not exist")
	// ErrMissingIdempotencyKey: a create was attempted without its key.
	ErrMissingIdempotencyKey = errors.New("stripeconnect: refusing to create without an idempotency key")
)

// DefaultAPIBase is Stripe's API (without /v1).
const DefaultAPIBase = "https://api.stripe.com"

// Client wraps stripe-go.
type Client struct {
	sc *stripe.Client
}

// New returns a client for key at baseURL (STRIPE_API_BASE; empty for
// Stripe's). httpClient may be nil.
func New(key, baseURL string, httpClient *http.Client) *Client {
	if baseURL == "" {
		baseURL = DefaultAPIBase
	}
	cfg := &stripe.BackendConfig{
		URL:               stripe.String(strings.TrimRight(baseURL, "/")),
		MaxNetworkRetries: stripe.Int64(0), // River owns retries
		// stripe-go logs failed requests to stderr by default; errors reach
		// our logs once, through River's error handler.
		LeveledLogger:   &stripe.LeveledLogger{Level: stripe.LevelNull},
		EnableTelemetry: stripe.Bool(false),
	}
	if httpClient == nil {
		httpClient = pooledClient(30 * time.Second)
	}
	cfg.HTTPClient = httpClient
	return &Client{sc: stripe.NewClient(key, stripe.WithBackends(stripe.NewBackendsWithConfig(cfg)))}
}

// pooledClient keeps connections to Stripe open for a payments queue's worth
// of concurrent calls (net/http keeps only 2 idle per host by default, so
// 100 workers would open and close connections constantly).
func pooledClient(timeout time.Duration) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 128
	return &http.Client{Timeout: timeout, Transport: tr}
}

// TransferParams pays a connected account.
type TransferParams struct {
	Amount         int64
	Currency       string
	Destination    string // acct_...
	TransferGroup  string // our order id
	IdempotencyKey string // our transfer row id
	Metadata       map[string]string
}

// CreateTransfer creates (or, for a repeated key, returns) the transfer.
func (c *Client) CreateTransfer(ctx context.Context, p TransferParams) (string, error) {
	if p.IdempotencyKey == "" {
		return "", ErrMissingIdempotencyKey
	}
	params := &stripe.TransferCreateParams{
		Amount:        stripe.Int64(p.Amount),
		Currency:      stripe.String(strings.ToLower(p.Currency)),
		Destination:   stripe.String(p.Destination),
		TransferGroup: stripe.String(p.TransferGroup),
		Metadata:      p.Metadata,
	}
	params.SetIdempotencyKey(p.IdempotencyKey)
	tr, err := c.sc.V1Transfers.Create(ctx, params)
	if err != nil {
		return "", err
	}
	return tr.ID, nil
}

// ReverseTransfer reverses the transfer in full (amount nil) or in part.
// It returns ErrTransferNotFound or ErrTransferAlreadyReversed for those
// outcomes; other errors are Stripe's, see IsTransient.
func (c *Client) ReverseTransfer(ctx context.Context, transferID, idempotencyKey string, amount *int64) (string, error) {
	if idempotencyKey == "" {
		return "", ErrMissingIdempotencyKey
	}
	params := &stripe.TransferReversalCreateParams{ID: stripe.String(transferID), Amount: amount}
	params.SetIdempotencyKey(idempotencyKey)
	rev, err := c.sc.V1TransferReversals.Create(ctx, params)
	if err == nil {
		return rev.ID, nil
	}
	var se *stripe.Error
	if !errors.As(err, &se) {
		return "", err
	}
	if se.Code == stripe.ErrorCodeResourceMissing || se.HTTPStatusCode == http.StatusNotFound {
		return "", fmt.Errorf("%w: %s", ErrTransferNotFound, transferID)
	}
	if se.HTTPStatusCode == http.StatusBadRequest && se.Type == stripe.ErrorTypeInvalidRequest {
		// "Already reversed" has no code of its own: confirm by reading the
		// transfer back instead of matching message text.
		tr, gerr := c.sc.V1Transfers.Retrieve(ctx, transferID, nil)
		if gerr == nil && tr.Reversed {
			return "", fmt.Errorf("%w: %s", ErrTransferAlreadyReversed, transferID)
		}
	}
	return "", err
}

// IsTransient reports whether a later retry of the same call may succeed:
// network errors, 409 (concurrent use of an idempotency key), 429 and 5xx.
func IsTransient(err error) bool {
	var se *stripe.Error
	if !errors.As(err, &se) {
		return !errors.Is(err, ErrMissingIdempotencyKey) && !errors.Is(err, ErrTransferNotFound) && !errors.Is(err, ErrTransferAlreadyReversed)
	}
	switch {
	case se.HTTPStatusCode == 0, se.HTTPStatusCode == http.StatusConflict, se.HTTPStatusCode == http.StatusTooManyRequests, se.HTTPStatusCode >= 500:
		return true
	}
	return false
}

// Describe is a short, secret-free description of a Stripe error for rows
// and logs (stripe.Error's own Error() is its whole JSON).
func Describe(err error) string {
	var se *stripe.Error
	if errors.As(err, &se) {
		s := fmt.Sprintf("stripe %d %s", se.HTTPStatusCode, se.Type)
		if se.Code != "" {
			s += " " + string(se.Code)
		}
		if se.Msg != "" {
			s += ": " + se.Msg
		}
		if se.RequestID != "" {
			s += " (request " + se.RequestID + ")"
		}
		return s
	}
	return err.Error()
}
