#!/usr/bin/env bash
# The main job, after the set-up it needs.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# bin/deeplab: the CLI with jemalloc when installed (DEEPLAB_ALLOCATOR=system opts out)
exec bin/deeplab demo "$@"
