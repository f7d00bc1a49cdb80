#!/usr/bin/env bash
# The API (uvicorn): run_api.sh ENV_FILE [options]  (e.g. bash ./backend/scripts/ops/run_api.sh .env.dev)
set -euo pipefail
LAUNCHER=run_api COMMAND=api_server WAIT_DB=30
source "$(dirname "${BASH_SOURCE[0]}")/_launcher.sh"
launch "$@"  # ends in exec: signals reach Python
