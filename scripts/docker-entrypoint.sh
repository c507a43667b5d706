#!/bin/sh
# Container entry: migrate, then serve with several granian workers (a Rust HTTP server running the
# ASGI app; against uvicorn it halved the bin-side scan's server-side CPU, bench/RESULTS.md).
# X-Forwarded-For/-Proto are trusted from FORWARDED_ALLOW_IPS only (app.main:behind_proxy).
# Without DATABASE_URL (a trial): the embedded PostgreSQL in $DATA_DIR/pg, which `jianfei serve` starts
# and stops with the service (uvicorn workers; it reads FORWARDED_ALLOW_IPS too).
set -eu
if [ -z "${DATABASE_URL:-}" ]; then
  exec jianfei serve --host 0.0.0.0 --port "${PORT:-8000}" --workers "${WEB_CONCURRENCY:-2}"
fi
jianfei migrate
exec granian --interface asgi --factory app.main:behind_proxy --host 0.0.0.0 --port "${PORT:-8000}" \
  --workers "${WEB_CONCURRENCY:-2}" --loop uvloop --respawn-failed-workers --workers-kill-timeout 8 --no-access-log
