#!/usr/bin/env bash
# Installs the project into ./.venv with uv (bootstrapped with pip when absent). Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
# Trust the platform's certificate store (corporate proxies and mirrors); older uv names it NATIVE_TLS.
export UV_SYSTEM_CERTS=${UV_SYSTEM_CERTS:-1} UV_NATIVE_TLS=${UV_NATIVE_TLS:-1}
if ! python3 -m uv --version >/dev/null 2>&1; then
    python3 -m pip install -q uv
fi
python3 -m uv venv -q --allow-existing -p 3.11 .venv
python3 -m uv pip install -q -p .venv/bin/python -e ".[dev]"
