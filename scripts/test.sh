#!/usr/bin/env bash
# The second README command: the whole suite, in parallel, on PostgreSQL: $TEST_DATABASE_URL, else the
# local server at $TEST_LOCAL_PG (127.0.0.1:5432), else the embedded PostgreSQL (app.core.embedded) in a
# temporary folder for this run. Arguments go to pytest: `make test ARGS="tests/ops -n 2"`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh

# The dashboard and console tests drive Debian's Chromium through Playwright (no browser download); a
# CJK font makes their screenshots legible; npm rebuilds the console to compare it with the served bundle.
need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v npm >/dev/null 2>&1 || need+=(npm)
[ -e /usr/share/fonts/truetype/wqy/wqy-microhei.ttc ] || need+=(fonts-wqy-microhei)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update && apt-get install -y "${need[@]}"
fi

if [ -z "${TEST_DATABASE_URL:-}" ]; then
  local_pg=${TEST_LOCAL_PG:-127.0.0.1:5432}
  for candidate in "postgresql://postgres@$local_pg/postgres" "postgresql://root@$local_pg/test"; do
    if .venv/bin/python - "$candidate" <<'PY' 2>/dev/null
import sys, psycopg
psycopg.connect(sys.argv[1], connect_timeout=3).close()
PY
    then export TEST_DATABASE_URL="$candidate"; break; fi
  done
fi
if [ -z "${TEST_DATABASE_URL:-}" ]; then
  pgdir=$(mktemp -d -t jianfei-test-pg.XXXXXX)
  trap '.venv/bin/python -m app.core.embedded stop "$pgdir"; rm -rf "$pgdir"' EXIT
  echo "No PostgreSQL at $local_pg: starting the embedded one in $pgdir"
  TEST_DATABASE_URL=$(.venv/bin/python -m app.core.embedded start "$pgdir" \
    fsync=off synchronous_commit=off full_page_writes=off max_connections=200)
  export TEST_DATABASE_URL
fi
echo "PostgreSQL for tests: ${TEST_DATABASE_URL}"

workers=${TEST_WORKERS:-$(( $(nproc) + 1 ))}
.venv/bin/python -m pytest -n "$workers" --dist loadfile "$@"
