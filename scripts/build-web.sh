#!/usr/bin/env bash
# The web page of `deeplab serve` (web/): type-checked with its own tsconfig (DOM types), then
# bundled by esbuild into dist/web/app.js, next to its HTML and CSS. Takes about two seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
node node_modules/typescript/bin/tsc -p web/tsconfig.json
mkdir -p dist/web
node node_modules/esbuild/bin/esbuild web/main.ts --bundle --format=esm --target=es2022 --minify \
  --outfile=dist/web/app.js --log-level=warning
cp web/index.html web/style.css dist/web/
