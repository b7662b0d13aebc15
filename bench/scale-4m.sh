#!/bin/bash
# Seed-incident scale (issue 5, "up to 4 M live objects"): `record` with room
# for 4 M objects while up to 2.1 M datagrams leak into one unread UDP socket
# (the socket's receive buffer caps it near 1.68 M: 3.36 M live objects, the
# size of the production incident). Prints what was lost, the report's time
# after SIGINT, map memory, and slabinfo beside slabtrace's counts.
#
#   sudo bench/scale-4m.sh            (after a build; BUILD=dir to use another)
set -euo pipefail
build=${BUILD:-$(dirname "$0")/../build}
work=$(mktemp -d /tmp/slabtrace-scale.XXXXXX)
hold_pid="" rec_pid="" feeder_pid=""
cleanup() {
  for pid in $rec_pid $hold_pid $feeder_pid; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

mkfifo "$work/hold.in"
sleep 600 >"$work/hold.in" &
feeder_pid=$!
"$build/st_workload" udp-hold <"$work/hold.in" >"$work/hold.out" &
hold_pid=$!
for _ in $(seq 50); do grep -q '^ready' "$work/hold.out" 2>/dev/null && break; sleep 0.1; done
port=$(awk '/^ready/ { print $2 }' "$work/hold.out")

"$build/slabtrace" record --duration 600 --format json --max-objects 4194304 -o "$work/report.json" \
  2>"$work/record.err" &
rec_pid=$!
for _ in $(seq 100); do grep -q tracing "$work/record.err" 2>/dev/null && break; sleep 0.1; done

t0=$(date +%s.%N)
"$build/st_workload" udp-send --port "$port" --count 2100000 >/dev/null
echo "leak sent in $(echo "$(date +%s.%N) - $t0" | bc) s"
grep -E "^(Slab|SUnreclaim):" /proc/meminfo
ids=$(grep -hs '^map_id:' /proc/"$rec_pid"/fdinfo/* | awk '{ print $2 }' | sort -un | paste -sd, -)
bpftool map show --json | jq --argjson ids "[$ids]" \
  '[.[] | select(.id as $i | any($ids[]; . == $i)) | select(.name | startswith("st_")) | .bytes_memlock] | add' |
  awk '{ print "st_* maps, bytes:", $1 }'

t0=$(date +%s.%N)
kill -INT "$rec_pid"
wait "$rec_pid"
rec_pid=""
echo "report written $(echo "$(date +%s.%N) - $t0" | bc) s after SIGINT"
jq -c '{live_objects, live_capacity, lost, heads: .skb.outstanding_heads, data: .skb.outstanding_data,
        holders: [.skb.holders[] | {pid, comm, queued_skbs}]}' "$work/report.json"
jq -c '.caches[] | select(.outstanding > 100000) | {name, outstanding, slabinfo}' "$work/report.json"
