#!/usr/bin/env bash
# Every test, after the set-up it needs (including Debian's PyTorch, which writes the large
# model fixtures once). Node's test runner prints the closing counts.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --python
bash scripts/fixtures.sh
exec node --test dist/test/ "$@"
