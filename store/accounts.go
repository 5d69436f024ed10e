package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	veza "github.com/veza/backend"
)

// Roles.
const (
	RoleUser   = "user"
	RoleSeller = "seller"
	RoleAdmin  = "admin"
)

// Email token purposes.
const (
	PurposeVerifyEmail   = "verify_email"
	PurposePasswordReset = "password_reset"
)

// User is an account. PasswordHash never leaves the server.
type User struct {
	ID              uuid.UUID
	Email           string
	PasswordHash    string
	EmailVerified   bool
	Role            string
	StripeAccountID *string
	// PayoutsEnabled is Stripe's word on the account (account.updated);
	// nil until Stripe reported it.
	PayoutsEnabled *bool
	CreatedAt      time.Time
}

// ErrNotFound is returned when a row does not exist.
var ErrNotFound = errors.New("not found")

const userColumns = `id, email, password_hash, email_verified_at IS NOT NULL, role, stripe_account_id, payouts_enabled, created_at`

func scanUser(row pgx.Row) (*User, error) {
	var u User
	return one(&u, row.Scan(&u.ID, &u.Email, &u.PasswordHash, &u.EmailVerified, &u.Role, &u.StripeAccountID, &u.PayoutsEnabled, &u.CreatedAt))
}

// CreateUser inserts a user. A taken email is a KindConflict "email_taken".
func CreateUser(ctx context.Context, tx pgx.Tx, email, passwordHash, role string) (*User, error) {
	u, err := scanUser(tx.QueryRow(ctx,
		`INSERT INTO users (email, password_hash, role) VALUES ($1, $2, $3) RETURNING `+userColumns,
		email, passwordHash, role))
	if IsUniqueViolation(err, "users_email_key") {
		return nil, veza.Errorf(veza.KindConflict, "email_taken", "an account with this email already exists")
	}
	if err != nil {
		return nil, fmt.Errorf("error inserting user: %w", err)
	}
	return u, nil
}

// GetUser reads a user by id; ErrNotFound when absent.
func GetUser(ctx context.Context, q Querier, id uuid.UUID) (*User, error) {
	return scanUser(q.QueryRow(ctx, `SELECT `+userColumns+` FROM users WHERE id = $1`, id))
}

// GetUserByEmail reads a user by (normalised) email; ErrNotFound when absent.
func GetUserByEmail(ctx context.Context, q Querier, email string) (*User, error) {
	return scanUser(q.QueryRow(ctx, `SELECT `+userColumns+` FROM users WHERE email = $1`, email))
}

// MarkEmailVerified sets email_verified_at once.
func MarkEmailVerified(ctx context.Context, tx pgx.Tx, userID uuid.UUID) error {
	_, err := tx.Exec(ctx, `UPDATE users SET email_verified_at = COALESCE(email_verified_at, now()), updated_at = now() WHERE id = $1`, userID)
	return err
}

// SetPassword replaces a user's password hash.
func SetPassword(ctx context.Context, tx pgx.Tx, userID uuid.UUID, passwordHash string) error {
	_, err := tx.Exec(ctx, `UPDATE users SET password_hash = $2, updated_at = now() WHERE id = $1`, userID, passwordHash)
	return err
}

// SetPayoutAccount records the user's Stripe Connect account and makes a
// plain user a seller (an admin stays admin).
func SetPayoutAccount(ctx context.Context, q Querier, userID uuid.UUID, accountID string) (*User, error) {
	return scanUser(q.QueryRow(ctx, `UPDATE users SET stripe_account_id = $2::text,
		payouts_enabled = CASE WHEN stripe_account_id IS DISTINCT FROM $2::text THEN NULL ELSE payouts_enabled END,
		role = CASE WHEN role = 'user' THEN 'seller' ELSE role END, updated_at = now()
		WHERE id = $1 RETURNING `+userColumns, userID, accountID))
}

// SetOnboardingAccount gives a user without a payout account the account
// onboarding created for them (payouts not enabled until Stripe says so)
// and makes them a seller. It returns the user as stored: their existing
// account if another request set one first.
func SetOnboardingAccount(ctx context.Context, tx pgx.Tx, userID uuid.UUID, accountID string) (u *User, set bool, err error) {
	u, err = scanUser(tx.QueryRow(ctx, `UPDATE users SET stripe_account_id = $2, payouts_enabled = false,
		role = CASE WHEN role = 'user' THEN 'seller' ELSE role END, updated_at = now()
		WHERE id = $1 AND stripe_account_id IS NULL RETURNING `+userColumns, userID, accountID))
	if err == ErrNotFound {
		u, err = scanUser(tx.QueryRow(ctx, `SELECT `+userColumns+` FROM users WHERE id = $1`, userID))
		return u, false, err
	}
	return u, err == nil, err
}

// UpsertAdmin creates an admin, or promotes an existing user (keeping their
// password: promotion must not reset someone's credentials). created says
// which happened.
func UpsertAdmin(ctx context.Context, tx pgx.Tx, email, passwordHash string) (u *User, created bool, err error) {
	u, err = GetUserByEmail(ctx, tx, email)
	switch {
	case errors.Is(err, ErrNotFound):
		u, err = CreateUser(ctx, tx, email, passwordHash, RoleAdmin)
		if err != nil {
			return nil, false, err
		}
		_, err = tx.Exec(ctx, `UPDATE users SET email_verified_at = now() WHERE id = $1`, u.ID)
		return u, true, err
	case err != nil:
		return nil, false, err
	}
	u, err = scanUser(tx.QueryRow(ctx, `UPDATE users SET role = 'admin', updated_at = now() WHERE id = $1 RETURNING `+userColumns, u.ID))
	return u, false, err
}

// CreateSession stores a session by its token hash.
func CreateSession(ctx context.Context, q Querier, userID uuid.UUID, tokenHash []byte, ttl time.Duration) error {
	_, err := q.Exec(ctx, `INSERT INTO sessions (user_id, token_hash, expires_at) VALUES ($1, $2, now() + make_interval(secs => $3))`,
		userID, tokenHash, ttl.Seconds())
	return err
}

// GetSessionUser returns the user of a live (unrevoked, unexpired) session.
func GetSessionUser(ctx context.Context, q Querier, tokenHash []byte) (*User, error) {
	return scanUser(q.QueryRow(ctx, `SELECT u.id, u.email, u.password_hash, u.email_verified_at IS NOT NULL, u.role, u.stripe_account_id, u.payouts_enabled, u.created_at
		FROM sessions s JOIN users u ON u.id = s.user_id
		WHERE s.token_hash = $1 AND s.revoked_at IS NULL AND s.expires_at > now()`, tokenHash))
}

// RevokeSession ends one session.
func RevokeSession(ctx context.Context, q Querier, tokenHash []byte) error {
	_, err := q.Exec(ctx, `UPDATE sessions SET revoked_at = now() WHERE token_hash = $1 AND revoked_at IS NULL`, tokenHash)
	return err
}

// Session is a live session as its owner sees it (never its token).
type Session struct {
	ID        uuid.UUID `json:"id"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
	Current   bool      `json:"current"`
}

// UserSessions returns a user's live sessions, newest first; current marks
// the one whose token hash is given.
func UserSessions(ctx context.Context, q Querier, userID uuid.UUID, current []byte) ([]Session, error) {
	rows, err := q.Query(ctx, `SELECT id, created_at, expires_at, token_hash = $2 FROM sessions
		WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > now() ORDER BY created_at DESC, id LIMIT 1000`, userID, current)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (Session, error) {
		var s Session
		err := row.Scan(&s.ID, &s.CreatedAt, &s.ExpiresAt, &s.Current)
		return s, err
	})
}

// RevokeUserSession ends one of a user's live sessions by id; false when
// it is not theirs, not live, or unknown.
func RevokeUserSession(ctx context.Context, q Querier, userID, sessionID uuid.UUID) (bool, error) {
	tag, err := q.Exec(ctx, `UPDATE sessions SET revoked_at = now() WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL AND expires_at > now()`,
		sessionID, userID)
	return tag.RowsAffected() == 1, err
}

// RevokeUserSessions ends every session of a user (after a password reset).
func RevokeUserSessions(ctx context.Context, tx pgx.Tx, userID uuid.UUID) (int64, error) {
	tag, err := tx.Exec(ctx, `UPDATE sessions SET revoked_at = now() WHERE user_id = $1 AND revoked_at IS NULL`, userID)
	return tag.RowsAffected(), err
}

// CreateEmailToken creates a one-time token row without a hash: the email
// job mints the secret when it sends, so job args never carry it.
func CreateEmailToken(ctx context.Context, tx pgx.Tx, userID uuid.UUID, purpose string, ttl time.Duration) (uuid.UUID, error) {
	var id uuid.UUID
	err := tx.QueryRow(ctx, `INSERT INTO email_tokens (user_id, purpose, expires_at) VALUES ($1, $2, now() + make_interval(secs => $3)) RETURNING id`,
		userID, purpose, ttl.Seconds()).Scan(&id)
	return id, err
}

// EmailToken is what the email job needs of a token row.
type EmailToken struct {
	ID        uuid.UUID
	UserID    uuid.UUID
	Purpose   string
	ExpiresAt time.Time
}

// MintEmailToken stores tokenHash on a still-usable token row of that
// purpose. It returns ErrNotFound when the row is used, expired, gone or of
// another purpose: nothing to send.
func MintEmailToken(ctx context.Context, q Querier, tokenID uuid.UUID, purpose string, tokenHash []byte) (*EmailToken, error) {
	var t EmailToken
	err := q.QueryRow(ctx, `UPDATE email_tokens SET token_hash = $3
		WHERE id = $1 AND purpose = $2 AND used_at IS NULL AND expires_at > now()
		RETURNING id, user_id, purpose, expires_at`, tokenID, purpose, tokenHash).Scan(&t.ID, &t.UserID, &t.Purpose, &t.ExpiresAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrNotFound
	}
	return &t, err
}

// ConsumeEmailToken marks a live token of the given purpose used and returns
// its user. Unknown, used and expired tokens are one answer: ErrNotFound.
// The single guarded UPDATE makes two concurrent uses impossible.
func ConsumeEmailToken(ctx context.Context, tx pgx.Tx, tokenHash []byte, purpose string) (uuid.UUID, error) {
	var userID uuid.UUID
	err := tx.QueryRow(ctx, `UPDATE email_tokens SET used_at = now()
		WHERE token_hash = $1 AND purpose = $2 AND used_at IS NULL AND expires_at > now()
		RETURNING user_id`, tokenHash, purpose).Scan(&userID)
	if errors.Is(err, pgx.ErrNoRows) {
		return uuid.Nil, ErrNotFound
	}
	return userID, err
}

// InvalidateEmailTokens marks every open token of that purpose used (a new
// reset request supersedes older links; a reset revokes the others).
func InvalidateEmailTokens(ctx context.Context, tx pgx.Tx, userID uuid.UUID, purpose string) error {
	_, err := tx.Exec(ctx, `UPDATE email_tokens SET used_at = now() WHERE user_id = $1 AND purpose = $2 AND used_at IS NULL`, userID, purpose)
	return err
}
