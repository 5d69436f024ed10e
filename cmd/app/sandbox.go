package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"mime/multipart"
	nethttp "net/http"
	"net/url"
	"strings"
	"time"
)

// apiFlagHelp is the --api flag both sandbox commands take.
const apiFlagHelp = "the running service (default: HTTP_ADDR on this machine, else http://127.0.0.1:8080)"

// defaultAPI is where `make run` serves on this machine.
func defaultAPI(getenv func(string) string) string {
	addr := getenv("HTTP_ADDR")
	if addr == "" {
		addr = ":8080"
	}
	return loopbackURL(addr)
}

// runSandbox is `app sandbox pay ORDER_ID [--status S]`: the buyer paying
// (or failing to) in the simulated Hyperswitch of a running `app serve`.
func runSandbox(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "pay" {
		return usagef("sandbox: expected \"pay ORDER_ID\"")
	}
	fs := newFlagSet("sandbox pay", stderr)
	status := fs.String("status", "succeeded", "the payment's new status (failed, processing, requires_customer_action, cancelled, expired, ...)")
	api := fs.String("api", defaultAPI(getenv), apiFlagHelp)
	rest := args[1:]
	if len(rest) == 0 || strings.HasPrefix(rest[0], "-") {
		return usagef("sandbox pay: ORDER_ID is required (the order's id or its payment_id)")
	}
	id := rest[0]
	if err := parseFlags(fs, rest[1:]); err != nil {
		return err
	}
	c := &apiClient{base: strings.TrimRight(*api, "/")}
	var out struct {
		Payment struct {
			PaymentID string `json:"payment_id"`
			Status    string `json:"status"`
		} `json:"payment"`
		EventType string `json:"event_type"`
	}
	if err := c.do(ctx, "POST", "/sandbox/payments/"+url.PathEscape(id)+"/complete", map[string]string{"status": *status}, 200, &out); err != nil {
		return err
	}
	if out.EventType == "" {
		fmt.Fprintf(stdout, "payment %s is %s (no webhook for that status)\n", out.Payment.PaymentID, out.Payment.Status)
	} else {
		fmt.Fprintf(stdout, "payment %s is %s; Hyperswitch (simulated) sends %s to the service\n", out.Payment.PaymentID, out.Payment.Status, out.EventType)
	}
	return nil
}

// seedUser is a demo login.
type seedUser struct {
	email, password, role string
	tracks                []seedTrack
}

type seedTrack struct {
	title string
	price int64
	hz    float64
}

const seedPassword = "sandbox-demo-password"

var seedUsers = []seedUser{
	{email: "ada.seller@example.com", password: seedPassword, role: "seller", tracks: []seedTrack{
		{"Ada - Morning Sine", 199, 440}, {"Ada - Low Drone", 299, 110},
	}},
	{email: "bix.seller@example.com", password: seedPassword, role: "seller", tracks: []seedTrack{
		{"Bix - Square One", 149, 330}, {"Bix - High Note", 99, 880},
	}},
	{email: "cy.buyer@example.com", password: seedPassword, role: "buyer"},
}

// runSeed is `app seed`: demo sellers (onboarded at the simulated Stripe),
// their tracks and a buyer, made through the public API of a running
// sandbox. Idempotent: what exists is kept.
func runSeed(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("seed", stderr)
	api := fs.String("api", defaultAPI(getenv), apiFlagHelp)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	c := &apiClient{base: strings.TrimRight(*api, "/")}
	if err := c.do(ctx, "GET", "/sandbox/stripe/transfers", nil, 200, nil); err != nil {
		return fmt.Errorf("seed needs a running sandbox (make run, APP_ENV=development, no provider keys) at %s: %w", c.base, err)
	}
	fmt.Fprintf(stdout, "%-24s %-22s %-7s %s\n", "email", "password", "role", "tracks")
	for _, u := range seedUsers {
		titles, err := seedOne(ctx, c, u)
		if err != nil {
			return fmt.Errorf("seed %s: %w", u.email, err)
		}
		fmt.Fprintf(stdout, "%-24s %-22s %-7s %s\n", u.email, u.password, u.role, strings.Join(titles, ", "))
	}
	return nil
}

func seedOne(ctx context.Context, c *apiClient, u seedUser) ([]string, error) {
	creds := map[string]string{"email": u.email, "password": u.password}
	var login struct {
		Token string `json:"token"`
	}
	// Log in first: a second seed then spends one call of the auth rate
	// limit (RATE_LIMIT_AUTH_PER_MINUTE) per user, not two.
	err := c.do(ctx, "POST", "/v1/auth/login", creds, 200, &login)
	if isCode(err, "invalid_credentials") {
		if err = c.do(ctx, "POST", "/v1/auth/register", creds, 201, nil); err == nil || isCode(err, "email_taken") {
			err = c.do(ctx, "POST", "/v1/auth/login", creds, 200, &login)
		}
		if isCode(err, "invalid_credentials") {
			return nil, fmt.Errorf("%w (the demo user exists with another password: change it back, or start from an empty database)", err)
		}
	}
	if isCode(err, "rate_limited") {
		return nil, fmt.Errorf("%w: the auth rate limit (RATE_LIMIT_AUTH_PER_MINUTE) is spent; run seed again in a minute", err)
	}
	if err != nil {
		return nil, err
	}
	user := c.as(login.Token)
	var me struct {
		ID             string `json:"id"`
		EmailVerified  bool   `json:"email_verified"`
		PayoutsEnabled bool   `json:"payouts_enabled"`
	}
	if err := user.do(ctx, "GET", "/v1/me", nil, 200, &me); err != nil {
		return nil, err
	}
	if !me.EmailVerified {
		if err := verifyFromInbox(ctx, c, u.email); err != nil {
			return nil, err
		}
	}
	if u.role != "seller" {
		return nil, nil
	}
	if !me.PayoutsEnabled {
		var link struct {
			URL string `json:"url"`
		}
		if err := user.do(ctx, "POST", "/v1/me/payout-account/onboarding", nil, 200, &link); err != nil {
			return nil, err
		}
		if err := c.get(ctx, link.URL); err != nil {
			return nil, fmt.Errorf("opening the onboarding link: %w", err)
		}
	}
	var titles []string
	for _, t := range u.tracks {
		var list struct {
			Tracks []struct {
				Title   string `json:"title"`
				OwnerID string `json:"owner_id"`
			} `json:"tracks"`
		}
		if err := c.do(ctx, "GET", "/v1/tracks?limit=100&q="+url.QueryEscape(t.title), nil, 200, &list); err != nil {
			return nil, err
		}
		found := false
		for _, l := range list.Tracks {
			found = found || (l.Title == t.title && l.OwnerID == me.ID)
		}
		if !found {
			if err := user.upload(ctx, t.title, t.price, "EUR", tone(t.hz, time.Second)); err != nil {
				return nil, err
			}
		}
		titles = append(titles, t.title)
	}
	return titles, nil
}

// verifyFromInbox posts the token of the newest verification email.
func verifyFromInbox(ctx context.Context, c *apiClient, email string) error {
	var inbox struct {
		Emails []struct {
			Links []string `json:"links"`
		} `json:"emails"`
	}
	for range 50 { // the email job runs within a moment
		if err := c.do(ctx, "GET", "/sandbox/emails?to="+url.QueryEscape(email), nil, 200, &inbox); err != nil {
			return err
		}
		for _, e := range inbox.Emails {
			for _, l := range e.Links {
				if u, err := url.Parse(l); err == nil && strings.HasSuffix(u.Path, "/verify-email") {
					return c.do(ctx, "POST", "/v1/auth/verify", map[string]string{"token": u.Query().Get("token")}, 200, nil)
				}
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return errors.New("no verification email in the sandbox inbox after 5 s")
}

// tone is a WAV file: a sine at hz, 8 kHz 16-bit mono.
func tone(hz float64, d time.Duration) []byte {
	const rate = 8000
	n := int(d.Seconds() * rate)
	var b bytes.Buffer
	w := func(v any) { _ = binary.Write(&b, binary.LittleEndian, v) }
	b.WriteString("RIFF")
	w(uint32(36 + 2*n))
	b.WriteString("WAVEfmt ")
	w(uint32(16))
	w(uint16(1)) // PCM
	w(uint16(1)) // mono
	w(uint32(rate))
	w(uint32(rate * 2))
	w(uint16(2))
	w(uint16(16))
	b.WriteString("data")
	w(uint32(2 * n))
	for i := range n {
		w(int16(8000 * math.Sin(2*math.Pi*hz*float64(i)/rate)))
	}
	return b.Bytes()
}

// apiClient speaks to a running service.
type apiClient struct {
	base, token string
}

func (c *apiClient) as(token string) *apiClient { return &apiClient{base: c.base, token: token} }

// apiError is a non-expected answer.
type apiError struct {
	status int
	code   string
	msg    string
}

func (e *apiError) Error() string { return fmt.Sprintf("%d %s: %s", e.status, e.code, e.msg) }

func isCode(err error, code string) bool {
	var ae *apiError
	return errors.As(err, &ae) && ae.code == code
}

var httpClient = &nethttp.Client{Timeout: 30 * time.Second}

func (c *apiClient) do(ctx context.Context, method, path string, body any, want int, out any) error {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := nethttp.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return c.send(req, want, out)
}

func (c *apiClient) send(req *nethttp.Request, want int, out any) error {
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != want {
		var e struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		_ = json.Unmarshal(raw, &e)
		if e.Error.Code == "" {
			e.Error.Message = strings.TrimSpace(string(raw))
		}
		return &apiError{status: resp.StatusCode, code: e.Error.Code, msg: req.Method + " " + req.URL.Path + ": " + e.Error.Message}
	}
	if out != nil {
		return json.Unmarshal(raw, out)
	}
	return nil
}

// get opens a page (an onboarding link) and wants a 200.
func (c *apiClient) get(ctx context.Context, link string) error {
	req, err := nethttp.NewRequestWithContext(ctx, "GET", link, nil)
	if err != nil {
		return err
	}
	return (&apiClient{}).send(req, 200, nil)
}

func (c *apiClient) upload(ctx context.Context, title string, price int64, currency string, audio []byte) error {
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	_ = mw.WriteField("title", title)
	_ = mw.WriteField("price_cents", fmt.Sprint(price))
	_ = mw.WriteField("currency", currency)
	fw, _ := mw.CreateFormFile("file", "tone.wav")
	_, _ = fw.Write(audio)
	_ = mw.Close()
	req, err := nethttp.NewRequestWithContext(ctx, "POST", c.base+"/v1/tracks", &b)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", mw.FormDataContentType())
	return c.send(req, 201, nil)
}
