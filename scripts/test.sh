#!/usr/bin/env bash
# Set everything up, then run the whole test suite (unit, integration, flows, end-to-end).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PREFECT_SERVER_ANALYTICS_ENABLED=false DO_NOT_TRACK=1 HF_HUB_OFFLINE=1
.venv/bin/python -m pytest "$@"
