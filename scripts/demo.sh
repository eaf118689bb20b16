#!/usr/bin/env bash
# Install everything into ./.venv and run the main job (prints a small results table).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
. .venv/bin/activate
medsecure demo "$@"
