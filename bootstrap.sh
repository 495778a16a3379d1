#!/bin/sh
# First step on a fresh Debian 12 machine: makes sure make and a C compiler exist, then
# installs everything else the project needs (spec/support/install-deps.sh).
set -eu
cd "$(dirname "$0")"
if ! command -v make >/dev/null 2>&1 || ! command -v cc >/dev/null 2>&1; then
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq make build-essential
fi
sh spec/support/install-deps.sh
