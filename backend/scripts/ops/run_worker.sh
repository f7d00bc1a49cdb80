#!/usr/bin/env bash
# The search outbox worker: run_worker.sh ENV_FILE [options]  (e.g. bash ./backend/scripts/ops/run_worker.sh .env.dev)
set -euo pipefail
LAUNCHER=run_worker COMMAND=search_worker WAIT_DB=30
source "$(dirname "${BASH_SOURCE[0]}")/_launcher.sh"
launch "$@"  # ends in exec: signals reach Python
