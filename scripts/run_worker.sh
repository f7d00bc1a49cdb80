#!/usr/bin/env bash
# Deprecated alias kept for old runbooks (old runbook form); see backend/scripts/registry.json.
# One hint line on stderr, then the stable launcher replaces this process (exec: signals pass).
set -euo pipefail
echo "[deprecated] $0 is an old path: use backend/scripts/ops/run_worker.sh instead (this path will be removed on 2027-12-31)" >&2
WORDLOOM_TYPED_PATH="${WORDLOOM_TYPED_PATH:-$0}" exec bash "$(dirname "${BASH_SOURCE[0]}")/../backend/scripts/ops/run_worker.sh" "$@"
