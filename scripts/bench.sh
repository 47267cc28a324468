#!/usr/bin/env bash
# Side-by-side benchmarks against Debian's PyTorch (installed by the set-up's --python step).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --python
exec node dist/bench/run.js "$@"
