#!/usr/bin/env bash
# Side-by-side benchmarks against Debian's PyTorch (installed by the set-up's --python step); see
# bench/README.md. Runs the micro benchmarks (bench/run.ts: a conv, its backward, per-op overhead)
# and then the model benchmarks (bench/table.ts: inference per model and size, a training step,
# end-to-end predict), each side in its own processes, alternating.
#   scripts/bench.sh [--quick] [--rounds N] [--threads N] [table.js options...]   both
#   scripts/bench.sh micro [run.js options...]                                      micro only
#   scripts/bench.sh models [table.js options...]                                   models only
#   scripts/bench.sh scaling [--quick]                                              scaling only
# Full run: about 28 minutes on 2 Zen 4 cores (20 on Zen 5); results in bench/results/.
# --quick: a smoke test (1 round, 1 call per process); results go to $TMPDIR/deeplab-bench-quick/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --python

what=all
case "${1:-}" in micro | models | scaling) what=$1; shift ;; esac

if [[ $what == micro ]]; then exec node dist/bench/run.js "$@"; fi
if [[ $what == models ]]; then exec node dist/bench/table.js "$@"; fi
if [[ $what == scaling ]]; then exec node dist/bench/scaling.js "$@"; fi

# both: hand micro the options it knows
micro=()
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  case "${args[i]}" in
    --quick) micro+=(--rounds 1 --out "${TMPDIR:-/tmp}/deeplab-bench-quick/micro.md") ;;
    --rounds | --threads) micro+=("${args[i]}" "${args[i + 1]}") ;;
  esac
done
node dist/bench/run.js "${micro[@]}"
node dist/bench/table.js "$@"
# scaling: time and memory against input size and batch (its own options: --quick, --threads)
scaling=()
for ((i = 0; i < ${#args[@]}; i++)); do
  case "${args[i]}" in
    --quick) scaling+=(--quick) ;;
    --threads) scaling+=("${args[i]}" "${args[i + 1]}") ;;
  esac
done
exec node dist/bench/scaling.js "${scaling[@]}"
