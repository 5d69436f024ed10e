#!/usr/bin/env bash
# Starts (or reuses) the local development PostgreSQL cluster under ./.data/pg
# on 127.0.0.1:${VEZA_DEV_PG_PORT:-55432} and makes sure database veza_dev
# exists. Usage: scripts/pg-local.sh start|stop|status
# VEZA_DEV_PG_PORT picks another port; VEZA_DEV_DATA_DIR another data
# directory (default ./.data, tests use a temporary one).
set -euo pipefail
cd "$(dirname "$0")/.."

PORT="${VEZA_DEV_PG_PORT:-55432}"
ROOT="${VEZA_DEV_DATA_DIR:-$(pwd)/.data}"
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

# port_taken: something already answers on 127.0.0.1:$PORT.
port_taken() { (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; }

case "${1:-start}" in
start)
  if ! { [ -f "$PGDATA/PG_VERSION" ] && "${AS[@]}" "$PG_CTL" -D "$PGDATA" status >/dev/null 2>&1; } && port_taken; then
    echo "error: port $PORT on 127.0.0.1 is taken by another program, so the local PostgreSQL ($PGDATA, log $PGDATA/server.log) cannot start there." >&2
    echo "       Pick another port: VEZA_DEV_PG_PORT=$((PORT + 1)) make run   (or set DATABASE_URL to a PostgreSQL of your own)" >&2
    exit 1
  fi
  mkdir -p "$PGDATA" "$SOCK"
  if [ "$(id -u)" = 0 ]; then chown postgres "$ROOT" "$PGDATA" "$SOCK"; chmod 700 "$PGDATA"; fi
  if [ ! -f "$PGDATA/PG_VERSION" ]; then
    echo "creating a local PostgreSQL cluster in .data/pg" >&2
    "${AS[@]}" "$INITDB" -D "$PGDATA" -A trust -U postgres -E UTF8 --no-locale >/dev/null
  fi
  if ! "${AS[@]}" "$PG_CTL" -D "$PGDATA" status >/dev/null 2>&1; then
    if ! "${AS[@]}" "$PG_CTL" -D "$PGDATA" -l "$PGDATA/server.log" -w -t 60 \
      -o "-p $PORT -c listen_addresses=127.0.0.1 -k $SOCK -c max_connections=200" start >/dev/null; then
      echo "error: the local PostgreSQL did not start on 127.0.0.1:$PORT; its log is $PGDATA/server.log, last lines:" >&2
      tail -n 15 "$PGDATA/server.log" >&2 || true
      echo "       Another port: VEZA_DEV_PG_PORT=$((PORT + 1)) make run   (or set DATABASE_URL)" >&2
      exit 1
    fi
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
