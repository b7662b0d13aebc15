#!/bin/bash
# Remakes the pictures in docs/ from a real UDP leak (as root, after a build):
#   docs/make-pictures.sh svg   leak-flamegraph.svg and .png (rsvg-convert, librsvg2-bin)
#   docs/make-pictures.sh top   top-screen.txt: an 80x24 tmux screen of `slabtrace top`
# /demo-sender and /demo-batch send datagrams to a UDP socket in /demo-holder
# that is never read. The holder has a network namespace of its own, so that
# nothing else on the machine (a packet socket on lo) sees or clones them.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
CG=$(findmnt -t cgroup2 -n -o TARGET | head -1)
mkdir "$CG/demo-holder" "$CG/demo-sender" "$CG/demo-batch"
cleanup() {
  exec 3>&- || true
  [ -n "${HOLDER:-}" ] && wait "$HOLDER" 2>/dev/null || true
  tmux -S "$WORK/tmux.socket" kill-server 2>/dev/null || true
  sleep 0.5  # the kernel frees an emptied cgroup lazily
  rmdir "$CG/demo-holder" "$CG/demo-sender" "$CG/demo-batch"
  rm -r "$WORK"
}
WORK=$(mktemp -d)
trap cleanup EXIT
mkfifo "$WORK/hold"
"$BUILD/st_workload" udp-hold --new-netns --cgroup "$CG/demo-holder" <"$WORK/hold" >"$WORK/ready" &
HOLDER=$!
exec 3>"$WORK/hold"  # the holder keeps its socket until this closes
for _ in $(seq 50); do grep -q ready "$WORK/ready" && break; sleep 0.1; done
PORT=$(awk '/ready/ {print $2}' "$WORK/ready")
send() {
  "$BUILD/st_workload" udp-send --join-netns "$HOLDER" --cgroup "$CG/$1" --port "$PORT" --count "$2" --size 600 >/dev/null
}

case "${1:-}" in
svg)
  "$BUILD/slabtrace" record --duration 5 --svg docs/leak-flamegraph.svg >"$WORK/report" 2>"$WORK/log" &
  RECORD=$!
  for _ in $(seq 100); do grep -q tracing "$WORK/log" && break; sleep 0.1; done
  send demo-sender 30000
  send demo-batch 10000
  wait "$RECORD"
  rsvg-convert docs/leak-flamegraph.svg -o docs/leak-flamegraph.png
  ;;
top)
  tmux -S "$WORK/tmux.socket" new-session -d -x 80 -y 24 -s top "$BUILD/slabtrace top --interval 1 2>/dev/null"
  sleep 3
  for i in $(seq 10); do
    send demo-sender 4000
    if [ "$i" -gt 5 ]; then send demo-batch 1500; fi
    sleep 0.85
  done
  tmux -S "$WORK/tmux.socket" capture-pane -p -t top >docs/top-screen.txt
  tmux -S "$WORK/tmux.socket" send-keys -t top q
  sleep 1
  ;;
*)
  echo "usage: $0 svg|top" >&2
  exit 2
  ;;
esac
