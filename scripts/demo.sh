#!/usr/bin/env bash
# Install everything into ./.venv and run the main job: prints a small results table and a one-line conclusion
# (about 30 s after the install on a 2-core CPU; options: medsecure demo --help).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
. .venv/bin/activate
medsecure demo "$@"
