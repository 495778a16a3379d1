#!/bin/sh
# make test: build and lint, then unit and integration specs on Lua 5.4 and LuaJIT, with
# the local DynamoDB servers (and their signature-checking proxies) up for the integration
# stage only. Prints each stage's time; exits non-zero on the first failing stage.
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
started=$(date +%s)
DDB_TEST_COUNTS=$(mktemp)
export DDB_TEST_COUNTS
trap 'rm -f "$DDB_TEST_COUNTS"' EXIT

# One closing line over every busted run: "N passed, N failed, N skipped".
totals() {
  awk '{p+=$1; f+=$2; s+=$3} END {printf "%d passed, %d failed, %d skipped\n", p, f, s}' \
    "$DDB_TEST_COUNTS"
}

stage() {
  name=$1; shift
  t0=$(date +%s)
  echo "==> $name"
  if "$@"; then
    echo "==> $name: ok ($(( $(date +%s) - t0 ))s)"
  else
    rc=$?
    echo "==> $name: FAILED ($(( $(date +%s) - t0 ))s)"
    totals
    exit $rc
  fi
}

stage "build (Lua 5.4)" make -s build LUA_VERSION=5.4 OPT="-O2 -g -Werror"
stage "build (LuaJIT)" make -s build LUA_VERSION=jit OPT="-O2 -g -Werror"
stage "luacheck" make -s check
stage "unit specs (Lua 5.4)" make -s test-unit LUA_VERSION=5.4
stage "unit specs (LuaJIT)" make -s test-unit LUA_VERSION=jit
stage "unit specs under ASan+UBSan (Lua 5.4, LuaJIT)" make -s asan
stage "fuzz corpus replay (libFuzzer, ASan+UBSan)" make -s fuzz-replay
stage "integration specs (Lua 5.4, LuaJIT)" sh spec/support/with-servers.sh sh -c \
  'make -s integration-run LUA_VERSION=5.4 && make -s integration-run LUA_VERSION=jit'
echo "==> all stages passed in $(( $(date +%s) - started ))s"
totals
