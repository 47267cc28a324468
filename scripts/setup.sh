#!/usr/bin/env bash
# Idempotent set-up on Debian 12 as root: apt packages, npm ci, the LibTorch addon, TypeScript,
# and the `deeplab` command on the PATH.
# Each step is skipped when its inputs have not changed, so a second run takes seconds.
#   scripts/setup.sh            what the library, CLI and tests need
#   scripts/setup.sh --python   also Debian's PyTorch, for bench/ and regenerating fixtures, and
#                               Chromium, for the test of `deeplab serve`'s page (scripts/test.sh uses this)
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .stamps

log() { printf '[setup] %s\n' "$*" >&2; }

# 1. Debian packages. libtorch-dev is LibTorch 1.13.1 (oneDNN, Gloo); g++/make/python3 build the
#    addon; a font lets the training report label its charts; bin/deeplab runs the CLI with
#    jemalloc (libjemalloc2), which made a training step about 20% faster than glibc's malloc;
#    dataset-fashion-mnist is what the demo's scenes are made of (/usr/share/datasets/fashion-mnist);
#    libgloo-dev has the Gloo headers that LibTorch's c10d headers include (native/src/distributed.cc);
#    libdnnl-dev is the headers of the oneDNN (2.6.3) libtorch links, for the fused, prepacked and
#    int8 convolutions of native/src/fused_conv.cc (without it the addon builds without them).
pkgs=(libtorch-dev libgloo-dev libdnnl-dev g++ make python3 fonts-dejavu-core libjemalloc2 dataset-fashion-mnist)
[[ "${1:-}" == "--python" ]] && pkgs+=(python3-torch python3-torchvision chromium)
missing=()
for p in "${pkgs[@]}"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p"); done
if ((${#missing[@]})); then
  [[ $(id -u) -eq 0 ]] || { echo "setup: need root to install: ${missing[*]}" >&2; exit 1; }
  log "apt-get install ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# 2. npm packages, when package-lock.json or Node changed. Scripts are off: the addon is built below.
lock_sum="$(sha256sum package-lock.json | cut -d' ' -f1) $(node --version)"
if [[ ! -d node_modules || "$(cat .stamps/npm 2>/dev/null)" != "$lock_sum" ]]; then
  log "npm ci"
  # onnxruntime-node (ONNX export tests, the bench's ORT peer) ships its CPU binary; skip its GPU download.
  ONNXRUNTIME_NODE_INSTALL=skip npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
  echo "$lock_sum" > .stamps/npm
fi

# 3. The addon, when its sources or the LibTorch it targets changed.
addon=native/build/Release/deeplab_torch.node
target="LIBTORCH=${LIBTORCH:-debian}"
if [[ ! -f $addon || "$(cat .stamps/addon 2>/dev/null)" != "$target" || -n "$(find native/src native/binding.gyp native/torch-paths.cjs -newer "$addon" 2>/dev/null)" ]]; then
  log "building the addon against ${LIBTORCH:-Debian libtorch-dev} (about a minute)"
  npm run --silent build:native -- -j "$(nproc)" >/dev/null
  echo "$target" > .stamps/addon
fi

# 4. TypeScript (incremental), and the web page of `deeplab serve` bundled into dist/web (esbuild).
node node_modules/typescript/bin/tsc -p tsconfig.json
bash scripts/build-web.sh

# 5. `deeplab` on the PATH: /usr/local/bin/deeplab -> this clone's bin/deeplab (a later set-up in
#    another clone points it there). Without root, say how to call it.
here="$(pwd)/bin/deeplab"
if [[ "$(readlink -f /usr/local/bin/deeplab 2>/dev/null)" != "$here" ]]; then
  if [[ -w /usr/local/bin ]]; then
    ln -sfn "$here" /usr/local/bin/deeplab
    log "linked /usr/local/bin/deeplab -> $here"
  else
    log "cannot link /usr/local/bin/deeplab (not writable): run $here, or add $(pwd)/bin to PATH"
  fi
fi
