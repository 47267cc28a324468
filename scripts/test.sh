#!/usr/bin/env bash
# Every test, after the set-up it needs. Node's test runner prints the closing counts.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec node --test dist/test/ "$@"
