package http

import (
	"fmt"
	"html"

	"github.com/gofiber/fiber/v2"

	"github.com/veza/backend"
	"github.com/veza/backend/store"
)

// Development only (ServerOpts.DevPages): the pages an email's link leads
// to while PUBLIC_BASE_URL is the API itself, as it is by default, with no
// frontend yet. Each is a form that posts the token back (no script: the
// link alone must not act, as a mail scanner opens links too), answered by
// the same code as POST /v1/auth/verify and /v1/auth/password-reset/confirm.

const devPage = `<!doctype html><html><head><meta charset="utf-8"><title>Veza (development): %s</title></head>
<body style="font-family:sans-serif;max-width:36em;margin:3em auto">
<h1>%s</h1>%s
<p style="color:#666">Development page of the API: a frontend makes this call itself (%s).</p></body></html>`

func (s *Server) page(c *fiber.Ctx, status int, title, body, call string) error {
	c.Set(fiber.HeaderContentType, fiber.MIMETextHTMLCharsetUTF8)
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.Status(status).SendString(fmt.Sprintf(devPage, html.EscapeString(title), html.EscapeString(title), body, html.EscapeString(call)))
}

// The same limits as the API calls they make: none on a GET (it changes
// nothing), /v1's on a verification, the auth limit on a new password.
func (s *Server) devPages(general, strict fiber.Handler) {
	r := s.app
	r.Get("/verify-email", func(c *fiber.Ctx) error {
		form := fmt.Sprintf(`<form method="post" action="/verify-email"><input type="hidden" name="token" value="%s">`+
			`<button type="submit">Verify my email address</button></form>`, html.EscapeString(c.Query("token")))
		return s.page(c, 200, "Verify your email", form, `POST /v1/auth/verify {"token"}`)
	})
	r.Post("/verify-email", general, func(c *fiber.Ctx) error {
		req := tokenRequest{Token: c.FormValue("token")}
		var user *store.User
		err := req.Validate()
		if err == nil {
			user, err = s.verifyEmail(c.UserContext(), req.Token)
		}
		if err != nil {
			return s.pageError(c, err, `POST /v1/auth/verify {"token"}`)
		}
		return s.page(c, 200, "Email verified", "<p>"+html.EscapeString(user.Email)+" is verified. You can close this page.</p>", `POST /v1/auth/verify {"token"}`)
	})
	r.Get("/reset-password", func(c *fiber.Ctx) error {
		form := fmt.Sprintf(`<form method="post" action="/reset-password"><input type="hidden" name="token" value="%s">`+
			`<label>New password (8 characters or more) <input type="password" name="password" minlength="8" required></label> `+
			`<button type="submit">Set my password</button></form>`, html.EscapeString(c.Query("token")))
		return s.page(c, 200, "Choose a new password", form, `POST /v1/auth/password-reset/confirm {"token","password"}`)
	})
	r.Post("/reset-password", strict, func(c *fiber.Ctx) error {
		req := resetConfirmRequest{Token: c.FormValue("token"), Password: c.FormValue("password")}
		err := req.Validate()
		if err == nil {
			err = s.resetPassword(c, req.Token, req.Password)
		}
		if err != nil {
			return s.pageError(c, err, `POST /v1/auth/password-reset/confirm {"token","password"}`)
		}
		return s.page(c, 200, "Password changed", "<p>Log in with the new password; every other session was ended.</p>", `POST /v1/auth/password-reset/confirm {"token","password"}`)
	})
}

// pageError shows an API error (an invalid token, a short password) as a
// page with the API's status; anything else goes to the error handler.
func (s *Server) pageError(c *fiber.Ctx, err error, call string) error {
	ve := veza.AsError(err)
	if ve == nil || kindStatus[ve.Kind] >= 500 || ve.Kind == veza.KindInternal {
		return err
	}
	return s.page(c, kindStatus[ve.Kind], "That did not work", "<p>"+html.EscapeString(ve.Message)+" ("+html.EscapeString(ve.Code)+")</p>", call)
}
