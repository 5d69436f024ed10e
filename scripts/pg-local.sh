#!/usr/bin/env bash
# Starts (or reuses) the local development PostgreSQL cluster under ./.data/pg
# on 127.0.0.1:${VEZA_DEV_PG_PORT:-55432} and makes sure database veza_dev
# exists. Usage: scripts/pg-local.sh start|stop|status
set -euo pipefail
cd "$(dirname "$0")/.."

PORT="${VEZA_DEV_PG_PORT:-55432}"
ROOT="$(pwd)/.data"
PGDATA="$ROOT/pg"
SOCK="$ROOT/pg-run"

find_bin() {
  if command -v "$1" >/dev/null 2>&1; then command -v "$1"; return; fi
  local found
  found=$(ls -d /usr/lib/postgresql/*/bin/"$1" 2>/dev/null | sort -V | tail -n 1 || true)
  if [ -n "$found" ]; then echo "$found"; return; fi
  echo "error: $1 not found: install PostgreSQL (apt-get install postgresql) or set DATABASE_URL" >&2
  exit 1
}
INITDB=$(find_bin initdb)
PG_CTL=$(find_bin pg_ctl)
PSQL=$(find_bin psql)

# initdb refuses to run as root: run the cluster as the postgres user then.
AS=()
if [ "$(id -u)" = 0 ]; then
  AS=(runuser -u postgres --)
fi

case "${1:-start}" in
start)
  mkdir -p "$PGDATA" "$SOCK"
  if [ "$(id -u)" = 0 ]; then chown postgres "$ROOT" "$PGDATA" "$SOCK"; chmod 700 "$PGDATA"; fi
  if [ ! -f "$PGDATA/PG_VERSION" ]; then
    echo "creating a local PostgreSQL cluster in .data/pg" >&2
    "${AS[@]}" "$INITDB" -D "$PGDATA" -A trust -U postgres -E UTF8 --no-locale >/dev/null
  fi
  if ! "${AS[@]}" "$PG_CTL" -D "$PGDATA" status >/dev/null 2>&1; then
    "${AS[@]}" "$PG_CTL" -D "$PGDATA" -l "$PGDATA/server.log" -w -t 60 \
      -o "-p $PORT -c listen_addresses=127.0.0.1 -k $SOCK -c max_connections=200" start >/dev/null
    echo "local PostgreSQL started on 127.0.0.1:$PORT (stop it with: make db-stop)" >&2
  fi
  if ! "$PSQL" -h 127.0.0.1 -p "$PORT" -U postgres -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'veza_dev'" | grep -q 1; then
    "$PSQL" -h 127.0.0.1 -p "$PORT" -U postgres -d postgres -qc "CREATE DATABASE veza_dev" >/dev/null
  fi
  echo "postgres://postgres@127.0.0.1:$PORT/veza_dev?sslmode=disable"
  ;;
stop)
  if [ -f "$PGDATA/PG_VERSION" ]; then "${AS[@]}" "$PG_CTL" -D "$PGDATA" -m fast -w stop || true; fi
  ;;
status)
  "${AS[@]}" "$PG_CTL" -D "$PGDATA" status
  ;;
*)
  echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
