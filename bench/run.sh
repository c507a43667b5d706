#!/bin/sh
# One command for the ingest benchmark: prints the figures and appends them to bench/RESULTS.md.
# Needs wrk and pgbench (apt-get install wrk postgresql-client) and PostgreSQL at
# $BENCH_DATABASE_URL (else $TEST_DATABASE_URL, else postgresql://postgres@127.0.0.1:5432/postgres).
set -eu
cd "$(dirname "$0")/.."
exec .venv/bin/python -m bench.checkin "$@"
