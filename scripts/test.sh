#!/usr/bin/env bash
# The second README command: the whole suite, on PostgreSQL, in parallel.
# PostgreSQL: $TEST_DATABASE_URL, else the local server on 127.0.0.1:5432, else a throwaway
# server started here (initdb from the system's PostgreSQL, installed with apt when missing).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh

# The dashboard test drives Debian's Chromium through Playwright (no browser download); a CJK font
# makes its screenshot legible.
need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
[ -e /usr/share/fonts/truetype/wqy/wqy-microhei.ttc ] || need+=(fonts-wqy-microhei)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update && apt-get install -y "${need[@]}"
fi

if [ -z "${TEST_DATABASE_URL:-}" ]; then
  for candidate in "postgresql://postgres@127.0.0.1:5432/postgres" "postgresql://root@127.0.0.1:5432/test"; do
    if .venv/bin/python - "$candidate" <<'PY' 2>/dev/null
import sys, psycopg
psycopg.connect(sys.argv[1], connect_timeout=3).close()
PY
    then export TEST_DATABASE_URL="$candidate"; break; fi
  done
fi
if [ -z "${TEST_DATABASE_URL:-}" ]; then
  eval "$(scripts/throwaway-postgres.sh)"
  trap 'scripts/throwaway-postgres.sh stop' EXIT
fi
echo "PostgreSQL for tests: ${TEST_DATABASE_URL}"

workers=${TEST_WORKERS:-$(( $(nproc) + 1 ))}
.venv/bin/python -m pytest -n "$workers" --dist loadfile "$@"
