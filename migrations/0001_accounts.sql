-- +goose Up
-- Accounts: users, bearer sessions and one-time email tokens.
-- Every secret is stored as a SHA-256 hash; the raw value exists only in the
-- response (sessions) or in the email the worker sends (email tokens).

CREATE TABLE users (
    id                UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    email             TEXT NOT NULL,
    password_hash     TEXT NOT NULL,
    email_verified_at TIMESTAMPTZ NULL,
    role              VARCHAR(16) NOT NULL DEFAULT 'user' CHECK (role IN ('user', 'seller', 'admin')),
    stripe_account_id VARCHAR(255) NULL,
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT users_email_lower CHECK (email = lower(email))
);
CREATE UNIQUE INDEX users_email_key ON users (email);

CREATE TABLE sessions (
    id           UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id      UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash   BYTEA NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at   TIMESTAMPTZ NOT NULL,
    revoked_at   TIMESTAMPTZ NULL
);
CREATE UNIQUE INDEX sessions_token_hash_key ON sessions (token_hash);
CREATE INDEX sessions_user_id_idx ON sessions (user_id) WHERE revoked_at IS NULL;

-- A one-time token is created with the request (no hash yet) and minted by
-- the email job when it sends: the job's args carry only this row's id.
CREATE TABLE email_tokens (
    id         UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id    UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose    VARCHAR(32) NOT NULL CHECK (purpose IN ('verify_email', 'password_reset')),
    token_hash BYTEA NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at TIMESTAMPTZ NOT NULL,
    used_at    TIMESTAMPTZ NULL
);
CREATE UNIQUE INDEX email_tokens_token_hash_key ON email_tokens (token_hash) WHERE token_hash IS NOT NULL;
CREATE INDEX email_tokens_user_id_idx ON email_tokens (user_id, purpose) WHERE used_at IS NULL;

-- +goose Down
DROP TABLE email_tokens;
DROP TABLE sessions;
DROP TABLE users;
