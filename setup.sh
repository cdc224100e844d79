#!/usr/bin/env bash
# Make .venv and install this project with its test extras (pinned stack: TF 2.21, tf-keras, larq 0.14).
# Safe to run again: it reinstalls only when pyproject.toml changed. Default extras: test,lce (EXTRAS=test skips LCE)
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3}
EXTRAS=${EXTRAS:-test,lce}
VENV=.venv
STAMP=$VENV/.installed

if ! "$PYTHON" -c 'import sys; sys.exit(not ((3, 10) <= sys.version_info[:2] <= (3, 12)))'; then
    echo "setup.sh: need Python 3.10-3.12 for TensorFlow 2.21; $PYTHON is $("$PYTHON" --version 2>&1). Set PYTHON=..." >&2
    exit 1
fi
if [ ! -x "$VENV/bin/python" ]; then
    echo "setup.sh: creating $VENV with $("$PYTHON" --version 2>&1)"
    "$PYTHON" -m venv "$VENV"
else
    echo "setup.sh: $VENV exists"
fi
want="$(sha256sum pyproject.toml | cut -d' ' -f1) extras=$EXTRAS"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ]; then
    echo "setup.sh: dependencies up to date (pyproject.toml unchanged); nothing to do"
else
    echo "setup.sh: installing the project and its [$EXTRAS] extras into $VENV (first time: a few minutes)"
    "$VENV/bin/python" -m pip install --quiet --upgrade pip
    "$VENV/bin/python" -m pip install --quiet -e ".[$EXTRAS]"
    echo "$want" > "$STAMP"
fi
"$VENV/bin/python" - <<'PY'
from importlib.metadata import version
names = ["tensorflow", "tf-keras", "larq", "numpy", "tensorboard"]
print("setup.sh: ready: " + ", ".join(f"{n} {version(n)}" for n in names))
PY
echo "setup.sh: run the tests with: .venv/bin/python -m pytest -q"
