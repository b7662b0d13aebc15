#!/bin/bash
# slabtrace against one big leak (issue 5, scale): `record --max-objects ROOM`
# while DATAGRAMS UDP datagrams (two live objects each) leak into one unread
# socket. Prints how long the leak took, kernel slab memory, slabtrace's map
# memory, the report's time after SIGINT, what was lost (map_full: inserts
# that found no slot), and slabinfo beside slabtrace's counts.
#
#   sudo bench/leak-scale.sh ROOM DATAGRAMS     (after a build; BUILD=dir for another)
#
#   4194304 2100000   the seed incident's size: the socket's buffer stops the
#                     leak near 1.68 M datagrams, 3.36 M live objects
#   65536 52000       a table past its room: ~105,000 objects, 160 % of room
set -euo pipefail
room=${1:?room (--max-objects)}
datagrams=${2:?datagrams to leak}
build=${BUILD:-$(dirname "$0")/../build}

work=$(mktemp -d /tmp/slabtrace-leak-scale.XXXXXX)
declare -A started=() held_fd=()
cleanup() {
  local pid
  for pid in "${!started[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
# shellcheck source=../scripts/lib/processes.sh
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib/processes.sh"

# wait_for FILE PATTERN: up to 10 s for a line matching PATTERN.
wait_for() {
  local i
  for ((i = 0; i < 100; i++)); do
    grep -q "$2" "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "leak-scale: no '$2' in $1" >&2
  return 1
}

spawn_held hold "$build/st_workload" udp-hold
hold=$REPLY
wait_for "$work/hold.out" '^ready'
port=$(awk '/^ready/ { print $2 }' "$work/hold.out")

spawn record "$build/slabtrace" record --duration 3600 --format json --max-objects "$room" -o "$work/report.json"
rec=$REPLY
wait_for "$work/record.err" tracing

t0=$(date +%s.%N)
"$build/st_workload" udp-send --port "$port" --count "$datagrams" >/dev/null
echo "leak sent in $(echo "$(date +%s.%N) - $t0" | bc) s"
grep -E "^(Slab|SUnreclaim):" /proc/meminfo
ids=$(grep -hs '^map_id:' /proc/"$rec"/fdinfo/* | awk '{ print $2 }' | sort -un | paste -sd, -)
bpftool map show --json | jq --argjson ids "[$ids]" \
  '[.[] | select(.id as $i | any($ids[]; . == $i)) | select(.name | startswith("st_")) | .bytes_memlock] | add' |
  awk '{ print "st_* maps, bytes:", $1 }'

t0=$(date +%s.%N)
stop "$rec"
echo "report written $(echo "$(date +%s.%N) - $t0" | bc) s after SIGINT"
stop "$hold" || true
jq -c '{live_objects, live_capacity, lost, heads: .skb.outstanding_heads, data: .skb.outstanding_data,
        holders: [.skb.holders[] | {pid, comm, queued_skbs}]}' "$work/report.json"
jq -c '.caches[] | select(.outstanding > 10000) | {name, outstanding, slabinfo}' "$work/report.json"
