#!/usr/bin/env bash
# Creates (or reuses) the coremltools validation venv at <repo>/.venv-coreml.
#
# Idempotent: if the venv already has coremltools 9.0 and numpy < 2.3, nothing is installed.
# numpy must stay below 2.3: with numpy >= 2.3 coremltools 9.0's reduction value inference
# fails (see docs/emitter.md). Override the interpreter used to create the venv with $PYTHON.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
venv="${ANEMLLC_COREML_VENV:-$repo/.venv-coreml}"
python="${PYTHON:-python3}"

have_pinned() {
    "$venv/bin/python" - <<'PY' 2>/dev/null
import importlib.metadata as m
ok = m.version("coremltools") == "9.0"
import sklearn  # noqa: F401  (coremltools' k-means palettizer needs scikit-learn)
major, minor = (int(x) for x in m.version("numpy").split(".")[:2])
raise SystemExit(0 if ok and (major, minor) < (2, 3) else 1)
PY
}

if [ -x "$venv/bin/python" ] && have_pinned; then
    echo "coremltools venv ready: $venv"
    exit 0
fi

if [ ! -x "$venv/bin/python" ]; then
    "$python" -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/python" -m pip install --quiet "coremltools==9.0" "numpy<2.3" "scikit-learn"
have_pinned
echo "coremltools venv ready: $venv"
