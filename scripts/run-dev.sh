#!/usr/bin/env bash
# `make run`: a working service on a fresh machine. Reads .env when present,
# starts the local PostgreSQL under ./.data when DATABASE_URL is unset,
# creates development River UI credentials once, migrates and serves.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -f .env ]; then set -a; . ./.env; set +a; fi
mkdir -p .data bin

if [ -z "${DATABASE_URL:-}" ]; then
  DATABASE_URL=$(scripts/pg-local.sh start)
  export DATABASE_URL
fi

export HTTP_ADDR="${HTTP_ADDR:-:8080}"

if [ -z "${RIVER_UI_USERNAME:-}" ] && [ -z "${RIVER_UI_PASSWORD:-}" ]; then
  # Development credentials, made once and kept in .data/ (git-ignored).
  creds=.data/riverui-dev-credentials
  if [ ! -f "$creds" ]; then
    (umask 077; printf 'RIVER_UI_USERNAME=admin\nRIVER_UI_PASSWORD=%s\n' "$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')" >"$creds")
  fi
  set -a; . "./$creds"; set +a
  echo "River UI (development): http://localhost:${HTTP_ADDR##*:}/riverui/  user: $RIVER_UI_USERNAME  password: $RIVER_UI_PASSWORD  (from $creds)" >&2
fi

go build -o bin/app ./cmd/app
bin/app migrate up
# exec: Ctrl-C goes straight to the service, which shuts down gracefully;
# the database and its data stay in .data for next time.
exec bin/app serve
