#!/usr/bin/env bash
# Installs the project into ./.venv with uv (bootstrapped with pip when absent). Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
# Trust the platform's certificate store (corporate proxies and mirrors); older uv names it NATIVE_TLS.
export UV_SYSTEM_CERTS=${UV_SYSTEM_CERTS:-1} UV_NATIVE_TLS=${UV_NATIVE_TLS:-1}
if ! python3 -m uv --version >/dev/null 2>&1; then
    python3 -m pip install -q uv
fi
# Python 3.12 (LeRobot 0.6 needs it): $PYTHON, else python3.12 on PATH, else pyenv's newest 3.12,
# else whatever 3.12 uv finds (its own installs included).
py=${PYTHON:-python3.12}
if ! "$py" -V >/dev/null 2>&1; then
    version=$(pyenv versions --bare 2>/dev/null | grep '^3\.12' | tail -1 || true)
    if [ -n "$version" ]; then py="$(pyenv root)/versions/$version/bin/python"; else py=3.12; fi
fi
python3 -m uv venv -q --allow-existing -p "$py" .venv
python3 -m uv pip install -q -p .venv/bin/python -e ".[dev]"
