#!/usr/bin/env bash
# Set everything up, then enrich the shipped demo catalog with the embedded LLM (no API key).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PREFECT_SERVER_ANALYTICS_ENABLED=false DO_NOT_TRACK=1 HF_HUB_OFFLINE=1
.venv/bin/kgenrich demo "$@"
