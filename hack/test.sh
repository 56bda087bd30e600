#!/usr/bin/env bash
# Runs every Go test once, keeps the verbose log, and closes with one summary line.
set -uo pipefail
cd "$(dirname "$0")/.."

log_dir="${PARLEY_TEST_LOG_DIR:-.test}"
mkdir -p "$log_dir"
log="$log_dir/go-test.log"

start=$(date +%s)
go test -count=1 -timeout "${PARLEY_TEST_TIMEOUT:-25m}" -v "$@" ./... >"$log" 2>&1
rc=$?
elapsed=$(( $(date +%s) - start ))

# Package lines as plain `go test` prints them.
grep -E '^(ok|FAIL|\?|panic:)\s' "$log" || true
if [ "$rc" -ne 0 ]; then
  echo
  echo "---- failures (full log: $log) ----"
  grep -nE -- '--- FAIL|^FAIL|panic:|_test\.go:[0-9]+:' "$log" | head -200 || true
  echo "---- last 80 lines ----"
  tail -n 80 "$log"
fi

passed=$(grep -cE -- '^\s*--- PASS' "$log" || true)
failed=$(grep -cE -- '^\s*--- FAIL' "$log" || true)
skipped=$(grep -cE -- '^\s*--- SKIP' "$log" || true)
if [ "$skipped" -gt 0 ]; then
  echo "skipped tests:"
  grep -E -A1 -- '^\s*--- SKIP' "$log" | head -40
fi
echo "go test took ${elapsed}s"
echo "gotest: ${passed} passed, ${failed} failed, ${skipped} skipped"
exit "$rc"
