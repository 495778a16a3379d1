#!/usr/bin/env bash
# Run a command with the local DynamoDB test servers up:
#   spec/support/with-servers.sh CMD [ARGS...]
# Starts moto, dynalite and a SigV4-checking proxy in front of each
# (spec/support/servers.py), exports the DDB_TEST_* variables of env.sh,
# runs CMD, always stops the servers, and exits with CMD's status.
# The state dir (logs, env.sh) is removed afterwards unless CMD failed or
# DDB_TEST_KEEP_STATE=1.
set -u

if [ "$#" -eq 0 ]; then
    echo "usage: $0 CMD [ARGS...]" >&2
    exit 2
fi

support_dir=$(cd "$(dirname "$0")" && pwd)
repo_root=$(cd "$support_dir/../.." && pwd)
python="$repo_root/.venv/bin/python"
if [ ! -x "$python" ]; then
    echo "$0: $python not found; create it with: python3 -m venv .venv &&" \
         ".venv/bin/pip install -r spec/support/requirements.txt" >&2
    exit 2
fi

state_dir=$(mktemp -d "${TMPDIR:-/tmp}/ddb-test-servers.XXXXXX") || exit 2
status=1

cleanup() {
    "$python" "$support_dir/servers.py" stop "$state_dir" >&2
    if [ "$status" -eq 0 ] && [ "${DDB_TEST_KEEP_STATE:-0}" != 1 ]; then
        rm -rf "$state_dir"
    else
        echo "$0: server logs kept in $state_dir" >&2
    fi
}
trap cleanup EXIT
# Exiting from these traps runs the EXIT trap, which stops the servers.
trap 'exit 130' INT
trap 'exit 143' TERM

# --owner-pid: should this shell be killed outright, a watchdog still stops
# the servers.
"$python" "$support_dir/servers.py" start "$state_dir" --owner-pid "$$" || exit 1
# shellcheck source=/dev/null
. "$state_dir/env.sh"

"$@"
status=$?
exit "$status"
