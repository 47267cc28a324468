#!/usr/bin/env bash
# Generates the fixtures too large to commit (seeded model weights and their PyTorch logits):
# each test/fixtures/gen/NAME.py writes into .cache/fixtures/NAME/, and runs again only when
# the script (or a shared test/fixtures/*_ref.py) changed. Needs Debian's python3-torch and python3-torchvision (setup.sh --python).
set -euo pipefail
cd "$(dirname "$0")/.."
shopt -s nullglob
for script in test/fixtures/gen/*.py; do
  name=$(basename "$script" .py)
  out=.cache/fixtures/$name
  # The shared reference modules (test/fixtures/*_ref.py) count as part of every script.
  sum=$(cat "$script" test/fixtures/*_ref.py 2>/dev/null | sha256sum | cut -d' ' -f1)
  if [[ -f $out/.done && "$(cat "$out/.done")" == "$sum" ]]; then continue; fi
  echo "[fixtures] $name" >&2
  rm -rf "$out" && mkdir -p "$out"
  OMP_NUM_THREADS=2 /usr/bin/python3 "$script" "$out" >&2
  echo "$sum" > "$out/.done"
done
