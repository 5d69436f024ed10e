package mail

import (
	"bytes"
	"embed"
	"fmt"
	htmltemplate "html/template"
	"strings"
	texttemplate "text/template"
)

// Template names. Each has <name>.txt (blocks "subject" and "text") and
// <name>.html under templates/.
const (
	TemplateVerifyEmail        = "verify_email"
	TemplatePasswordReset      = "password_reset"
	TemplatePurchaseReceipt    = "purchase_receipt"
	TemplateRefundConfirmation = "refund_confirmation"
	// TemplateChargeback tells a seller a lost dispute takes back their
	// share of an order.
	TemplateChargeback = "chargeback"
	// TemplatePayoutAccountChanged tells a seller where their payouts now go.
	TemplatePayoutAccountChanged = "payout_account_changed"
)

//go:embed templates
var templateFS embed.FS

var (
	textTemplates = map[string]*texttemplate.Template{}
	htmlTemplates = map[string]*htmltemplate.Template{}
)

func init() {
	for _, name := range []string{TemplateVerifyEmail, TemplatePasswordReset, TemplatePurchaseReceipt, TemplateRefundConfirmation, TemplateChargeback, TemplatePayoutAccountChanged} {
		textTemplates[name] = texttemplate.Must(texttemplate.New(name).Option("missingkey=error").ParseFS(templateFS, "templates/"+name+".txt"))
		htmlTemplates[name] = htmltemplate.Must(htmltemplate.New(name).Option("missingkey=error").ParseFS(templateFS, "templates/"+name+".html"))
	}
}

// Render builds the message for template name, addressed to to. data is a
// map or struct with the fields the template uses; a missing one is an error,
// never an email with a blank where the link should be.
func Render(name, to string, data any) (Message, error) {
	tt, ok := textTemplates[name]
	if !ok {
		return Message{}, fmt.Errorf("unknown email template %q", name)
	}
	var subject, text, html bytes.Buffer
	if err := tt.ExecuteTemplate(&subject, "subject", data); err != nil {
		return Message{}, fmt.Errorf("error rendering %s subject: %w", name, err)
	}
	if err := tt.ExecuteTemplate(&text, "text", data); err != nil {
		return Message{}, fmt.Errorf("error rendering %s text: %w", name, err)
	}
	if err := htmlTemplates[name].ExecuteTemplate(&html, name+".html", data); err != nil {
		return Message{}, fmt.Errorf("error rendering %s html: %w", name, err)
	}
	return Message{
		To:      to,
		Subject: strings.TrimSpace(subject.String()),
		Text:    strings.TrimSpace(text.String()) + "\n",
		HTML:    html.String(),
	}, nil
}
