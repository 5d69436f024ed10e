package mail

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/rs/zerolog"
	gomail "github.com/wneessen/go-mail"
)

// Message is one email, already rendered.
type Message struct {
	To      string
	Subject string
	Text    string
	HTML    string
}

// Sender delivers a message. The email job calls it outside any transaction
// and retries on error.
type Sender interface {
	Send(ctx context.Context, msg Message) error
}

// Paced is a Sender that takes a turn at a rate limit before each message
// (SMTP relays limit messages per second). Reserve takes one turn now and
// returns the sender for the one message it was taken for, which takes no
// other: a caller with work to do before its message exists (minting a
// link) takes its turn first, so a message held back has cost nothing.
type Paced interface {
	Sender
	Reserve(ctx context.Context) (Sender, error)
}

// NewSender returns the SMTP sender when a host is configured, otherwise the
// log-only sender. logBodies lets the log-only sender print bodies (with
// their one-time links): development only, never where logs are shipped.
func NewSender(cfg Config, logger zerolog.Logger, logBodies bool) Sender {
	if cfg.Enabled() {
		return &SMTPSender{cfg: cfg}
	}
	return &LogSender{logger: logger, logBodies: logBodies}
}

// SMTPSender sends through go-mail, one connection per message (volume is
// low; a pooled connection would be one more thing to keep healthy).
type SMTPSender struct {
	cfg Config
}

// NewSMTPSender builds a sender for cfg (Host must be set).
func NewSMTPSender(cfg Config) *SMTPSender { return &SMTPSender{cfg: cfg} }

// ErrNoSender is returned when a message is sent without a from address.
var ErrNoSender = errors.New("SMTP_FROM is not set: cannot send mail")

func (s *SMTPSender) Send(ctx context.Context, msg Message) error {
	if s.cfg.From == "" {
		return ErrNoSender
	}
	m := gomail.NewMsg()
	var err error
	if s.cfg.FromName != "" {
		err = m.FromFormat(s.cfg.FromName, s.cfg.From)
	} else {
		err = m.From(s.cfg.From)
	}
	if err != nil {
		return fmt.Errorf("error setting from address: %w", err)
	}
	if err := m.To(msg.To); err != nil {
		return fmt.Errorf("error setting recipient: %w", err)
	}
	m.Subject(msg.Subject)
	m.SetDate()
	m.SetMessageID()
	m.SetBodyString(gomail.TypeTextPlain, msg.Text)
	if msg.HTML != "" {
		m.AddAlternativeString(gomail.TypeTextHTML, msg.HTML)
	}

	opts := []gomail.Option{gomail.WithTimeout(15 * time.Second)}
	switch s.cfg.TLS {
	case TLSImplicit:
		opts = append(opts, gomail.WithSSLPort(false))
	case TLSOpportunistic:
		opts = append(opts, gomail.WithTLSPortPolicy(gomail.TLSOpportunistic))
	case TLSNone:
		opts = append(opts, gomail.WithTLSPolicy(gomail.NoTLS))
	default:
		opts = append(opts, gomail.WithTLSPortPolicy(gomail.TLSMandatory))
	}
	if s.cfg.Port != 0 {
		// WithSSLPort/WithTLSPortPolicy pick a default port; an explicit
		// SMTP_PORT wins, so apply it last.
		opts = append(opts, gomail.WithPort(s.cfg.Port))
	}
	if s.cfg.Username != "" {
		opts = append(opts, gomail.WithSMTPAuth(gomail.SMTPAuthAutoDiscover),
			gomail.WithUsername(s.cfg.Username), gomail.WithPassword(s.cfg.Password))
	}
	client, err := gomail.NewClient(s.cfg.Host, opts...)
	if err != nil {
		return fmt.Errorf("error configuring SMTP client: %w", err)
	}
	if err := client.DialAndSendWithContext(ctx, m); err != nil {
		return fmt.Errorf("error sending mail via %s: %w", s.cfg.Host, err)
	}
	return nil
}

// LogSender logs messages instead of sending them (SMTP_HOST empty).
type LogSender struct {
	logger    zerolog.Logger
	logBodies bool
}

func (s *LogSender) Send(ctx context.Context, msg Message) error {
	ev := s.logger.Info().Str("to", msg.To).Str("subject", msg.Subject)
	if s.logBodies {
		ev = ev.Str("text", msg.Text)
	}
	ev.Msg("email not sent: SMTP_HOST is empty (log-only mail)")
	return nil
}
