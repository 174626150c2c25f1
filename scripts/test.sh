#!/usr/bin/env bash
# Sets everything up (browser included) and runs lint plus the whole default test suite.
# The suite runs in a private network namespace with only loopback when root, so no test
# (browser WebRTC included) can send traffic anywhere but 127.0.0.1.
set -euo pipefail
export HOTLINE_WITH_BROWSER=1
source "$(dirname "${BASH_SOURCE[0]}")/bootstrap.sh"
.venv/bin/ruff check hotline tests bench dialect_models
.venv/bin/ruff format --check hotline tests bench dialect_models
# Types: check_untyped_defs is on (pyproject.toml); the package must have 0 errors.
.venv/bin/mypy hotline
node_modules/.bin/eslint static
run=(.venv/bin/python -m pytest -p no:cacheprovider "$@")
if [ "$(id -u)" = 0 ] && unshare -n true 2>/dev/null; then
  unshare -n bash -c 'ip link set lo up && exec "$@"' _ "${run[@]}" || rc=$?
else
  "${run[@]}" || rc=$?
fi
rc=${rc:-0}
# pytest's 5 means "no tests ran": that is a failure here, never a pass.
exit "$rc"
