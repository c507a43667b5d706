#!/usr/bin/env bash
# Start (or stop) a private PostgreSQL in /tmp for the test suite; prints `export TEST_DATABASE_URL=...`.
set -euo pipefail
dir=/tmp/jianfei-pg
port=${THROWAWAY_PG_PORT:-55432}
if [ "${1:-}" = stop ]; then
  bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
  [ -n "$bin" ] && [ -d "$dir" ] && su postgres -c "$bin/pg_ctl -D $dir/data stop -m fast" >/dev/null 2>&1 || true
  exit 0
fi
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
if [ -z "$bin" ]; then
  echo "installing PostgreSQL with apt-get" >&2
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null) >&2
  bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
fi
run() { if [ "$(id -u)" = 0 ]; then su postgres -c "$*"; else sh -c "$*"; fi; }
mkdir -p "$dir"
[ "$(id -u)" = 0 ] && chown postgres "$dir"
if [ ! -f "$dir/data/PG_VERSION" ]; then
  run "$bin/initdb -D $dir/data -A trust -U postgres" >&2
fi
run "$bin/pg_ctl -D $dir/data -l $dir/log -o '-p $port -k /tmp -c fsync=off -c max_connections=200' -w start" >&2 || true
echo "export TEST_DATABASE_URL=postgresql://postgres@127.0.0.1:$port/postgres"
