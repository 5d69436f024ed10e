package obs

import (
	"context"
	"errors"
	"time"

	gomail "github.com/wneessen/go-mail"

	"github.com/veza/backend/mail"
)

// Sender counts and times each message sent through s as an smtp call.
func Sender(s mail.Sender, m *Metrics) mail.Sender {
	if m == nil {
		return s
	}
	return &meteredSender{s: s, m: m}
}

type meteredSender struct {
	s mail.Sender
	m *Metrics
}

func (s *meteredSender) Send(ctx context.Context, msg mail.Message) error {
	start := time.Now()
	err := s.s.Send(ctx, msg)
	s.m.PSP(ProviderSMTP, "send", SMTPOutcome(err), time.Since(start))
	return err
}

// SMTPOutcome classifies a send: a 5xx reply is a permanent refusal
// (client_error), a 4xx a temporary one (server_error), a failed dial
// network; an error after the message may have been taken, unknown.
func SMTPOutcome(err error) string {
	if err == nil {
		return OutcomeOK
	}
	if errors.Is(err, mail.ErrNoSender) {
		return OutcomeClientError
	}
	var se *gomail.SendError
	if errors.As(err, &se) {
		switch code := se.ErrorCode(); {
		case code >= 500:
			return OutcomeClientError
		case code >= 400 || se.IsTemp():
			return OutcomeServerError
		}
	}
	return ErrorOutcome(err)
}
