#!/usr/bin/env bash
# One-command setup: creates .venv at the repository root and installs scfront with its test
# dependencies. Works offline where the package index (or a local wheel) provides torch==2.13.0.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e ".[test]"
.venv/bin/scfront --version
