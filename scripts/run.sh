#!/usr/bin/env bash
# The first README command: environment, install, migrate, seed the demo community, serve.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
exec .venv/bin/jianfei serve --host "${HOST:-127.0.0.1}" --port "${PORT:-8000}" "$@"
