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
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
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
		httpClient = DefaultHTTPClient()
	}
	cfg.HTTPClient = httpClient
	return &Client{sc: stripe.NewClient(key, stripe.WithBackends(stripe.NewBackendsWithConfig(cfg)))}
}

// DefaultHTTPClient is the client New uses when given none.
func DefaultHTTPClient() *http.Client { return pooledClient(30 * time.Second) }

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
// outcomes; other errors are Stripe's, see Classify.
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
	if isMissing(se) {
		return "", fmt.Errorf("%w: %s", ErrTransferNotFound, transferID)
	}
	if se.HTTPStatusCode == http.StatusBadRequest && se.Type == stripe.ErrorTypeInvalidRequest && se.Code == "" {
		// "Already reversed" has no code of its own: confirm by reading the
		// transfer back instead of matching message text.
		tr, gerr := c.GetTransfer(ctx, transferID)
		switch {
		case errors.Is(gerr, ErrTransferNotFound):
			return "", gerr
		case gerr != nil:
			// Unconfirmed: retried rather than the 400. The reversal
			// request was executed (its 400 is saved under the key), so
			// the error must not read as paced even if the read was: %v,
			// not %w, keeps a *ratelimit.Delay or a 429 out of its chain.
			return "", fmt.Errorf("stripeconnect: reversal of %s answered 400, and reading the transfer back failed: %v", transferID, gerr)
		case tr.Reversed:
			return "", fmt.Errorf("%w: %s", ErrTransferAlreadyReversed, transferID)
		}
	}
	return "", err
}

// isMissing is Stripe saying the object does not exist: code
// resource_missing. A 404 without it is a wrong URL (a misconfigured
// STRIPE_API_BASE or proxy), which says nothing about the object.
func isMissing(se *stripe.Error) bool {
	return se.Code == stripe.ErrorCodeResourceMissing && se.HTTPStatusCode == http.StatusNotFound
}

// TransferState is what a read of a transfer tells.
type TransferState struct {
	ID             string
	Amount         int64
	AmountReversed int64
	Reversed       bool // fully
}

// GetTransfer reads a transfer; ErrTransferNotFound on resource_missing.
func (c *Client) GetTransfer(ctx context.Context, transferID string) (*TransferState, error) {
	tr, err := c.sc.V1Transfers.Retrieve(ctx, transferID, nil)
	if err != nil {
		var se *stripe.Error
		if errors.As(err, &se) && isMissing(se) {
			return nil, fmt.Errorf("%w: %s", ErrTransferNotFound, transferID)
		}
		return nil, err
	}
	return &TransferState{ID: tr.ID, Amount: tr.Amount, AmountReversed: tr.AmountReversed, Reversed: tr.Reversed}, nil
}

// FindTransfers lists the transfers of a transfer group (our order id) and
// returns those made for our row (metadata transfer_id): how the service
// learns whether an attempt whose answer was lost, or whose key Stripe has
// forgotten, made the transfer.
func (c *Client) FindTransfers(ctx context.Context, transferGroup, transferID string) ([]TransferState, error) {
	params := &stripe.TransferListParams{TransferGroup: stripe.String(transferGroup)}
	params.Limit = stripe.Int64(100)
	var found []TransferState
	for tr, err := range c.sc.V1Transfers.List(ctx, params) {
		if err != nil {
			return nil, err
		}
		if tr.Metadata["transfer_id"] == transferID {
			found = append(found, TransferState{ID: tr.ID, Amount: tr.Amount, AmountReversed: tr.AmountReversed, Reversed: tr.Reversed})
		}
	}
	return found, nil
}

// Outcome is what an error from Stripe says about the request.
type Outcome int

const (
	// Unknown: the request may or may not have been done (network error,
	// timeout, 5xx, an answer that cannot be decoded, a concurrent request
	// with the key). Ask again, then read back; never conclude failure.
	Unknown Outcome = iota
	// RateLimited: refused before executing (429); retry later.
	RateLimited
	// Balance: balance_insufficient. Saved under the key, and it heals with
	// time: wait, then a new key.
	Balance
	// Refused: a 4xx Stripe saved under the key; retrying the key replays
	// it. Done with this key.
	Refused
	// Missing: resource_missing, Stripe's word that the object does not
	// exist.
	Missing
)

// Classify reads an error of a Stripe call.
func Classify(err error) Outcome {
	if errors.Is(err, ErrTransferNotFound) {
		return Missing
	}
	if errors.Is(err, ErrMissingIdempotencyKey) {
		return Refused // a bug of ours: never retried
	}
	var se *stripe.Error
	if !errors.As(err, &se) {
		return Unknown
	}
	switch {
	case se.HTTPStatusCode == http.StatusTooManyRequests:
		return RateLimited
	case se.Code == stripe.ErrorCodeBalanceInsufficient:
		return Balance
	case isMissing(se):
		return Missing
	case se.HTTPStatusCode == 0 || se.HTTPStatusCode >= 500 || se.HTTPStatusCode == http.StatusConflict:
		return Unknown
	case se.HTTPStatusCode == http.StatusNotFound:
		return Unknown // a wrong URL: a configuration error, retried
	case shouldRetry(se):
		return Unknown
	default:
		return Refused
	}
}

// shouldRetry is Stripe's Stripe-Should-Retry: true on the answer.
func shouldRetry(se *stripe.Error) bool {
	return se.LastResponse != nil && se.LastResponse.Header.Get("Stripe-Should-Retry") == "true"
}

// ObjectBusy reports whether the body of a 429 is Stripe's lock_timeout:
// another request or a Stripe process holds the object. Unlike a
// rate_limit 429 it says nothing about the account's pace (stripe-go
// retries it, and not rate limits, for that reason), so the shared bucket
// stays open and only that call waits (ratelimit.ObjectBusy).
func ObjectBusy(body []byte) bool {
	var e struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	return json.Unmarshal(body, &e) == nil && e.Error.Code == string(stripe.ErrorCodeLockTimeout)
}

// IsTransient reports whether a later retry of the same call may succeed.
func IsTransient(err error) bool {
	o := Classify(err)
	return o == Unknown || o == RateLimited
}

// IsReplayedError reports a 5xx Stripe replayed from a key's saved answer
// (Idempotent-Replayed: true): retrying that key cannot heal it.
func IsReplayedError(err error) bool {
	var se *stripe.Error
	return errors.As(err, &se) && se.HTTPStatusCode >= 500 && se.LastResponse != nil &&
		se.LastResponse.Header.Get("Idempotent-Replayed") == "true"
}

// IsWrongURL reports a 404 without resource_missing: the request reached
// something that is not Stripe's API for that object.
func IsWrongURL(err error) bool {
	var se *stripe.Error
	return errors.As(err, &se) && se.HTTPStatusCode == http.StatusNotFound && !isMissing(se)
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

// ErrAccountUnknown: Stripe does not know the account, or it is not
// connected to this platform.
var ErrAccountUnknown = errors.New("stripeconnect: no such connected account")

// Account is what we read of a connected account.
type Account struct {
	ID             string
	PayoutsEnabled bool
	ChargesEnabled bool
}

// GetAccount reads a connected account (GET /v1/accounts/{id}):
// ErrAccountUnknown when Stripe does not know it (resource_missing) or the
// platform has no access to it (an account of someone else's platform).
func (c *Client) GetAccount(ctx context.Context, id string) (*Account, error) {
	a, err := c.sc.V1Accounts.GetByID(ctx, id, nil)
	if err != nil {
		var se *stripe.Error
		// Not connected to this platform: 403 account_invalid, "does not
		// have access to account ... (or that account does not exist)".
		if errors.As(err, &se) && (isMissing(se) || se.Code == stripe.ErrorCodeAccountInvalid) {
			return nil, fmt.Errorf("%w: %s", ErrAccountUnknown, id)
		}
		return nil, err
	}
	return &Account{ID: a.ID, PayoutsEnabled: a.PayoutsEnabled, ChargesEnabled: a.ChargesEnabled}, nil
}

// CreateExpressAccount creates a seller's connected account (type
// express: Stripe hosts onboarding) under idempotencyKey, our user id: a
// retried call cannot create a second account within Stripe's key window.
func (c *Client) CreateExpressAccount(ctx context.Context, userID, idempotencyKey string) (string, error) {
	if idempotencyKey == "" {
		return "", ErrMissingIdempotencyKey
	}
	params := &stripe.AccountCreateParams{Type: stripe.String("express"), Metadata: map[string]string{"user_id": userID}}
	params.SetIdempotencyKey(idempotencyKey)
	a, err := c.sc.V1Accounts.Create(ctx, params)
	if err != nil {
		return "", err
	}
	return a.ID, nil
}

// CreateOnboardingLink creates an Account Link to Stripe's hosted
// onboarding for account (single use, short-lived: make one per visit).
func (c *Client) CreateOnboardingLink(ctx context.Context, account, refreshURL, returnURL string) (string, error) {
	params := &stripe.AccountLinkCreateParams{Account: stripe.String(account),
		RefreshURL: stripe.String(refreshURL), ReturnURL: stripe.String(returnURL), Type: stripe.String("account_onboarding")}
	params.SetIdempotencyKey("link:" + account + ":" + strconv.FormatInt(time.Now().UnixNano(), 36)) // one link per call
	l, err := c.sc.V1AccountLinks.Create(ctx, params)
	if err != nil {
		return "", err
	}
	return l.URL, nil
}
