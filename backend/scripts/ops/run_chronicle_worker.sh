#!/usr/bin/env bash
# The chronicle outbox worker: run_chronicle_worker.sh ENV_FILE [options]  (e.g. bash ./backend/scripts/ops/run_chronicle_worker.sh .env.dev)
set -euo pipefail
LAUNCHER=run_chronicle_worker COMMAND=chronicle_worker WAIT_DB=30
source "$(dirname "${BASH_SOURCE[0]}")/_launcher.sh"
launch "$@"  # ends in exec: signals reach Python
