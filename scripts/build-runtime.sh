#!/bin/sh
# The read-only environment every sandbox sees at /opt/cove/runtime:
#   site/  Python packages for Debian's /usr/bin/python3 (the interpreter
#          sandboxes run: the host's own Python may live where they cannot read)
#   node/  esbuild, so TypeScript runs without a network at run time
set -e
PY="$1"
OUT="$2"
mkdir -p "$OUT/site" "$OUT/node"
"$PY" -m pip install -q --disable-pip-version-check --upgrade --target "$OUT/site" \
    --python-version 3.11 --only-binary=:all: \
    numpy pandas matplotlib pillow
( cd "$OUT/node" && npm install --silent --no-audit --no-fund --no-save esbuild@0.28 >/dev/null )
chmod -R a+rX "$OUT"
