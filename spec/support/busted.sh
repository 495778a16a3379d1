#!/bin/sh
# Runs busted with the given arguments, shows its output, and adds its counts to the file
# named by DDB_TEST_COUNTS (so make test can close with one "N passed, N failed" line).
out=$(mktemp)
busted "$@" 2>&1 | tee "$out"
set -- $(sed 's/\x1b\[[0-9;]*m//g' "$out" | grep -E '^[0-9]+ success' | tail -1 |
  sed -E 's/^([0-9]+) successes? \/ ([0-9]+) failures? \/ ([0-9]+) errors? \/ ([0-9]+) pending.*/\1 \2 \3 \4/')
if [ "$#" -eq 4 ] && [ -n "${DDB_TEST_COUNTS:-}" ]; then
  echo "$1 $(( $2 + $3 )) $4" >> "$DDB_TEST_COUNTS"
fi
if [ "$#" -ne 4 ]; then
  echo "busted.sh: could not read busted's summary line" >&2
  rm -f "$out"
  exit 1
fi
rm -f "$out"
[ "$2" -eq 0 ] && [ "$3" -eq 0 ]
