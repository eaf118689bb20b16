#!/usr/bin/env bash
# Install everything into ./.venv and run the full test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
. .venv/bin/activate
ruff check .
ruff format --check .
python -m pytest -q --timeout=900 "$@"
