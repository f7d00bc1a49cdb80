#!/usr/bin/env bash
# The embedded PostgreSQL + search server (dev services), in the foreground: run_services.sh ENV_FILE [options]  (e.g. bash ./backend/scripts/ops/run_services.sh .env.dev)
set -euo pipefail
LAUNCHER=run_services COMMAND=dev_services WAIT_DB=0
source "$(dirname "${BASH_SOURCE[0]}")/_launcher.sh"
launch "$@"  # ends in exec: signals reach Python
