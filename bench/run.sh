#!/bin/sh
# Every benchmark, one command: prints the figures, each beside its target, and records them in
# bench/RESULTS.md (the latest run of each benchmark, and a line in the history table).
#
#   bench/run.sh                  # all of them (the export one builds a 60,000-household street first)
#   bench/run.sh ingest batch     # some of them: ingest batch passbook roster rates redemption export generate backup
#   PROFILE=1 bench/run.sh ingest # also sample the ingest path with py-spy into bench/profiles/ (not in git)
#
# The export and backup benchmarks build a 60,000-household street (minutes); EXPORT_BENCH_URL=<url of a street kept with
# `bench/bench_export.py --keep`> measures on it again instead.
# PostgreSQL at $BENCH_DATABASE_URL (else $TEST_DATABASE_URL, else postgresql://postgres@127.0.0.1:5432/postgres).
# The ingest benchmark needs wrk and pgbench (Debian packages), and py-spy (pip) with PROFILE=1; installed here when missing.
set -eu
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
if ! command -v wrk >/dev/null 2>&1 || ! command -v pgbench >/dev/null 2>&1; then
  apt-get update -qq && apt-get install -y -qq wrk postgresql-client >/dev/null
fi
if [ "${PROFILE:-}" = 1 ] && [ ! -x .venv/bin/py-spy ]; then
  .venv/bin/python -m pip install --quiet py-spy
fi
export TEST_DATABASE_URL="${TEST_DATABASE_URL:-postgresql://postgres@127.0.0.1:5432/postgres}"
export PYTHONPATH="$PWD"

for name in ${*:-ingest batch passbook roster rates redemption export generate backup}; do
  echo "=== $name"
  case "$name" in
    ingest) .venv/bin/python -m bench.checkin ;;
    batch) .venv/bin/python bench/bench_checkin_batch.py ;;
    passbook) .venv/bin/python bench/bench_passbook.py ;;
    roster) .venv/bin/python bench/bench_roster_import.py ;;
    rates) .venv/bin/python bench/bench_rates.py ;;
    redemption) .venv/bin/python bench/bench_redemption.py ;;
    export) .venv/bin/python bench/bench_export.py ;;
    generate) .venv/bin/python bench/bench_generate_street.py ;;
    backup) .venv/bin/python bench/bench_backup.py ;;
    *) echo "unknown benchmark: $name" >&2; exit 2 ;;
  esac
done
