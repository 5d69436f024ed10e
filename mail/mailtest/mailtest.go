// Package mailtest runs a real SMTP server in the test process
// (emersion/go-smtp) that records what it receives, so mail flows are tested
// over the wire rather than against a stub sender.
package mailtest

import (
	"bytes"
	"io"
	"mime"
	"mime/multipart"
	"net"
	"net/mail"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// Message is one received mail, decoded enough for assertions.
type Message struct {
	From    string
	To      []string
	Subject string
	Text    string // the text/plain part
	HTML    string // the text/html part
	Raw     []byte
}

// Server is an SMTP server on a loopback port.
type Server struct {
	Addr string // host:port
	Host string
	Port int

	mu       sync.Mutex
	messages []Message
	notify   chan struct{}
	srv      *smtp.Server
}

// Start listens on addr ("127.0.0.1:0" for any free port) and stops when
// the test ends.
func Start(t testing.TB, addr string) *Server {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("mailtest: %v", err)
	}
	s := &Server{Addr: ln.Addr().String(), notify: make(chan struct{}, 1)}
	host, port, _ := net.SplitHostPort(s.Addr)
	s.Host = host
	s.Port, _ = strconv.Atoi(port)
	s.srv = smtp.NewServer(&backend{s: s})
	s.srv.Domain = "localhost"
	s.srv.AllowInsecureAuth = true
	s.srv.ReadTimeout = 10 * time.Second
	s.srv.WriteTimeout = 10 * time.Second
	go func() { _ = s.srv.Serve(ln) }()
	t.Cleanup(func() { _ = s.srv.Close() })
	return s
}

// Messages returns a copy of what was received so far.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.messages...)
}

// WaitFor waits until n messages arrived, failing the test after timeout.
func (s *Server) WaitFor(t testing.TB, n int, timeout time.Duration) []Message {
	t.Helper()
	deadline := time.After(timeout)
	for {
		if msgs := s.Messages(); len(msgs) >= n {
			return msgs
		}
		select {
		case <-s.notify:
		case <-deadline:
			t.Fatalf("mailtest: waited %s for %d messages, got %d", timeout, n, len(s.Messages()))
		}
	}
}

var tokenRE = regexp.MustCompile(`[?&]token=([A-Za-z0-9_\-%]+)`)

// Token extracts the token of the first link in the text part.
func (m Message) Token() string {
	match := tokenRE.FindStringSubmatch(m.Text)
	if match == nil {
		return ""
	}
	return match[1]
}

func (s *Server) add(m Message) {
	s.mu.Lock()
	s.messages = append(s.messages, m)
	s.mu.Unlock()
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

type backend struct{ s *Server }

func (b *backend) NewSession(*smtp.Conn) (smtp.Session, error) { return &session{s: b.s}, nil }

type session struct {
	s    *Server
	from string
	to   []string
}

func (ss *session) AuthMechanisms() []string { return nil }
func (ss *session) Reset()                   { ss.from, ss.to = "", nil }
func (ss *session) Logout() error            { return nil }

func (ss *session) Mail(from string, _ *smtp.MailOptions) error { ss.from = from; return nil }
func (ss *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	ss.to = append(ss.to, to)
	return nil
}

func (ss *session) Data(r io.Reader) error {
	raw, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	m := Message{From: ss.from, To: ss.to, Raw: raw}
	parsed, err := mail.ReadMessage(bytes.NewReader(raw))
	if err == nil {
		dec := new(mime.WordDecoder)
		m.Subject, _ = dec.DecodeHeader(parsed.Header.Get("Subject"))
		m.Text, m.HTML = parts(parsed.Header.Get("Content-Type"), parsed.Header.Get("Content-Transfer-Encoding"), parsed.Body)
	}
	ss.s.add(m)
	return nil
}

// parts walks a (possibly multipart) body and returns its text and HTML.
func parts(contentType, encoding string, body io.Reader) (text, html string) {
	mediaType, params, _ := mime.ParseMediaType(contentType)
	if strings.HasPrefix(mediaType, "multipart/") {
		mr := multipart.NewReader(body, params["boundary"])
		for {
			p, err := mr.NextRawPart()
			if err != nil {
				return text, html
			}
			t, h := parts(p.Header.Get("Content-Type"), p.Header.Get("Content-Transfer-Encoding"), p)
			if t != "" {
				text = t
			}
			if h != "" {
				html = h
			}
		}
	}
	data, _ := io.ReadAll(decode(encoding, body))
	switch mediaType {
	case "text/html":
		return "", string(data)
	default:
		return string(data), ""
	}
}
