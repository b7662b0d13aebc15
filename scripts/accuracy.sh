#!/bin/bash
# slabtrace's accuracy against the kernel's own counts (issue 3): runs the five
# workloads under slabtrace and prints one table of what slabtrace says is
# outstanding beside what /proc/slabinfo says changed.
#
#   scripts/accuracy.sh [--quick] [--build-dir DIR] [--reports DIR]
#
# --quick      shorter runs and 10,000 datagrams instead of 50,000 (rough figures)
# --build-dir  where slabtrace and st_workload are (default: build/)
# --reports    keep every slabtrace JSON report and workload log in DIR
#
# Workloads (each in cgroup-v2 directories of its own, created under the
# cgroup2 mount and removed afterwards; only processes this script starts are
# ever moved into them):
#   churn         UDP send+read at full speed for 10 s
#   tcp           iperf3 on loopback for 10 s (slabtrace --cgroup on its cgroup)
#   leak-release  50,000 datagrams held unread 5 s, then the holder exits
#   leak-udp      50,000 datagrams on an unread UDP socket
#   leak-unix     50,000 datagrams on an unread unix datagram socketpair
#   leak-packet   AF_PACKET capture on lo never read; 50,000 datagrams to a
#                 closed port (ICMP errors and clones of both directions)
#   mixed         churn + 100,000 files created and deleted + a UDP leak,
#                 under `slabtrace check`
#
# The slabinfo delta is this script's own reading of /proc/slabinfo, taken
# right before the workload starts and after it settled (1 s), while
# slabtrace is attached; the caches of interest are shrunk first so per-CPU
# caches do not carry earlier frees into the window. ratio = slabtrace
# outstanding / slabinfo delta.
#
# Missing a target is information, not a failure: exit status 0 when every
# workload ran, 1 when one failed to run, 77 when this machine cannot run them
# (not root, no BTF).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"

# --- options -----------------------------------------------------------------

quick=0
build_dir="$root/build"
reports_dir=""
datagrams=50000
churn_seconds=10
tcp_seconds=10
hold_seconds=5
mixed_files=100000
mixed_churn_seconds=5
mixed_min_delta=10000
settle_seconds=1

usage() {
  sed -n '6,10p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
}

parse_args() {
  while (($#)); do
    case $1 in
      --quick)
        quick=1 datagrams=10000 churn_seconds=3 tcp_seconds=3 hold_seconds=2
        mixed_files=20000 mixed_churn_seconds=2 mixed_min_delta=2000 ;;
      --build-dir) build_dir=$2; shift ;;
      --reports) reports_dir=$2; shift ;;
      -h|--help) usage ;;
      *) echo "accuracy: unknown option $1" >&2; usage ;;
    esac
    shift
  done
}

# Caches whose per-CPU state is flushed before every run.
caches_of_interest=(skbuff_head_cache skbuff_small_head kmalloc-1k kmalloc-cg-1k kmalloc-512 kmalloc-cg-512
                    dentry ext4_inode_cache shmem_inode_cache inode_cache filp)

# --- small helpers -------------------------------------------------------------

log() { echo "accuracy: $*" >&2; }

# Each workload runs in a subshell of its own (so that `set -e` holds inside
# it and one failing workload does not stop the others): what it finds goes
# to files in $work.
fail() {
  log "FAILED: $*"
  echo "$*" >>"$work/failures"
}

# calc EXPR [DECIMALS]: floating-point arithmetic, which bash lacks.
calc() { awk "BEGIN { printf \"%.${2:-6}f\", $1 }"; }

show_err() {
  [[ -s $1 ]] && sed 's/^/    | /' "$1" | tail -n 5 >&2
  return 0
}

# --- processes and cgroups we create ----------------------------------------------
# Only these are ever signalled (by pid) or removed, and all go on exit.

work=""
declare -A started=()   # pids not yet waited for
declare -A held_fd=()   # pid -> fd of the FIFO that is its stdin
cgroup_mount=""
created_cgroups=()

# Ends what a workload left behind when it failed half-way.
cleanup_workload() {
  local pid dir i
  for pid in "${!started[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  wait 2>/dev/null || true
  for dir in "${created_cgroups[@]}"; do
    # The kernel tears a cgroup down lazily after its last member exits.
    for ((i = 0; i < 50; i++)); do
      [[ -d $dir ]] || break
      rmdir "$dir" 2>/dev/null && break
      sleep 0.1
    done
  done
  return 0
}

cleanup() {
  cleanup_workload
  [[ -n $work ]] && rm -rf "$work"
  return 0
}

# shellcheck source=lib/processes.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/processes.sh"

# run NAME CMD...: CMD in the foreground, output in $work/NAME.{out,err}.
run() {
  local name=$1; shift
  if ! "$@" </dev/null >"$work/$name.out" 2>"$work/$name.err"; then
    fail "$name: $*"
    show_err "$work/$name.err"
    return 1
  fi
}

# wait_line FILE PREFIX [TRIES]: waits for a line "PREFIX rest", prints rest.
wait_line() {
  local file=$1 prefix=$2 tries=${3:-600} i line
  for ((i = 0; i < tries; i++)); do
    line=$(grep -m1 "^$prefix" "$file" 2>/dev/null || true)
    if [[ -n $line ]]; then
      echo "${line#"$prefix"}"
      return 0
    fi
    sleep 0.05
  done
  return 1
}

# The cgroup2 mount point, from /proc/self/mountinfo (field 5; the file
# system type follows the " - " separator).
find_cgroup2_mount() {
  awk '{ for (i = 7; i <= NF; i++) if ($i == "-") { if ($(i + 1) == "cgroup2") { print $5; exit } break } }' \
    /proc/self/mountinfo
}

# make_cgroup NAME: creates <mount>/slabtrace-accuracy-<pid>-NAME; prints its path.
make_cgroup() {
  local dir="$cgroup_mount/slabtrace-accuracy-$$-$1"
  mkdir "$dir"
  created_cgroups+=("$dir")
  echo "$dir"
}

# remove_cgroup DIR...: after their members exited.
remove_cgroup() {
  local dir i
  for dir in "$@"; do
    for ((i = 0; i < 50; i++)); do
      rmdir "$dir" 2>/dev/null && break
      sleep 0.1
    done
    [[ -d $dir ]] && log "could not remove $dir (still busy); retried when the workload ends"
  done
  return 0
}

# in_cgroup DIR CMD...: CMD as a process that first moves itself into DIR
# (st_workload does that itself with --cgroup; other programs go through sh).
# shellcheck disable=SC2016 # expanded by that sh
in_cgroup=(/bin/sh -c 'echo $$ > "$0/cgroup.procs" && exec "$@"')

# --- what the kernel says ----------------------------------------------------------

# Lets earlier frees reach /proc/slabinfo: per-CPU caches (sheaves on 6.18)
# keep freed objects counted as active until they are flushed.
flush_caches() {
  local cache
  for cache in "${caches_of_interest[@]}"; do
    if [[ -w /sys/kernel/slab/$cache/shrink ]]; then
      echo 1 >"/sys/kernel/slab/$cache/shrink" || true
    fi
  done
  sleep 0.5
}

# slabinfo_snapshot FILE: "name active_objs" lines.
slabinfo_snapshot() {
  awk 'NR > 2 { print $1, $2 }' /proc/slabinfo >"$1"
}

# slabinfo_delta NAME: active objects at the end minus at the start of the window.
slabinfo_delta() {
  awk -v name="$1" '$1 == name { v[FILENAME] = $2 }
    END { printf "%d", v[ARGV[2]] - v[ARGV[1]] }' "$window_start" "$window_end"
}

# --- running slabtrace around a workload ----------------------------------------------

tracer_pid=""
window_start=""
window_end=""

# start_tracer RUN SUBCOMMAND [FLAGS...]: attaches slabtrace and waits until it
# traces; the report goes to $work/RUN.json once stop_tracer is called.
start_tracer() {
  local name=$1 sub=$2; shift 2
  flush_caches
  spawn "$name-slabtrace" "$slabtrace" "$sub" --duration 86400 --format json "$@"
  tracer_pid=$REPLY
  if ! wait_line "$work/$name-slabtrace.err" "slabtrace: info: tracing" 1200 >/dev/null; then
    fail "$name: slabtrace did not start tracing"
    show_err "$work/$name-slabtrace.err"
    stop "$tracer_pid" || true
    return 1
  fi
  window_start="$work/$name.slab-start"
  window_end="$work/$name.slab-end"
  slabinfo_snapshot "$window_start"
}

# stop_tracer RUN: lets the workload settle, reads /proc/slabinfo, then stops
# slabtrace (Ctrl-C) so it writes its report.
stop_tracer() {
  local name=$1
  sleep "$settle_seconds"
  slabinfo_snapshot "$window_end"
  if ! stop "$tracer_pid"; then
    fail "$name: slabtrace exited with an error"
    show_err "$work/$name-slabtrace.err"
    return 1
  fi
  mv "$work/$name-slabtrace.out" "$work/$name.json"
  jq -e . "$work/$name.json" >/dev/null || { fail "$name: slabtrace wrote no JSON report"; return 1; }
}

# report_field RUN CACHE FIELD: a number from a record report's cache entry (0 if absent).
report_field() {
  jq -r --arg c "$2" --arg f "$3" \
    '[.caches[] | select(.name == $c) | .[$f]] | first // 0' "$work/$1.json"
}

# The name /proc/slabinfo lists CACHE under (merged caches have another one).
slabinfo_name() {
  jq -r --arg c "$2" '[.caches[] | select(.name == $c) | .slabinfo_name // .name] | first // $c' "$work/$1.json"
}

leak_verdicts() {
  jq -r '[.verdicts[] | select(startswith("sk_buff leak:"))] | length' "$work/$1.json"
}

# --- the table ------------------------------------------------------------------------

# add_row WORKLOAD CACHE OUTSTANDING ALLOCS DELTA TARGET MET
add_row() {
  local ratio="-"
  (($5 != 0)) && ratio=$(calc "$3 / $5" 3)
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "$5" "$ratio" "$6" "$7" >>"$work/rows.tsv"
}

met() { if (($1)); then echo met; else echo "not met"; fi; }

# within OURS KERNEL TOLERANCE: 1 when |ours/kernel - 1| <= tolerance.
within() {
  (($2 > 0)) || { echo 0; return; }
  awk -v o="$1" -v k="$2" -v t="$3" 'BEGIN { r = o / k; print (r >= 1 - t && r <= 1 + t) ? 1 : 0 }'
}

# record_row WORKLOAD RUN CACHE TARGET MET-EXPRESSION: adds a row from a record
# report; MET-EXPRESSION is evaluated by awk with o (outstanding), a (allocs), d (delta).
record_row() {
  local workload=$1 name=$2 cache=$3 target=$4 rule=$5
  local out allocs delta ok
  out=$(report_field "$name" "$cache" outstanding)
  allocs=$(report_field "$name" "$cache" allocs)
  delta=$(slabinfo_delta "$(slabinfo_name "$name" "$cache")")
  ok=$(awk -v o="$out" -v a="$allocs" -v d="$delta" "BEGIN { print ($rule) ? 1 : 0 }")
  add_row "$workload" "$cache" "$out" "$allocs" "$delta" "$target" "$(met "$ok")"
}

print_table() {
  local fmt="%-13s %-20s %12s %11s %11s %7s  %-34s %s\n"
  echo
  echo "slabtrace accuracy against /proc/slabinfo — $(uname -r), $(date -u +%Y-%m-%dT%H:%MZ)$( ((quick)) && echo ', --quick')"
  echo "datagrams per leak: $datagrams; ratio = slabtrace outstanding / slabinfo delta"
  echo
  # shellcheck disable=SC2059
  printf "$fmt" workload cache outstanding "allocs seen" "slab delta" ratio target result
  # shellcheck disable=SC2059
  printf "$fmt" "-------------" "--------------------" "-----------" "-----------" "----------" "-----" \
    "----------------------------------" "-------"
  local w c o a d r t m
  while IFS=$'\t' read -r w c o a d r t m; do
    # shellcheck disable=SC2059
    printf "$fmt" "$w" "$c" "$o" "$a" "$d" "$r" "$t" "$m"
  done <"$work/rows.tsv"
  if [[ -s $work/notes ]]; then
    echo
    cat "$work/notes"
  fi
  if [[ -s $work/failures ]]; then
    echo
    sed 's/^/- failed to run: /' "$work/failures"
  fi
}

note() { echo "- $*" >>"$work/notes"; }

# --- the workloads (issue 3, "Numbers it must reach") ----------------------------------

# 1. Healthy UDP churn: every datagram read; nothing may look leaked.
workload_churn() {
  local cg
  cg=$(make_cgroup churn)
  start_tracer churn record --no-stacks || return 1
  run churn-workload "$workload" udp-churn --cgroup "$cg" --seconds "$churn_seconds" || { stop "$tracer_pid" || true; return 1; }
  stop_tracer churn || return 1
  remove_cgroup "$cg"
  local leaks rule="o <= 0.01 * a && o <= 5000"
  leaks=$(leak_verdicts churn)
  ((leaks == 0)) || rule="0"
  record_row churn churn skbuff_head_cache "<=1% of allocs, <=5000, no leak" "$rule"
  record_row churn churn kmalloc-1k "<=1% of allocs (data)" "o <= 0.01 * a"
  local messages seen
  messages=$(awk '/^messages/ { print $2 }' "$work/churn-workload.out")
  seen=$(report_field churn skbuff_head_cache allocs)
  note "churn: $messages messages in ${churn_seconds} s; leak verdicts: $leaks$( ((seen < 1000000)) && echo "; fewer than the 1 M allocations the issue asks for")"
}

# 2. TCP bulk on loopback: slabtrace looks at the transfer's cgroup only.
workload_tcp() {
  if ! command -v iperf3 >/dev/null; then
    fail "tcp: iperf3 is not installed (scripts/setup.sh installs it)"
    return 1
  fi
  local cg port=5299 server rel
  cg=$(make_cgroup iperf)
  rel=${cg#"$cgroup_mount"}
  spawn tcp-server "${in_cgroup[@]}" "$cg" iperf3 -s -1 -p "$port" -B 127.0.0.1
  server=$REPLY
  sleep 0.5
  start_tracer tcp record --no-stacks --cgroup "$rel" || { stop "$server" || true; return 1; }
  run tcp-client "${in_cgroup[@]}" "$cg" iperf3 -c 127.0.0.1 -p "$port" -t "$tcp_seconds" || {
    stop "$tracer_pid" || true; kill -TERM "$server" 2>/dev/null; stop "$server" || true; return 1; }
  stop_tracer tcp || return 1
  wait "$server" || true
  unset "started[$server]"
  remove_cgroup "$cg"
  # Every cache the transfer touched much, and every one with much outstanding.
  local cache shown=0
  while read -r cache; do
    record_row tcp tcp "$cache" "<=1% of allocs, or slabinfo grew too" \
      "o <= 1000 || o <= 0.01 * a || d >= 0.9 * o"
    shown=$((shown + 1))
  done < <(jq -r '.caches | sort_by(-.allocs) | .[] | select(.allocs >= 10000 or .outstanding > 1000) | .name' \
             "$work/tcp.json")
  ((shown)) || note "tcp: no cache with 10,000 allocations in the iperf3 cgroup"
  note "tcp: iperf3 $(grep -m1 -E 'sender$' "$work/tcp-client.out" | awk '{ print $(NF-3), $(NF-2) }' || true) over ${tcp_seconds} s"
}

# 3. Leak then release: 50,000 datagrams held, then the holder exits.
workload_leak_release() {
  local sender_cg holder_cg holder port
  sender_cg=$(make_cgroup sender) holder_cg=$(make_cgroup holder)
  start_tracer leak-release record || return 1
  spawn_held release-holder "$workload" udp-hold --cgroup "$holder_cg"
  holder=$REPLY
  port=$(wait_line "$work/release-holder.out" "ready ") || { fail "leak-release: holder not ready"; stop "$holder" || true; stop "$tracer_pid" || true; return 1; }
  run release-send "$workload" udp-send --cgroup "$sender_cg" --port "$port" --count "$datagrams" || true
  sleep "$hold_seconds"
  stop "$holder" || true
  stop_tracer leak-release || return 1
  remove_cgroup "$sender_cg" "$holder_cg"
  local limit=$((datagrams / 100))
  record_row leak-release leak-release skbuff_head_cache "<=1% of $datagrams (=$limit)" "o <= $limit"
  record_row leak-release leak-release kmalloc-1k "<=1% of $datagrams (data)" "o <= $limit"
}

# 4. Real leaks: outstanding within 5% of the slabinfo delta.
leak_rows() {
  local workload=$1 name=$2 data_cache=$3
  record_row "$workload" "$name" skbuff_head_cache "within 5% of slab delta" "d > 0 && o >= 0.95 * d && o <= 1.05 * d"
  record_row "$workload" "$name" "$data_cache" "within 5% of slab delta" "d > 0 && o >= 0.95 * d && o <= 1.05 * d"
}

workload_leak_udp() {
  local sender_cg holder_cg holder port
  sender_cg=$(make_cgroup sender) holder_cg=$(make_cgroup holder)
  spawn_held udp-holder "$workload" udp-hold --cgroup "$holder_cg"
  holder=$REPLY
  port=$(wait_line "$work/udp-holder.out" "ready ") || { fail "leak-udp: holder not ready"; stop "$holder" || true; return 1; }
  start_tracer leak-udp record || { stop "$holder" || true; return 1; }
  run udp-send "$workload" udp-send --cgroup "$sender_cg" --port "$port" --count "$datagrams" || true
  stop_tracer leak-udp || { stop "$holder" || true; return 1; }
  stop "$holder" || true
  remove_cgroup "$sender_cg" "$holder_cg"
  leak_rows leak-udp leak-udp kmalloc-1k
}

workload_leak_unix() {
  local cg leaker sent
  cg=$(make_cgroup unix)
  start_tracer leak-unix record || return 1
  spawn_held unix-leaker "$workload" unix-leak --cgroup "$cg" --count "$datagrams"
  leaker=$REPLY
  sent=$(wait_line "$work/unix-leaker.out" "ready ") || { fail "leak-unix: leaker not ready"; stop "$leaker" || true; stop "$tracer_pid" || true; return 1; }
  stop_tracer leak-unix || { stop "$leaker" || true; return 1; }
  stop "$leaker" || true
  remove_cgroup "$cg"
  leak_rows leak-unix leak-unix kmalloc-cg-1k
  ((sent == datagrams)) || note "leak-unix: the socketpair took $sent of $datagrams datagrams"
}

workload_leak_packet() {
  local capture_cg sender_cg capture
  capture_cg=$(make_cgroup capture) sender_cg=$(make_cgroup sender)
  spawn_held packet-capture "$workload" packet-hold --cgroup "$capture_cg"
  capture=$REPLY
  wait_line "$work/packet-capture.out" "ready " >/dev/null || { fail "leak-packet: capture not ready"; stop "$capture" || true; return 1; }
  start_tracer leak-packet record || { stop "$capture" || true; return 1; }
  # No listener on port 9: each datagram that leaves brings an ICMP error,
  # and the capture keeps clones of both directions.
  run packet-send "$workload" udp-send --cgroup "$sender_cg" --port 9 --count "$datagrams" || true
  stop_tracer leak-packet || { stop "$capture" || true; return 1; }
  stop "$capture" || true
  remove_cgroup "$capture_cg" "$sender_cg"
  leak_rows leak-packet leak-packet kmalloc-1k
}

# 5. Mixed: every cache that moved by >= min-delta agrees within 10%, or
#    check says why it cannot.
workload_mixed() {
  local churn_cg sender_cg holder_cg files_cg holder port churn dir
  churn_cg=$(make_cgroup churn) sender_cg=$(make_cgroup sender)
  holder_cg=$(make_cgroup holder) files_cg=$(make_cgroup files)
  spawn_held mixed-holder "$workload" udp-hold --cgroup "$holder_cg"
  holder=$REPLY
  port=$(wait_line "$work/mixed-holder.out" "ready ") || { fail "mixed: holder not ready"; stop "$holder" || true; return 1; }
  start_tracer mixed check --min-delta "$mixed_min_delta" || { stop "$holder" || true; return 1; }
  spawn mixed-churn "$workload" udp-churn --cgroup "$churn_cg" --seconds "$mixed_churn_seconds"
  churn=$REPLY
  dir=$(mktemp -d /tmp/slabtrace-accuracy-files.XXXXXX)
  # shellcheck disable=SC2016 # expanded by that bash
  run mixed-files "${in_cgroup[@]}" "$files_cg" /bin/bash -c \
    'cd "$1" && for ((i = 0; i < $2; i++)); do : >"f$i"; done && cd / && rm -rf "$1"' \
    files "$dir" "$mixed_files" || true
  rm -rf "$dir"
  run mixed-send "$workload" udp-send --cgroup "$sender_cg" --port "$port" --count "$datagrams" || true
  wait "$churn" || fail "mixed: udp-churn"
  unset "started[$churn]"
  stop_tracer mixed || { stop "$holder" || true; return 1; }
  stop "$holder" || true
  remove_cgroup "$churn_cg" "$sender_cg" "$holder_cg" "$files_cg"
  # check's rows carry their own slabinfo delta (over check's window, merged
  # caches under their slabinfo name); the verdict is check's.
  local cache out allocs delta verdict reason ratio ok
  while IFS=$'\t' read -r cache out allocs delta verdict ratio reason; do
    if [[ $verdict == agrees ]]; then
      ok=$(awk -v r="$ratio" 'BEGIN { print (r >= 0.9 && r <= 1.1) ? 1 : 0 }')
    else
      ok=$([[ -n $reason ]] && echo 1 || echo 0)
      note "mixed: $cache: check says \"$verdict\": $reason"
    fi
    add_row mixed "$cache" "$out" "$allocs" "$delta" "agrees ±10%, or says why" "$(met "$ok") ($verdict)"
  done < <(jq -r '.caches[] | [.cache, .outstanding, .allocs, .slabinfo_delta, .verdict, .ratio, .reason] | @tsv' \
             "$work/mixed.json")
}

# --- main ------------------------------------------------------------------------------

preflight() {
  if [[ $(id -u) -ne 0 ]]; then
    echo "accuracy: skipped: needs root (BPF programs, cgroups, SO_RCVBUFFORCE, AF_PACKET)" >&2
    exit 77
  fi
  if [[ ! -r /sys/kernel/btf/vmlinux ]]; then
    echo "accuracy: skipped: the kernel has no BTF (/sys/kernel/btf/vmlinux)" >&2
    exit 77
  fi
  slabtrace="$build_dir/slabtrace"
  workload="$build_dir/st_workload"
  local f missing=0
  for f in "$slabtrace" "$workload"; do
    [[ -x $f ]] || { echo "accuracy: $f is missing: build first (scripts/build.sh)" >&2; missing=1; }
  done
  command -v jq >/dev/null || { echo "accuracy: jq is not installed (scripts/setup.sh installs it)" >&2; missing=1; }
  ((missing == 0)) || exit 1
  cgroup_mount=$(find_cgroup2_mount)
  if [[ -z $cgroup_mount ]]; then
    echo "accuracy: no cgroup2 mount in /proc/self/mountinfo" >&2
    exit 77
  fi
}

main() {
  parse_args "$@"
  preflight
  work=$(mktemp -d /tmp/slabtrace-accuracy.XXXXXX)
  trap cleanup EXIT
  trap 'exit 130' INT TERM

  : >"$work/rows.tsv"; : >"$work/notes"; : >"$work/failures"
  local w rc failed_before
  for w in churn tcp leak_release leak_udp leak_unix leak_packet mixed; do
    log "running ${w//_/-}"
    # errexit is off for a function run as part of `||`: run it alone, in a
    # subshell that cleans up after itself, and read its status.
    failed_before=$(wc -l <"$work/failures")
    set +e
    (
      trap cleanup_workload EXIT
      set -e
      "workload_$w"
    )
    rc=$?
    set -e
    if ((rc != 0 && $(wc -l <"$work/failures") == failed_before)); then
      fail "${w//_/-} stopped with status $rc"
    fi
  done

  if [[ -n $reports_dir ]]; then
    mkdir -p "$reports_dir"
    cp "$work"/*.json "$work"/*.out "$work"/*.err "$reports_dir"/ 2>/dev/null || true
  fi
  print_table
  if [[ -s $work/failures ]]; then
    log "$(wc -l <"$work/failures") step(s) failed to run"
    exit 1
  fi
}

main "$@"
