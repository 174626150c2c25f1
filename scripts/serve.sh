#!/usr/bin/env bash
# Sets everything up, creates the demo agent and elder (printed), and runs the hotline on :8080.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/bootstrap.sh"
.venv/bin/python -m hotline demo
exec .venv/bin/python -m hotline serve "$@"
