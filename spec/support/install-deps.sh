#!/bin/sh
# Installs what the build, the tests and the demo need, skipping what is already there:
# Debian packages (apt-packages.txt), the Python venv (requirements.txt, pinned) and the
# npm packages (node/package-lock.json, pinned). Safe to run again; fast when all is there.
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"

sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi

missing=""
for p in $(grep -v '^#' spec/support/apt-packages.txt); do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
    missing="$missing $p"
  fi
done
if ! command -v npm >/dev/null 2>&1; then missing="$missing nodejs npm"; fi
if [ -n "$missing" ]; then
  echo "install-deps: installing Debian packages:$missing"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq $missing
fi

stamp=.venv/.requirements
if [ ! -x .venv/bin/python ] || ! cmp -s spec/support/requirements.txt "$stamp"; then
  echo "install-deps: creating .venv with spec/support/requirements.txt"
  python3 -m venv .venv
  .venv/bin/pip install -q --disable-pip-version-check -r spec/support/requirements.txt
  cp spec/support/requirements.txt "$stamp"
fi

nstamp=spec/support/node/node_modules/.lock-stamp
if [ ! -f "$nstamp" ] || ! cmp -s spec/support/node/package-lock.json "$nstamp"; then
  echo "install-deps: installing npm packages from spec/support/node/package-lock.json"
  (cd spec/support/node && npm ci --no-audit --no-fund --loglevel=error)
  cp spec/support/node/package-lock.json "$nstamp"
fi
