#!/usr/bin/env bash
# The main job, after the set-up it needs.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec node dist/src/cli/main.js demo "$@"
