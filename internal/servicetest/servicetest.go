// Package servicetest runs the real service for end-to-end tests, the crash
// suite and the benchmarks: it builds the binary once per process, starts
// `app serve` or `app work` on port 0 with an environment (usually pointing
// at the provider fakes, see FakeEnv), waits for readiness, and can kill -9
// and restart a process. It returns errors rather than failing a test, so
// `make bench`, which has no testing.T, uses it too.
package servicetest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/veza/backend/hyperswitch/hyperswitchtest"
	"github.com/veza/backend/mail/mailtest"
	"github.com/veza/backend/stripeconnect/stripetest"
)

var (
	buildOnce sync.Once
	buildDir  string
	buildBin  string
	buildErr  error
)

// Build compiles cmd/app into a temporary directory, once per process, and
// returns the binary's path. Cleanup removes it.
func Build() (string, error) {
	buildOnce.Do(func() {
		_, file, _, _ := runtime.Caller(0)
		root := filepath.Join(filepath.Dir(file), "..", "..")
		buildDir, buildErr = os.MkdirTemp("", "veza-app-")
		if buildErr != nil {
			return
		}
		bin := filepath.Join(buildDir, "app")
		cmd := exec.Command("go", "build", "-o", bin, "./cmd/app")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build ./cmd/app: %v: %s", err, out)
			return
		}
		buildBin = bin
	})
	return buildBin, buildErr
}

// Cleanup removes what Build made; call it when the process's last service
// has stopped (TestMain after m.Run).
func Cleanup() {
	if buildDir != "" {
		_ = os.RemoveAll(buildDir)
	}
}

// Opts describe one service process.
type Opts struct {
	Bin     string // from Build
	Command string // "serve" or "work"
	// Env is the process's whole environment besides PATH. For serve,
	// HTTP_ADDR defaults to 127.0.0.1:0; the address it gets is kept
	// across restarts.
	Env map[string]string
	// LogPath receives stdout and stderr, appended across restarts.
	LogPath string
}

// Service is one `app serve` or `app work` process, restartable.
type Service struct {
	opts Opts
	addr string // serve's listening address, once known

	mu        sync.Mutex
	cmd       *exec.Cmd
	exited    chan error
	logOffset int64 // where the current run's lines start in LogPath
	starts    int
}

// Start launches opts and waits until the process is ready (ReadyTimeout).
func Start(opts Opts) (*Service, error) {
	s := &Service{opts: opts}
	if err := s.Launch(); err != nil {
		return nil, err
	}
	if err := s.WaitReady(ReadyTimeout); err != nil {
		_ = s.Kill()
		return nil, err
	}
	return s, nil
}

// ReadyTimeout bounds how long a process may take to become ready.
const ReadyTimeout = 60 * time.Second

// Launch starts the process without waiting for it to be ready: the crash
// suite's killer restarts processes that way, so a kill can land during
// boot.
func (s *Service) Launch() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return errors.New("servicetest: " + s.opts.Command + " is already running")
	}
	logFile, err := os.OpenFile(s.opts.LogPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	info, err := logFile.Stat()
	if err != nil {
		logFile.Close()
		return err
	}
	env := []string{"PATH=" + os.Getenv("PATH")}
	vars := map[string]string{}
	for k, v := range s.opts.Env {
		vars[k] = v
	}
	if s.opts.Command == "serve" {
		switch {
		case s.addr != "":
			vars["HTTP_ADDR"] = s.addr
		case vars["HTTP_ADDR"] == "":
			vars["HTTP_ADDR"] = "127.0.0.1:0"
		}
	}
	for k, v := range vars {
		env = append(env, k+"="+v)
	}
	sort.Strings(env)
	cmd := exec.Command(s.opts.Bin, s.opts.Command)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait(); logFile.Close() }()
	s.cmd, s.exited, s.logOffset = cmd, exited, info.Size()
	s.starts++
	return nil
}

// WaitReady waits until serve answers /readyz with 200, or work logs that it
// started; it fails early when the process exits.
func (s *Service) WaitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		s.mu.Lock()
		exited, offset := s.exited, s.logOffset
		s.mu.Unlock()
		if exited == nil {
			return errors.New("servicetest: not running")
		}
		select {
		case err := <-exited:
			exited <- err
			return fmt.Errorf("servicetest: %s exited before it was ready (%v); its log:\n%s", s.opts.Command, err, s.tail(offset))
		default:
		}
		if s.ready(offset) {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("servicetest: %s not ready after %s; its log:\n%s", s.opts.Command, timeout, s.tail(0))
}

func (s *Service) ready(offset int64) bool {
	lines := s.lines(offset)
	if s.opts.Command != "serve" {
		_, ok := lines["service started"]
		return ok
	}
	if line, ok := lines["http server listening"]; ok && s.Addr() == "" {
		s.mu.Lock()
		s.addr, _ = line["addr"].(string)
		s.mu.Unlock()
	}
	if s.Addr() == "" {
		return false
	}
	resp, err := http.Get(s.URL() + "/readyz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// lines are the JSON log lines after offset, by message.
func (s *Service) lines(offset int64) map[string]map[string]any {
	out := map[string]map[string]any{}
	raw, err := os.ReadFile(s.opts.LogPath)
	if err != nil || int64(len(raw)) < offset {
		return out
	}
	sc := bufio.NewScanner(bytes.NewReader(raw[offset:]))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var line map[string]any
		if json.Unmarshal(sc.Bytes(), &line) == nil {
			if msg, ok := line["message"].(string); ok {
				out[msg] = line
			}
		}
	}
	return out
}

func (s *Service) tail(offset int64) string {
	raw, _ := os.ReadFile(s.opts.LogPath)
	if int64(len(raw)) >= offset {
		raw = raw[offset:]
	}
	if len(raw) > 4000 {
		raw = raw[len(raw)-4000:]
	}
	return string(raw)
}

// Addr is serve's listening address ("" for work, or before it is known).
func (s *Service) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// URL is serve's base URL.
func (s *Service) URL() string { return "http://" + s.Addr() }

// Pid is the running process's id (0 when stopped).
func (s *Service) Pid() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

// Starts counts the launches.
func (s *Service) Starts() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.starts
}

// Kill sends SIGKILL (no graceful anything) and waits for the exit.
func (s *Service) Kill() error { return s.signal(syscall.SIGKILL, 10*time.Second) }

// Stop sends SIGTERM and waits up to timeout for a graceful exit, then
// kills. It returns the process's exit error, if any.
func (s *Service) Stop(timeout time.Duration) error { return s.signal(syscall.SIGTERM, timeout) }

func (s *Service) signal(sig syscall.Signal, timeout time.Duration) error {
	s.mu.Lock()
	cmd, exited := s.cmd, s.exited
	s.cmd, s.exited = nil, nil
	s.mu.Unlock()
	if cmd == nil {
		return nil
	}
	_ = cmd.Process.Signal(sig)
	select {
	case err := <-exited:
		if sig == syscall.SIGKILL {
			return nil
		}
		return err
	case <-time.After(timeout):
		_ = cmd.Process.Kill()
		<-exited
		return fmt.Errorf("servicetest: %s did not exit within %s of %s", s.opts.Command, timeout, sig)
	}
}

// Restart kills the process and starts it again, ready, on the same
// address.
func (s *Service) Restart() error {
	if err := s.Kill(); err != nil {
		return err
	}
	if err := s.Launch(); err != nil {
		return err
	}
	return s.WaitReady(ReadyTimeout)
}

// WaitListening reads logs until serve's "http server listening" line and
// returns its address: for a service run in-process on port 0.
func WaitListening(ctx context.Context, logs func() string) (string, error) {
	for {
		sc := bufio.NewScanner(bytes.NewReader([]byte(logs())))
		for sc.Scan() {
			var line struct{ Message, Addr string }
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Message == "http server listening" {
				return line.Addr, nil
			}
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("servicetest: no listening line: %w", ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// FakeEnv is the environment that points a service at the provider fakes
// (any may be nil), with Hyperswitch's webhook secret.
func FakeEnv(hs *hyperswitchtest.Server, stripe *stripetest.Server, smtp *mailtest.Server, webhookSecret string) map[string]string {
	// Many services run at once on one machine: none takes the development
	// metrics port unless asked.
	env := map[string]string{"METRICS_ADDR": "off"}
	if hs != nil {
		env["HYPERSWITCH_ENABLED"], env["HYPERSWITCH_BASE_URL"], env["HYPERSWITCH_API_KEY"] = "true", hs.URL, hyperswitchtest.APIKey
		env["HYPERSWITCH_WEBHOOK_SECRET"] = webhookSecret
	}
	if stripe != nil {
		env["STRIPE_CONNECT_ENABLED"], env["STRIPE_SECRET_KEY"], env["STRIPE_API_BASE"] = "true", stripetest.SecretKey, stripe.URL
	}
	if smtp != nil {
		env["SMTP_HOST"], env["SMTP_PORT"], env["SMTP_TLS"], env["SMTP_FROM"] = smtp.Host, strconv.Itoa(smtp.Port), "none", "no-reply@veza.test"
	}
	return env
}
