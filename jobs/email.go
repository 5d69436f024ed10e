package jobs

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/google/uuid"
	"github.com/riverqueue/river"
	"github.com/rs/zerolog"

	"github.com/veza/backend"
	"github.com/veza/backend/auth"
	"github.com/veza/backend/jobargs"
	"github.com/veza/backend/mail"
	"github.com/veza/backend/store"
)

// EmailWorker renders and sends EmailArgs.
type EmailWorker struct {
	river.WorkerDefaults[jobargs.EmailArgs]
	DB            *store.DB
	Sender        mail.Sender
	PublicBaseURL string
	Logger        zerolog.Logger
	// RetryBase is the first retry delay, doubled per attempt up to an
	// hour (default 10s; tests shorten it).
	RetryBase time.Duration
}

func (w *EmailWorker) NextRetry(job *river.Job[jobargs.EmailArgs]) time.Time {
	base := w.RetryBase
	if base == 0 {
		base = 10 * time.Second
	}
	return jobargs.Retry{Base: base, Max: time.Hour}.NextRetry(job.Attempt)
}

func (w *EmailWorker) Timeout(*river.Job[jobargs.EmailArgs]) time.Duration { return 45 * time.Second }

func (w *EmailWorker) Work(ctx context.Context, job *river.Job[jobargs.EmailArgs]) error {
	args := job.Args
	sender := w.Sender
	if paced, ok := sender.(mail.Paced); ok {
		// The relay's turn first: a mail held back (a *Delay, a snooze
		// that keeps the attempt) has read and minted nothing.
		s, err := paced.Reserve(ctx)
		if err != nil {
			return err
		}
		sender = s
	}
	var user *store.User
	var order *store.Order
	var err error
	if args.Template == mail.TemplatePurchaseReceipt && args.OrderID != nil {
		// Every paid order sends one: both reads in one round trip.
		user, order, err = store.GetUserAndOrder(ctx, w.DB.Primary(), args.UserID, *args.OrderID)
	} else {
		user, err = store.GetUser(ctx, w.DB.Primary(), args.UserID)
	}
	if errors.Is(err, store.ErrNotFound) && user == nil {
		// The account was deleted since: nobody to write to. Retrying
		// cannot help.
		w.Logger.Info().Ctx(ctx).Int64("job_id", job.ID).Str("user_id", args.UserID.String()).Msg("email skipped: user no longer exists")
		return nil
	}
	if err != nil {
		return fmt.Errorf("error reading the email's user or order: %w", err)
	}

	data := map[string]any{}
	switch args.Template {
	case mail.TemplateVerifyEmail, mail.TemplatePasswordReset:
		if args.TokenID == nil {
			return river.JobCancel(fmt.Errorf("template %s needs a token_id", args.Template))
		}
		link, ttl, err := w.mintLink(ctx, *args.TokenID, args.Template)
		if errors.Is(err, store.ErrNotFound) {
			w.Logger.Info().Ctx(ctx).Int64("job_id", job.ID).Str("user_id", args.UserID.String()).Str("template", args.Template).
				Msg("email skipped: its token was used, superseded or expired")
			return nil
		}
		if err != nil {
			return err
		}
		data["Link"], data["ExpiresIn"] = link, humanDuration(ttl)
	case mail.TemplatePurchaseReceipt:
		if args.OrderID == nil {
			return river.JobCancel(fmt.Errorf("template %s needs an order_id", args.Template))
		}
		items := make([]map[string]string, len(order.Items))
		for i, it := range order.Items {
			items[i] = map[string]string{"Title": it.Title, "Amount": veza.FormatMoney(it.Amount, it.Currency)}
		}
		data["OrderID"], data["Items"], data["Total"] = order.ID.String(), items, veza.FormatMoney(order.Amount, order.Currency)
	case mail.TemplateChargeback:
		if args.OrderID == nil {
			return river.JobCancel(fmt.Errorf("template %s needs an order_id", args.Template))
		}
		amount, currency, err := store.SellerChargeback(ctx, w.DB.Primary(), *args.OrderID, args.UserID)
		if err != nil {
			return err
		}
		data["OrderID"], data["Total"] = args.OrderID.String(), veza.FormatMoney(amount, currency)
	case mail.TemplatePayoutAccountChanged:
		account := ""
		if user.StripeAccountID != nil {
			account = maskAccount(*user.StripeAccountID)
		}
		data["Account"] = account
	case mail.TemplateRefundConfirmation:
		if args.RefundID == nil {
			return river.JobCancel(fmt.Errorf("template %s needs a refund_id", args.Template))
		}
		refund, err := store.GetRefund(ctx, w.DB.Primary(), *args.RefundID)
		if err != nil {
			return fmt.Errorf("error reading refund: %w", err)
		}
		data["OrderID"], data["Total"] = refund.OrderID.String(), veza.FormatMoney(refund.Amount, refund.Currency)
	default:
		return river.JobCancel(fmt.Errorf("unknown email template %q", args.Template))
	}

	msg, err := mail.Render(args.Template, user.Email, data)
	if err != nil {
		return river.JobCancel(err) // a template bug does not heal by retrying
	}
	if err := sender.Send(ctx, msg); err != nil {
		return err
	}
	return nil
}

// mintLink gives a token row its secret (stored hashed) and returns the link
// for the frontend. A retry mints again, so only the latest mail's link works.
func (w *EmailWorker) mintLink(ctx context.Context, tokenID uuid.UUID, template string) (string, time.Duration, error) {
	raw, hash, err := auth.NewToken()
	if err != nil {
		return "", 0, err
	}
	link := linkTemplates[template]
	tok, err := store.MintEmailToken(ctx, w.DB.Primary(), tokenID, link.purpose, hash)
	if err != nil {
		return "", 0, err
	}
	href := w.PublicBaseURL + link.path + "?token=" + url.QueryEscape(raw)
	return href, time.Until(tok.ExpiresAt).Round(time.Minute), nil
}

// linkTemplates: the token purpose and frontend path of each link-bearing
// email. Minting checks the purpose, so a mail never carries a token that
// would not work at its link.
var linkTemplates = map[string]struct{ purpose, path string }{
	mail.TemplateVerifyEmail:   {store.PurposeVerifyEmail, "/verify-email"},
	mail.TemplatePasswordReset: {store.PurposePasswordReset, "/reset-password"},
}

// maskAccount shows the end of an account id only: acct_…CVdK.
func maskAccount(id string) string {
	if len(id) <= 9 {
		return id
	}
	return "acct_…" + id[len(id)-4:]
}

func humanDuration(d time.Duration) string {
	switch {
	case d >= 47*time.Hour:
		return fmt.Sprintf("%d days", int((d+time.Hour).Hours()/24))
	case d >= 2*time.Hour:
		return fmt.Sprintf("%d hours", int(d.Round(time.Hour).Hours()))
	default:
		return fmt.Sprintf("%d minutes", int(d.Round(time.Minute).Minutes()))
	}
}
