#!/bin/bash
# How the live table copes past its room: `record --max-objects ROOM` while a
# leak of DATAGRAMS UDP datagrams (two objects each) builds, then how many
# objects it tracks and how many inserts found no slot (lost.map_full).
#
#   sudo bench/overfill.sh ROOM DATAGRAMS     e.g. 65536 52000 (160 % of room)
set -euo pipefail
room=${1:?room (--max-objects)}
datagrams=${2:?datagrams to leak}
build=${BUILD:-$(dirname "$0")/../build}
work=$(mktemp -d /tmp/slabtrace-overfill.XXXXXX)
feeder_pid="" hold_pid=""
cleanup() {
  for pid in $hold_pid $feeder_pid; do kill "$pid" 2>/dev/null || true; done
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

"$build/slabtrace" record --duration 6 --format json --max-objects "$room" -o "$work/report.json" 2>"$work/record.err" &
rec_pid=$!
for _ in $(seq 100); do grep -q tracing "$work/record.err" 2>/dev/null && break; sleep 0.1; done
"$build/st_workload" udp-send --port "$port" --count "$datagrams" >/dev/null
wait "$rec_pid"
jq -c '{live_objects, live_capacity, map_full: .lost.map_full}' "$work/report.json"
