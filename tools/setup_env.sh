#!/usr/bin/env bash
# Create (or complete) the project's virtual environment at .venv/, idempotently.
#
# Order matters: mmcv 2.1.0 has no wheel for torch 2.11, so it is built from
# source with its C++ ops, which needs torch importable at build time
# (--no-build-isolation) and setuptools<70. The first build takes ~25 minutes on
# 2 cores; pip caches the wheel, so later environments install it in seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=.venv
PIP="$VENV/bin/pip"
CONSTRAINTS=requirements/constraints.txt
STAMP="$VENV/.installed"
fingerprint=$(cat setup.py "$CONSTRAINTS" tools/setup_env.sh | sha256sum | cut -d' ' -f1)

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$fingerprint" ]; then
  exit 0
fi
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
"$PIP" install -q -c "$CONSTRAINTS" pip setuptools wheel ninja
"$PIP" install -q -c "$CONSTRAINTS" torch torchvision
if ! "$VENV/bin/python" -c 'import mmcv._ext' 2>/dev/null; then
  echo "building mmcv 2.1.0 with its ops (first time ~25 min; cached afterwards)" >&2
  MMCV_WITH_OPS=1 MAX_JOBS=${MAX_JOBS:-2} "$PIP" install -q --no-build-isolation \
    -c "$CONSTRAINTS" mmcv==2.1.0
fi
"$VENV/bin/python" -c 'import mmcv._ext' || {
  echo "mmcv was installed without its ops (mmcv._ext missing); remove .venv and retry" >&2
  exit 1
}
"$PIP" install -q -c "$CONSTRAINTS" -e '.[tests,deploy]'
echo "$fingerprint" > "$STAMP"
