#!/usr/bin/env bash
# Sourced by serve.sh and test.sh: installs what the hotline needs, idempotently.
# - Debian packages (espeak-ng for spoken prompts, chromium for browser tests, postgresql and
#   redis-server for the cluster-mode tests, which start throw-away servers) when missing and root.
# - A virtualenv in .venv with the project and its test extras, reinstalled when pyproject.toml changes.
# - With HOTLINE_WITH_BROWSER=1 (tests): ESLint from npm into node_modules, exactly as package-lock.json pins it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

want_debs=(espeak-ng libespeak-ng1 sox iproute2 coturn postgresql redis-server)
[ "${HOTLINE_WITH_BROWSER:-0}" = 1 ] && want_debs+=(chromium fonts-wqy-microhei nodejs)
# ESLint 9 runs on Debian 12's nodejs (18); npm comes with NodeSource's nodejs or as its own package.
[ "${HOTLINE_WITH_BROWSER:-0}" = 1 ] && ! command -v npm >/dev/null && want_debs+=(npm)
missing=()
for p in "${want_debs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "bootstrap: installing Debian packages: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "bootstrap: please install as root: apt-get install ${missing[*]}" >&2
  fi
fi

PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.hotline-installed
if [ ! -f "$stamp" ] || ! cmp -s pyproject.toml "$stamp"; then
  echo "bootstrap: installing Python packages into .venv"
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null
  .venv/bin/python -m pip install -q -e ".[test]"
  cp pyproject.toml "$stamp"
fi

if [ "${HOTLINE_WITH_BROWSER:-0}" = 1 ]; then
  js_stamp=node_modules/.hotline-installed
  if [ ! -f "$js_stamp" ] || ! cmp -s package-lock.json "$js_stamp"; then
    echo "bootstrap: installing ESLint (npm ci)"
    npm ci --no-audit --no-fund --loglevel=error >/dev/null
    cp package-lock.json "$js_stamp"
  fi
fi

# axe-core (npm) for the browser tests' accessibility checks, kept inside .venv (where the
# tests look for it); pinned, reinstalled when the pin changes.
AXE_CORE_VERSION=4.14.1
if [ "${HOTLINE_WITH_BROWSER:-0}" = 1 ]; then
  axe_pkg=.venv/node/node_modules/axe-core/package.json
  if ! grep -q "\"version\": \"$AXE_CORE_VERSION\"" "$axe_pkg" 2>/dev/null; then
    if command -v npm >/dev/null; then
      echo "bootstrap: installing axe-core $AXE_CORE_VERSION from npm into .venv/node"
      mkdir -p .venv/node
      npm install --prefix .venv/node --no-audit --no-fund --silent "axe-core@$AXE_CORE_VERSION" >/dev/null
    else
      echo "bootstrap: npm missing: browser accessibility tests need axe-core (install Node.js with npm)" >&2
    fi
  fi
fi
