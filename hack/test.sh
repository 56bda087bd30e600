#!/usr/bin/env bash
# Runs the web client's tests and build, then every Go test once; keeps the verbose logs
# and closes with one summary line over both.
set -uo pipefail
cd "$(dirname "$0")/.."

log_dir="${PARLEY_TEST_LOG_DIR:-.test}"
mkdir -p "$log_dir"
log="$log_dir/go-test.log"

# The web client first: Vitest, then the production build that the Go build embeds (the
# browser tests drive it). Without Node.js this fails under CI and is skipped locally.
web_passed=0 web_failed=0 web_skipped=0 web_rc=0
web_json="$(cd "$log_dir" && pwd)/vitest.json"
rm -f "$web_json"
if hack/web.sh install >"$log_dir/web.log" 2>&1; then
  hack/web.sh test --reporter=default --reporter=json --outputFile.json="$web_json" >>"$log_dir/web.log" 2>&1 || web_rc=$?
  if [ -f "$web_json" ]; then
    read -r web_passed web_failed web_skipped < <(node -e '
      const r = require(process.argv[1]);
      console.log(r.numPassedTests, r.numFailedTests, r.numPendingTests + r.numTodoTests)' "$web_json")
  elif [ "$web_rc" -eq 0 ]; then
    web_rc=1
  fi
  hack/web.sh build >>"$log_dir/web.log" 2>&1 || web_rc=$?
  grep -E 'initial JS' "$log_dir/web.log" || true
  if [ "$web_rc" -ne 0 ]; then
    echo "---- web client failed (full log: $log_dir/web.log) ----"
    tail -n 60 "$log_dir/web.log"
  fi
  echo "vitest: ${web_passed} passed, ${web_failed} failed"
elif [ "${CI:-}" = true ]; then
  web_rc=1
  echo "---- web client: Node.js/npm missing or npm ci failed (CI=true makes this a failure) ----"
  tail -n 40 "$log_dir/web.log"
else
  echo "web client skipped: $(tail -n 1 "$log_dir/web.log")"
fi

start=$(date +%s)
go test -count=1 -timeout "${PARLEY_TEST_TIMEOUT:-25m}" -v "$@" ./... >"$log" 2>&1
rc=$?
# The race detector over the packages whose goroutines share state (about 1–2 minutes):
# a second run, so the main one keeps its speed; its verdict joins the exit code.
race_log="$log_dir/go-test-race.log"
race_pkgs=(./runtime/gateway/ ./runtime/notification/ ./runtime/presence/ ./runtime/bus/ ./runtime/pipeline/)
go test -race -count=1 -timeout "${PARLEY_TEST_TIMEOUT:-25m}" -v "${race_pkgs[@]}" >"$race_log" 2>&1
race_rc=$?
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

echo "race detector over ${race_pkgs[*]}:"
grep -E '^(ok|FAIL|panic:)\s' "$race_log" || true
if [ "$race_rc" -ne 0 ]; then
  echo "---- race run failures (full log: $race_log) ----"
  grep -nE -- '--- FAIL|^FAIL|panic:|WARNING: DATA RACE|_test\.go:[0-9]+:' "$race_log" | head -100 || true
  [ "$rc" -ne 0 ] || rc=$race_rc
fi

passed=$(grep -cE -- '^\s*--- PASS' "$log" || true)
failed=$(grep -cE -- '^\s*--- FAIL' "$log" || true)
race_failed=$(grep -cE -- '^\s*--- FAIL' "$race_log" || true)
if [ "$race_rc" -ne 0 ] && [ "$race_failed" -eq 0 ]; then
  race_failed=1 # a race report or a build failure fails no named test: count it anyway
fi
failed=$((failed + race_failed))
skipped=$(grep -cE -- '^\s*--- SKIP' "$log" || true)
if [ "$skipped" -gt 0 ]; then
  echo "skipped tests:"
  grep -E -A1 -- '^\s*--- SKIP' "$log" | head -40
fi
echo "go test took ${elapsed}s"
echo "gotest: ${passed} passed, ${failed} failed, ${skipped} skipped"
if [ "$web_rc" -ne 0 ] && [ "$web_failed" -eq 0 ]; then
  web_failed=1 # the build or the install failed: count it, or the summary would look green
fi
echo "tests: $((passed + web_passed)) passed, $((failed + web_failed)) failed, $((skipped + web_skipped)) skipped"
if [ "$rc" -eq 0 ]; then
  rc=$web_rc
fi
exit "$rc"
