#!/usr/bin/env bash
# Soak check for issue 15 item 16: `parley dev --store postgres` under steady load keeps
# a flat resident set. It starts parley dev on its own PostgreSQL schema, drives it with
# `parley loadgen` (runs of at most 5 minutes back to back) for the whole duration, and
# samples the server's RSS from /proc/<pid>/status every interval, from outside the
# process. It prints the series and exits 1 when the last sample is more than 10 % above
# the first sample taken after the warm-up (the first fifth of the run).
#
#   hack/soak.sh                          # 10 minutes at 300 msgs/s (40 users, 4 rooms)
#   hack/soak.sh --duration 2m            # shorter
#   hack/soak.sh --duration 3m --rate 300 --interval 5 --port 18090
#   hack/soak.sh --warmup 240             # baseline after 4 minutes (default: once the
#                                         # bounded id memories are full, 65536/rate + 30 s)
#
# Environment: PARLEY_SOAK_POSTGRES_URL (default the tests' database, own schema
# parley_soak, dropped at the start and the end).
set -euo pipefail
cd "$(dirname "$0")/.."

duration=10m rate=300 users=40 rooms=4 interval=10 port=18080 schema=parley_soak warm=""
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) duration=$2; shift 2 ;;
    --rate) rate=$2; shift 2 ;;
    --users) users=$2; shift 2 ;;
    --rooms) rooms=$2; shift 2 ;;
    --interval) interval=$2; shift 2 ;;
    --port) port=$2; shift 2 ;;
    --warmup) warm=$2; shift 2 ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "soak: unknown argument $1" >&2; exit 2 ;;
  esac
done

# Go duration syntax (10m, 90s, 1m30s) to seconds.
to_seconds() {
  local d=$1 total=0 n
  while [[ $d =~ ^([0-9]+)([hms])(.*)$ ]]; do
    n=${BASH_REMATCH[1]}
    case ${BASH_REMATCH[2]} in h) total=$((total + n * 3600)) ;; m) total=$((total + n * 60)) ;; s) total=$((total + n)) ;; esac
    d=${BASH_REMATCH[3]}
  done
  [ -z "$d" ] || { echo "soak: bad duration $1" >&2; exit 2; }
  echo "$total"
}
total=$(to_seconds "$duration")
[ "$total" -gt 0 ] || { echo "soak: --duration must be positive" >&2; exit 2; }

base_url=${PARLEY_SOAK_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test?sslmode=disable}
psql_url=${base_url}
sep='?'; [[ $base_url == *\?* ]] && sep='&'
pg_url="${base_url}${sep}search_path=${schema}"

work=$(mktemp -d)
bin=$work/parley
echo "soak: building parley into $work" >&2
go build -o "$bin" .

psql -q "$psql_url" -c "DROP SCHEMA IF EXISTS $schema CASCADE; CREATE SCHEMA $schema" >/dev/null

dev_pid=""
sampler_pid=""
cleanup() {
  [ -n "$sampler_pid" ] && kill "$sampler_pid" 2>/dev/null || true
  if [ -n "$dev_pid" ]; then
    kill "$dev_pid" 2>/dev/null || true
    wait "$dev_pid" 2>/dev/null || true
  fi
  psql -q "$psql_url" -c "DROP SCHEMA IF EXISTS $schema CASCADE" >/dev/null 2>&1 || true
}
trap cleanup EXIT

"$bin" dev --dev-seeding --store postgres --postgres-url "$pg_url" --listen "127.0.0.1:$port" --log-level warn \
  >"$work/dev.out" 2>"$work/dev.err" &
dev_pid=$!
for _ in $(seq 1 120); do
  curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
  kill -0 "$dev_pid" 2>/dev/null || { echo "soak: parley dev exited:" >&2; cat "$work/dev.err" >&2; exit 1; }
  sleep 1
done
curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null || { echo "soak: parley dev never became ready" >&2; exit 1; }

# The users and rooms are seeded once (loopback-only --dev-seeding, one shared password
# hash) and every loadgen run reuses them: registering them again each run would hit the
# registration throttle, and runs are what the soak repeats.
"$bin" loadgen --seed --seed-only --fixtures "$work/fixtures.json" --target "http://127.0.0.1:$port" \
  --users "$users" --rooms "$rooms" --duration 1s >"$work/seed.out" 2>&1 || { echo "soak: seeding failed:" >&2; tail -5 "$work/seed.out" >&2; exit 1; }

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$dev_pid/status"; }
series=$work/rss.tsv
start=$(date +%s)
(
  while kill -0 "$dev_pid" 2>/dev/null; do
    printf '%s\t%s\n' "$(( $(date +%s) - start ))" "$(rss_kb)" >>"$series"
    sleep "$interval"
  done
) &
sampler_pid=$!

echo "soak: parley dev pid $dev_pid; loadgen at $rate msgs/s for ${total}s ($users users, $rooms rooms)" >&2
left=$total
while [ "$left" -gt 0 ]; do
  run=$(( left < 300 ? left : 300 ))
  "$bin" loadgen --fixtures "$work/fixtures.json" --target "http://127.0.0.1:$port" --users "$users" --rooms "$rooms" --rate "$rate" --duration "${run}s" \
    >>"$work/loadgen.out" 2>>"$work/loadgen.err" || { echo "soak: loadgen failed:" >&2; tail -5 "$work/loadgen.err" >&2; exit 1; }
  left=$(( total - ($(date +%s) - start) ))
done
printf '%s\t%s\n' "$(( $(date +%s) - start ))" "$(rss_kb)" >>"$series"
kill "$sampler_pid" 2>/dev/null || true
sampler_pid=""

echo "seconds	rss_kb"
cat "$series"
echo "--- loadgen summaries"
grep -iE 'sent|ack|deliver|lost' "$work/loadgen.out" | tail -n 12 || true
# Baseline: the first sample at or after the warm-up. By default that is when the
# process's bounded memories are full: notification remembers the last 65 536 server ids
# it fanned out (and as many event ids), which takes 65 536 / rate seconds to fill (218 s
# at 300 msgs/s), plus 30 s; or a fifth of the run if that is later.
if [ -z "$warm" ]; then
  warm=$(awk -v r="$rate" -v t="$total" 'BEGIN { w = int(65536 / r) + 30; if (t / 5 > w) w = int(t / 5); print w }')
fi
if [ "$warm" -ge "$total" ]; then
  echo "soak: the run ends before the ${warm} s warm-up; baseline at half the run (growth until then is expected)" >&2
  warm=$(( total / 2 ))
fi
read -r base last max < <(awk -v warm="$warm" '
  $1 >= warm && base == "" { base = $2 }
  { last = $2; if ($2 > max) max = $2 }
  END { print base, last, max }' "$series")
growth=$(awk -v b="$base" -v l="$last" 'BEGIN { printf "%.1f", (l - b) * 100 / b }')
echo "soak: RSS after the ${warm} s warm-up ${base} kB, last ${last} kB, peak ${max} kB: ${growth} % growth (limit 10 %)"
awk -v g="$growth" 'BEGIN { exit !(g <= 10) }' || { echo "soak: NOT flat" >&2; exit 1; }
echo "soak: flat"
