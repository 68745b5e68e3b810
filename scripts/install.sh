#!/usr/bin/env bash
# Installs the project into ./.venv with uv (bootstrapped with pip when absent). Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
# Trust the platform's certificate store (corporate proxies and mirrors); older uv names it NATIVE_TLS.
export UV_SYSTEM_CERTS=${UV_SYSTEM_CERTS:-1} UV_NATIVE_TLS=${UV_NATIVE_TLS:-1}
if ! python3 -m uv --version >/dev/null 2>&1; then
    python3 -m pip install -q uv
fi
# Python 3.12 (LeRobot 0.6 needs it): $PYTHON, else python3.12 on the PATH, else the newest 3.12 of
# a pyenv (`pyenv root`, $PYENV_ROOT or ~/.pyenv, or the pyenv whose python3 runs this script, as
# in a shell without pyenv's setup), else whatever 3.12 uv finds (its own installs included).
py=${PYTHON:-python3.12}
if ! "$py" -V >/dev/null 2>&1; then
    beside=$(dirname "$(python3 -c 'import sys; print(sys.base_prefix)')")
    py=3.12
    for versions in "$(pyenv root 2>/dev/null || echo /nonexistent)/versions" "${PYENV_ROOT:-${HOME:-/nonexistent}/.pyenv}/versions" "$beside"; do
        found=$(ls -d "$versions"/3.12*/bin/python 2>/dev/null | sort -V | tail -1 || true)
        if [ -n "$found" ]; then py=$found; break; fi
    done
fi
python3 -m uv venv -q --allow-existing -p "$py" .venv
python3 -m uv pip install -q -p .venv/bin/python -e ".[dev]"
