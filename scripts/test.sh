#!/usr/bin/env bash
# Every test, after the set-up it needs (including Debian's PyTorch, which writes the large
# model fixtures once), the formatter check (Prettier) and the linter (ESLint with
# typescript-eslint's type-checked rules). Node's test runner prints the closing counts.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --python
bash scripts/fixtures.sh
# Formatting and the type-aware linter first: a failure names the file and line, before the tests.
node node_modules/prettier/bin/prettier.cjs --check --log-level warn .
node node_modules/eslint/bin/eslint.js --max-warnings 0 .
# The tests' temporary files (datasets, checkpoints, predictions: ~2.5 GB a run) go to a TMPDIR of
# this run's own, removed when it ends, so repeated runs leave nothing behind.
TMPDIR="$(mktemp -d "${TMPDIR:-/tmp}/deeplab-tests-XXXXXX")"
export TMPDIR
trap 'rm -rf "$TMPDIR"' EXIT
node --test dist/test/ "$@"
