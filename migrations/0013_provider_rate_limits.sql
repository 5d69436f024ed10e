-- +goose Up
-- One token bucket per provider, shared by every process on the database
-- (package ratelimit): tokens refill at the configured rate up to the
-- burst; blocked_until is set from a provider's 429 Retry-After.
CREATE TABLE provider_rate_limits (
    provider      TEXT PRIMARY KEY,
    tokens        DOUBLE PRECISION NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
    blocked_until TIMESTAMPTZ NOT NULL DEFAULT '-infinity'
);

-- +goose Down
DROP TABLE provider_rate_limits;
