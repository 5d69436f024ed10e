package http

import (
	"context"
	"errors"
	"net/mail"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/veza/backend"
	"github.com/veza/backend/auth"
	"github.com/veza/backend/jobargs"
	vezamail "github.com/veza/backend/mail"
	"github.com/veza/backend/store"
	"github.com/veza/backend/stripeconnect"
)

// Lifetimes of the secrets this file hands out.
const (
	sessionTTL       = 30 * 24 * time.Hour
	verifyTokenTTL   = 48 * time.Hour
	resetTokenTTL    = time.Hour
	minPasswordRunes = 8
	maxPasswordBytes = 1024 // argon2 hashes any length; cap the work per request
)

const localUser = "user"

// userJSON is the public view of a user.
type userJSON struct {
	ID              uuid.UUID `json:"id"`
	Email           string    `json:"email"`
	EmailVerified   bool      `json:"email_verified"`
	Role            string    `json:"role"`
	StripeAccountID *string   `json:"stripe_account_id"`
	PayoutsEnabled  bool      `json:"payouts_enabled"`
}

func toUserJSON(u *store.User) userJSON {
	return userJSON{ID: u.ID, Email: u.Email, EmailVerified: u.EmailVerified, Role: u.Role, StripeAccountID: u.StripeAccountID,
		PayoutsEnabled: u.PayoutsEnabled != nil && *u.PayoutsEnabled}
}

// normalizeEmail trims and lowercases; validEmail accepts a bare address.
func normalizeEmail(s string) string { return strings.ToLower(strings.TrimSpace(s)) }

func validEmail(email string) bool {
	if email == "" || len(email) > 254 {
		return false
	}
	addr, err := mail.ParseAddress(email)
	return err == nil && addr.Address == email && addr.Name == "" && strings.Contains(email[strings.LastIndex(email, "@")+1:], ".")
}

func validatePassword(field, pw string) error {
	switch {
	case len(pw) > maxPasswordBytes:
		return unprocessable(field, "must be at most %d bytes", maxPasswordBytes)
	case !utf8.ValidString(pw):
		return unprocessable(field, "must be valid UTF-8")
	case utf8.RuneCountInString(pw) < minPasswordRunes:
		return unprocessable(field, "must be at least %d characters", minPasswordRunes)
	}
	return nil
}

type credentialsRequest struct {
	Email    string `json:"email"`
	Password string `json:"password"`
}

func (r *credentialsRequest) Validate() error {
	r.Email = normalizeEmail(r.Email)
	if !validEmail(r.Email) {
		return unprocessable("email", "is not a valid email address")
	}
	return validatePassword("password", r.Password)
}

// enqueueLinkEmail creates a one-time token row (no secret yet) and the
// email job that mints it and mails the link, in the caller's transaction.
func (s *Server) enqueueLinkEmail(ctx context.Context, tx pgx.Tx, userID uuid.UUID, purpose string, ttl time.Duration, template string) error {
	tokenID, err := store.CreateEmailToken(ctx, tx, userID, purpose, ttl)
	if err != nil {
		return err
	}
	_, err = s.opts.Inserter.InsertTx(ctx, tx, jobargs.EmailArgs{Template: template, UserID: userID, TokenID: &tokenID}, nil)
	return err
}

// handleRegister creates the user, the verification token row and the
// email job in one transaction.
func (s *Server) handleRegister() fiber.Handler {
	return func(c *fiber.Ctx) error {
		var req credentialsRequest
		if err := decodeJSON(c, &req); err != nil {
			return err
		}
		hash, err := s.hashPassword(c, req.Password)
		if err != nil {
			return err
		}
		ctx := c.UserContext()
		var user *store.User
		err = s.opts.DB.InTx(ctx, func(tx pgx.Tx) error {
			user, err = store.CreateUser(ctx, tx, req.Email, hash, store.RoleUser)
			if err != nil {
				return err
			}
			return s.enqueueLinkEmail(ctx, tx, user.ID, store.PurposeVerifyEmail, verifyTokenTTL, vezamail.TemplateVerifyEmail)
		})
		if err != nil {
			return err
		}
		return c.Status(fiber.StatusCreated).JSON(fiber.Map{"user": fiber.Map{
			"id": user.ID, "email": user.Email, "email_verified": user.EmailVerified,
		}})
	}
}

type tokenRequest struct {
	Token string `json:"token"`
}

func (r *tokenRequest) Validate() error {
	if r.Token == "" || len(r.Token) > 256 {
		return errInvalidToken
	}
	return nil
}

var errInvalidToken = veza.Errorf(veza.KindInvalid, "invalid_token", "the token is unknown, already used or expired")

// handleVerify consumes a verification token once.
func (s *Server) handleVerify() fiber.Handler {
	return func(c *fiber.Ctx) error {
		var req tokenRequest
		if err := decodeJSON(c, &req); err != nil {
			return err
		}
		user, err := s.verifyEmail(c.UserContext(), req.Token)
		if err != nil {
			return err
		}
		return c.JSON(fiber.Map{"user": toUserJSON(user)})
	}
}

// verifyEmail consumes a verification token and marks its user verified.
func (s *Server) verifyEmail(ctx context.Context, token string) (*store.User, error) {
	var user *store.User
	err := s.opts.DB.InTx(ctx, func(tx pgx.Tx) error {
		userID, err := store.ConsumeEmailToken(ctx, tx, auth.HashToken(token), store.PurposeVerifyEmail)
		if errors.Is(err, store.ErrNotFound) {
			return errInvalidToken
		}
		if err != nil {
			return err
		}
		if err := store.MarkEmailVerified(ctx, tx, userID); err != nil {
			return err
		}
		user, err = store.GetUser(ctx, tx, userID)
		return err
	})
	return user, err
}

var errInvalidCredentials = veza.Errorf(veza.KindUnauthorized, "invalid_credentials", "email or password is wrong")

// handleLogin answers the same way, in about the same time, for an unknown
// email and a wrong password.
func (s *Server) handleLogin() fiber.Handler {
	return func(c *fiber.Ctx) error {
		var req credentialsRequest
		if err := decodeJSON(c, &req); err != nil {
			if veza.IsKind(err, veza.KindUnprocessable) {
				return errInvalidCredentials // a short password cannot be right
			}
			return err
		}
		ctx := c.UserContext()
		user, err := store.GetUserByEmail(ctx, s.opts.DB.Primary(), req.Email)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		if user == nil {
			if err := s.checkUnknownUser(c, req.Password); err != nil {
				return err
			}
			return errInvalidCredentials
		}
		ok, err := s.checkPassword(c, user.PasswordHash, req.Password)
		if err != nil {
			return err
		}
		if !ok {
			return errInvalidCredentials
		}
		token, hash, err := auth.NewToken()
		if err != nil {
			return err
		}
		if err := store.CreateSession(ctx, s.opts.DB.Primary(), user.ID, hash, sessionTTL); err != nil {
			return err
		}
		return c.JSON(fiber.Map{"token": token, "user": toUserJSON(user)})
	}
}

// handleLogout revokes the session that made the request.
func (s *Server) handleLogout() fiber.Handler {
	return func(c *fiber.Ctx) error {
		token, _ := bearerToken(c)
		if err := store.RevokeSession(c.UserContext(), s.opts.DB.Primary(), auth.HashToken(token)); err != nil {
			return err
		}
		return c.SendStatus(fiber.StatusNoContent)
	}
}

type resetRequest struct {
	Email string `json:"email"`
}

func (r *resetRequest) Validate() error {
	r.Email = normalizeEmail(r.Email)
	if !validEmail(r.Email) {
		return unprocessable("email", "is not a valid email address")
	}
	return nil
}

// handlePasswordReset always answers 202 after the same floor of time, so
// neither the answer nor its timing tells whether the account exists.
func (s *Server) handlePasswordReset() fiber.Handler {
	return func(c *fiber.Ctx) error {
		var req resetRequest
		if err := decodeJSON(c, &req); err != nil {
			return err
		}
		deadline := time.Now().Add(s.opts.ResetResponseFloor)
		ctx := c.UserContext()
		err := s.opts.DB.InTx(ctx, func(tx pgx.Tx) error {
			user, err := store.GetUserByEmail(ctx, tx, req.Email)
			if errors.Is(err, store.ErrNotFound) {
				return nil
			}
			if err != nil {
				return err
			}
			// A new request supersedes older links.
			if err := store.InvalidateEmailTokens(ctx, tx, user.ID, store.PurposePasswordReset); err != nil {
				return err
			}
			return s.enqueueLinkEmail(ctx, tx, user.ID, store.PurposePasswordReset, resetTokenTTL, vezamail.TemplatePasswordReset)
		})
		if err != nil {
			return err
		}
		time.Sleep(time.Until(deadline))
		return c.Status(fiber.StatusAccepted).JSON(fiber.Map{"status": "accepted"})
	}
}

type resetConfirmRequest struct {
	Token    string `json:"token"`
	Password string `json:"password"`
}

func (r *resetConfirmRequest) Validate() error {
	if r.Token == "" || len(r.Token) > 256 {
		return errInvalidToken
	}
	return validatePassword("password", r.Password)
}

// handlePasswordResetConfirm sets the new password, revokes every session
// and every other open reset link of the user, in one transaction.
func (s *Server) handlePasswordResetConfirm() fiber.Handler {
	return func(c *fiber.Ctx) error {
		var req resetConfirmRequest
		if err := decodeJSON(c, &req); err != nil {
			return err
		}
		if err := s.resetPassword(c, req.Token, req.Password); err != nil {
			return err
		}
		return c.JSON(fiber.Map{"status": "password_changed"})
	}
}

// resetPassword consumes a reset token and sets the new password, ending
// every session.
func (s *Server) resetPassword(c *fiber.Ctx, token, password string) error {
	hash, err := s.hashPassword(c, password)
	if err != nil {
		return err
	}
	ctx := c.UserContext()
	return s.opts.DB.InTx(ctx, func(tx pgx.Tx) error {
		userID, err := store.ConsumeEmailToken(ctx, tx, auth.HashToken(token), store.PurposePasswordReset)
		if errors.Is(err, store.ErrNotFound) {
			return errInvalidToken
		}
		if err != nil {
			return err
		}
		if err := store.SetPassword(ctx, tx, userID, hash); err != nil {
			return err
		}
		if _, err := store.RevokeUserSessions(ctx, tx, userID); err != nil {
			return err
		}
		if err := store.InvalidateEmailTokens(ctx, tx, userID, store.PurposePasswordReset); err != nil {
			return err
		}
		// The link arrived by email: the address is proven.
		return store.MarkEmailVerified(ctx, tx, userID)
	})
}

// handleMe returns the caller.
func (s *Server) handleMe() fiber.Handler {
	return func(c *fiber.Ctx) error {
		return c.JSON(toUserJSON(currentUser(c)))
	}
}

var stripeAccountRE = regexp.MustCompile(`^acct_[A-Za-z0-9]{1,64}$`)

type payoutAccountRequest struct {
	StripeAccountID string `json:"stripe_account_id"`
	CurrentPassword string `json:"current_password"`
}

func (r *payoutAccountRequest) Validate() error {
	r.StripeAccountID = strings.TrimSpace(r.StripeAccountID)
	if !stripeAccountRE.MatchString(r.StripeAccountID) {
		return unprocessable("stripe_account_id", "must be a Stripe Connect account id (acct_...)")
	}
	if r.CurrentPassword == "" || len(r.CurrentPassword) > 1024 {
		return unprocessable("current_password", "the account's password is required to change where payouts go")
	}
	return nil
}

// handleSetPayoutAccount records the Stripe Connect account; the user
// becomes a seller.
func (s *Server) handleSetPayoutAccount() fiber.Handler {
	return func(c *fiber.Ctx) error {
		var req payoutAccountRequest
		if err := decodeJSON(c, &req); err != nil {
			return err
		}
		// Where the money goes: a session token alone (30 days, possibly
		// stolen) is not enough.
		ok, err := s.checkPassword(c, currentUser(c).PasswordHash, req.CurrentPassword)
		if errors.Is(err, errHashingBusy) {
			return err
		}
		if err != nil || !ok {
			return errInvalidCredentials // a malformed stored hash cannot be matched either
		}
		ctx := c.UserContext()
		var payoutsEnabled *bool // unknown without Stripe
		if s.opts.Stripe != nil {
			// Payouts can only go to an account connected to the platform.
			acct, err := s.opts.Stripe.GetAccount(ctx, req.StripeAccountID)
			if err == nil {
				payoutsEnabled = &acct.PayoutsEnabled
			}
			if errors.Is(err, stripeconnect.ErrAccountUnknown) {
				return unprocessable("stripe_account_id", "Stripe does not know this account, or it is not connected to the platform")
			}
			if err != nil {
				s.log.Warn().Ctx(c.UserContext()).Err(err).Msg("could not check a payout account at Stripe")
				return errStripeUnavailable
			}
		}
		var user *store.User
		err = s.opts.DB.InTx(ctx, func(tx pgx.Tx) error {
			if user, err = store.SetPayoutAccount(ctx, tx, currentUser(c).ID, req.StripeAccountID); err != nil {
				return err
			}
			if payoutsEnabled != nil {
				if _, err := store.SetPayoutsEnabled(ctx, tx, req.StripeAccountID, *payoutsEnabled); err != nil {
					return err
				}
				user.PayoutsEnabled = payoutsEnabled
			}
			// Payouts held because the old account could not receive
			// them go to this one (nothing was paid there).
			if err := s.opts.Settle.RepointAccountHeldPayouts(ctx, tx, s.opts.Inserter, user.ID, req.StripeAccountID); err != nil {
				return err
			}
			if payoutsEnabled != nil && *payoutsEnabled {
				if _, err := s.opts.Settle.ReleaseAccountPayouts(ctx, tx, s.opts.Inserter, req.StripeAccountID); err != nil {
					return err
				}
			}
			_, err = s.opts.Inserter.InsertTx(ctx, tx, jobargs.EmailArgs{Template: vezamail.TemplatePayoutAccountChanged, UserID: user.ID}, nil)
			return err
		})
		if err != nil {
			return err
		}
		return c.JSON(toUserJSON(user))
	}
}

// bearerToken reads "Authorization: Bearer <token>".
func bearerToken(c *fiber.Ctx) (string, bool) {
	h := c.Get(fiber.HeaderAuthorization)
	const prefix = "bearer "
	if len(h) <= len(prefix) || !strings.EqualFold(h[:len(prefix)], prefix) {
		return "", false
	}
	return strings.TrimSpace(h[len(prefix):]), true
}

var errUnauthenticated = veza.Errorf(veza.KindUnauthorized, "unauthorized", "a valid bearer token is required")

// requireAuth loads the session's user or answers 401.
func (s *Server) requireAuth(c *fiber.Ctx) error {
	token, ok := bearerToken(c)
	if !ok || len(token) > 256 {
		return errUnauthenticated
	}
	user, err := store.GetSessionUser(c.UserContext(), s.opts.DB.Primary(), auth.HashToken(token))
	if errors.Is(err, store.ErrNotFound) {
		return errUnauthenticated
	}
	if err != nil {
		return err
	}
	c.Locals(localUser, user)
	return c.Next()
}

// requireRole must follow requireAuth.
func requireRole(role string) fiber.Handler {
	return func(c *fiber.Ctx) error {
		if currentUser(c).Role != role {
			return veza.Errorf(veza.KindForbidden, "forbidden", "this needs the %s role", role)
		}
		return c.Next()
	}
}

func currentUser(c *fiber.Ctx) *store.User {
	u, _ := c.Locals(localUser).(*store.User)
	return u
}

// errHashingBusy: every argon2 slot is taken (each hash holds 19 MiB).
var errHashingBusy = veza.Errorf(veza.KindUnavailable, "busy", "too many password checks at once; retry in a second")

// hashSlotWait is how long a request waits for a free argon2 slot.
const hashSlotWait = 250 * time.Millisecond

// hashSlot takes one of MaxConcurrentHashes argon2 slots, waiting up to
// hashSlotWait, so a burst of logins cannot hold unbounded memory (19 MiB
// per hash); beyond it the answer is 503 with Retry-After. The caller calls
// release when its hash is done.
func (s *Server) hashSlot(c *fiber.Ctx) (release func(), err error) {
	timer := time.NewTimer(hashSlotWait)
	defer timer.Stop()
	select {
	case s.hashing <- struct{}{}:
		return func() { <-s.hashing }, nil
	case <-timer.C:
		c.Set(fiber.HeaderRetryAfter, "1")
		return nil, errHashingBusy
	}
}

var errStripeUnavailable = veza.Errorf(veza.KindUnavailable, "stripe_unavailable", "the payout account could not be checked at Stripe; retry shortly")

var errSessionNotFound = veza.Errorf(veza.KindNotFound, "not_found", "no such session")

// handleListSessions lists the caller's live sessions (a stolen token shows
// up here), marking the one making the request.
func (s *Server) handleListSessions() fiber.Handler {
	return func(c *fiber.Ctx) error {
		token, _ := bearerToken(c)
		sessions, err := store.UserSessions(c.UserContext(), s.opts.DB.Primary(), currentUser(c).ID, auth.HashToken(token))
		if err != nil {
			return err
		}
		if sessions == nil {
			sessions = []store.Session{}
		}
		return c.JSON(fiber.Map{"sessions": sessions})
	}
}

// handleRevokeSession ends one of the caller's sessions at once.
func (s *Server) handleRevokeSession() fiber.Handler {
	return func(c *fiber.Ctx) error {
		id, err := uuid.Parse(c.Params("id"))
		if err != nil {
			return errSessionNotFound
		}
		ok, err := store.RevokeUserSession(c.UserContext(), s.opts.DB.Primary(), currentUser(c).ID, id)
		if err != nil {
			return err
		}
		if !ok {
			return errSessionNotFound
		}
		return c.SendStatus(fiber.StatusNoContent)
	}
}

// hashPassword, checkPassword and checkUnknownUser run argon2 under a slot
// (hashSlot), released even if the hash panics.
func (s *Server) hashPassword(c *fiber.Ctx, password string) (string, error) {
	return underHashSlot(s, c, func() (string, error) { return auth.HashPassword(password) })
}

func (s *Server) checkPassword(c *fiber.Ctx, hash, password string) (bool, error) {
	return underHashSlot(s, c, func() (bool, error) { return auth.CheckPassword(hash, password) })
}

func (s *Server) checkUnknownUser(c *fiber.Ctx, password string) error {
	_, err := underHashSlot(s, c, func() (struct{}, error) { auth.CheckPasswordUnknownUser(password); return struct{}{}, nil })
	return err
}

func underHashSlot[T any](s *Server, c *fiber.Ctx, hash func() (T, error)) (T, error) {
	release, err := s.hashSlot(c)
	if err != nil {
		var zero T
		return zero, err
	}
	defer release()
	return hash()
}

var errPayoutsOff = veza.Errorf(veza.KindUnavailable, "payouts_unavailable", "Stripe Connect is not enabled (STRIPE_CONNECT_ENABLED)")

// handlePayoutOnboarding creates (once) the caller's connected account at
// Stripe (express: Stripe hosts onboarding) and an onboarding link; the
// seller finishes on Stripe, and account.updated says when payouts are
// enabled. A caller who has an account gets a new link for it: a session
// cannot replace an account (that is PUT, with the password).
func (s *Server) handlePayoutOnboarding() fiber.Handler {
	return func(c *fiber.Ctx) error {
		if s.opts.Stripe == nil {
			return errPayoutsOff
		}
		ctx := c.UserContext()
		user := currentUser(c)
		if user.StripeAccountID == nil {
			// The same key for the same user: a retry within Stripe's key
			// window cannot create a second account.
			id, err := s.opts.Stripe.CreateExpressAccount(ctx, user.ID.String(), "onboard:"+user.ID.String())
			if err != nil {
				s.log.Warn().Ctx(c.UserContext()).Err(err).Msg("could not create a connected account at Stripe")
				return errStripeUnavailable
			}
			err = s.opts.DB.InTx(ctx, func(tx pgx.Tx) error {
				stored, set, err := store.SetOnboardingAccount(ctx, tx, user.ID, id)
				if err != nil {
					return err
				}
				user = stored
				if !set {
					return nil
				}
				_, err = s.opts.Inserter.InsertTx(ctx, tx, jobargs.EmailArgs{Template: vezamail.TemplatePayoutAccountChanged, UserID: user.ID}, nil)
				return err
			})
			if err != nil {
				return err
			}
		}
		base := strings.TrimRight(s.opts.PublicBaseURL, "/")
		url, err := s.opts.Stripe.CreateOnboardingLink(ctx, *user.StripeAccountID, base+"/onboarding/refresh", base+"/onboarding/done")
		if err != nil {
			s.log.Warn().Ctx(c.UserContext()).Err(err).Msg("could not create an onboarding link at Stripe")
			return errStripeUnavailable
		}
		return c.JSON(fiber.Map{"stripe_account_id": *user.StripeAccountID, "url": url})
	}
}
