// Package riverui mounts River UI behind HTTP basic auth. River UI has no
// auth of its own and shows job args to whoever reaches it, so it is never
// served without credentials.
package riverui

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"riverqueue.com/riverui"

	"github.com/veza/backend/internal/window"
	"github.com/veza/backend/jobs"
)

// Prefix is where the UI is served.
const Prefix = "/riverui"

// Opts configures NewHandler.
type Opts struct {
	Client   *jobs.Client
	Username string
	Password string
	Logger   *slog.Logger
}

// NewHandler builds and starts River UI wrapped in basic auth. It refuses
// empty credentials. The handler's background work stops with ctx.
func NewHandler(ctx context.Context, opts Opts) (http.Handler, error) {
	if opts.Username == "" || opts.Password == "" {
		return nil, errors.New("river UI needs RIVER_UI_USERNAME and RIVER_UI_PASSWORD")
	}
	h, err := riverui.NewHandler(&riverui.HandlerOpts{
		Endpoints: riverui.NewEndpoints(opts.Client, nil),
		Logger:    opts.Logger,
		Prefix:    Prefix, // River UI strips the prefix itself
	})
	if err != nil {
		return nil, fmt.Errorf("error creating River UI handler: %w", err)
	}
	if err := h.Start(ctx); err != nil {
		return nil, fmt.Errorf("error starting River UI: %w", err)
	}
	return BasicAuth(detachContext(h), opts.Username, opts.Password), nil
}

// detachContext gives River UI a request context of its own. Behind Fiber's
// adaptor, r.Context() is fasthttp's RequestCtx, whose Done() reads server
// state that Shutdown writes without a lock: River UI derives timeouts from
// it, and the race detector caught the two racing at shutdown. The request
// keeps a deadline; it only stops following the connection.
func detachContext(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 60*time.Second)
		defer cancel()
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// ClientHeader carries the client's address as the HTTP server determined
// it (TRUSTED_PROXIES); the server sets it on every request it passes to
// River UI, replacing any the client sent.
const ClientHeader = "X-Veza-Client-Ip"

// FailedLoginsPerMinute is how many wrong credentials a client may send
// per minute before it is answered 429 for the rest of the minute.
const FailedLoginsPerMinute = 10

// BasicAuth lets through requests carrying the given credentials and answers
// 401 with a challenge otherwise. Both sides are hashed before the
// constant-time compare so neither content nor length leaks through timing.
// A client sending FailedLoginsPerMinute wrong credentials is refused (429)
// for the rest of the minute. Browsers cache basic auth, so any page an
// operator visits could post to River UI's cancel, retry and delete
// endpoints: unsafe cross-origin browser requests are refused (403) by
// net/http's CrossOriginProtection (Sec-Fetch-Site, then Origin against
// Host); requests from outside a browser carry neither and pass.
func BasicAuth(next http.Handler, username, password string) http.Handler {
	wantUser := sha256.Sum256([]byte(username))
	wantPass := sha256.Sum256([]byte(password))
	failures := window.New(FailedLoginsPerMinute)
	return http.NewCrossOriginProtection().Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Cloned: behind Fiber's adaptor header values alias fasthttp's
		// buffers, which are reused after the request (a map key would
		// change under the map).
		client := strings.Clone(r.Header.Get(ClientHeader))
		if client == "" {
			host, _, err := net.SplitHostPort(r.RemoteAddr)
			if client = host; err != nil {
				client = r.RemoteAddr
			}
		}
		if failures.Exceeded(client) {
			w.Header().Set("Retry-After", "60")
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusTooManyRequests)
			_, _ = w.Write([]byte(`{"error":{"code":"rate_limited","message":"too many failed River UI logins; retry in a minute"}}`))
			return
		}
		user, pass, ok := r.BasicAuth()
		gotUser := sha256.Sum256([]byte(user))
		gotPass := sha256.Sum256([]byte(pass))
		userOK := subtle.ConstantTimeCompare(gotUser[:], wantUser[:])
		passOK := subtle.ConstantTimeCompare(gotPass[:], wantPass[:])
		if !ok || userOK&passOK != 1 {
			if ok { // a browser's first request carries none: not a failure
				failures.Allow(client)
			}
			w.Header().Set("WWW-Authenticate", `Basic realm="River UI", charset="UTF-8"`)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"error":{"code":"unauthorized","message":"River UI requires valid credentials"}}`))
			return
		}
		next.ServeHTTP(w, r)
	}))
}
