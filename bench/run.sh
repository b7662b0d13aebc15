#!/bin/bash
# slabtrace's benchmark (issue 5): what tracing slab allocations costs, held
# against the physical floor (empty BPF programs on the same tracepoints) and
# against the bpftrace script users write today.
#
#   bench/run.sh [--rounds N] [--seconds T] [--quick] [--build-dir DIR]
#                [--scale-objects N] [--leak-datagrams K] [--quiet-wait S]
#
# --quick is the CI smoke (1 round of 1 s, 100 k objects at scale: every row,
# rough figures). Other processes' tracers would be measured as ours: each
# window first waits up to --quiet-wait S seconds (600) for them to detach.
#
# Rows:
#   throughput  st_workload udp-churn for T s with each mode attached; rounds
#               interleave the modes, ratio = median over rounds of
#               mode / nothing in the same round;
#   BPF cost    run_time_ns / run_cnt deltas per program (kernel bpf_stats,
#               bpftool prog show) over each workload window, medians;
#   map memory  slabtrace's st_* maps (bpftool map show, bytes_memlock) before
#               and after a leak of K UDP datagrams, per tracked live object;
#   scale       exact mode with >= N live objects: lost counts, the time
#               `record` takes to write its report, and the loader's CPU share
#               while `stream --interval 1` runs.
#
# The issue's targets are printed next to the figures; missing one is
# information, not a failure. Exit status: 0 when every row has a figure,
# 1 when something failed to run, 77 when this machine cannot run the
# benchmark at all (not root, no BTF).
#
# Uses the binaries in DIR (default: build/); scripts/bench.sh builds first.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"

# --- options -----------------------------------------------------------------

rounds=5
seconds=5
build_dir="$root/build"
scale_objects=1000000
leak_datagrams=100000
stream_window=10
quiet_wait=600
command_line="bench/run.sh $*"

usage() {
  sed -n '6,11p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
}

parse_args() {
  while (($#)); do
    case $1 in
      --rounds) rounds=$2; shift ;;
      --seconds) seconds=$2; shift ;;
      --build-dir) build_dir=$2; shift ;;
      --scale-objects) scale_objects=$2; shift ;;
      --leak-datagrams) leak_datagrams=$2; shift ;;
      --quiet-wait) quiet_wait=$2; shift ;;
      --quick)
        # CI smoke: every row, in well under 90 s; the figures are rough.
        rounds=1 seconds=1 scale_objects=100000 leak_datagrams=10000 stream_window=3 quiet_wait=2 ;;
      -h|--help) usage ;;
      *) echo "bench: unknown option $1" >&2; usage ;;
    esac
    shift
  done
}

# --- targets (issue 5) and references (design.md, Performance) ------------------

target_default_ratio=0.88
target_exact_ratio=0.75
target_cost_factor=2          # default mode's BPF ns per event <= this x the floor's
target_map_bytes=64           # per tracked live object, default mode
target_loader_cpu_pct=2       # streaming at 1 s with >= 1 M live objects
target_report_s=1             # record's report for >= 1 M live objects
reference_floor_ratio=0.92
reference_bpftrace_ratio=0.38

# --- modes -------------------------------------------------------------------

modes=(nothing floor default exact sampled16 sampled64 nostacks bpftrace)
slabtrace_modes=(default exact sampled16 sampled64 nostacks)
declare -A mode_label=(
  [nothing]="nothing attached"
  [floor]="floor (empty tp_btf)"
  [default]="slabtrace default"
  [exact]="slabtrace exact"
  [sampled16]="slabtrace sampled"
  [sampled64]="slabtrace sampled"
  [nostacks]="slabtrace no stacks"
  [bpftrace]="bpftrace memleak.bt"
)
declare -A mode_flags=(
  [default]=""                # whatever `slabtrace record` does with no flags
  [exact]="--sample 1 --stack-sample 1"  # every object, a stack for every object
  [sampled16]="--sample 16"
  [sampled64]="--sample 64"
  [nostacks]="--no-stacks"
)
# The four kmem programs of every mode, by kernel program name (cut at 15
# characters: bpftrace's kmem_cache_alloc program is "kmem_cache_allo").
kmem_programs='(cache_alloc|cache_allo|cache_free|kmalloc|kfree)$'
# bpftrace keeps 4096 keys per map by default: far too few to track live objects.
bpftrace_keys=1048576

# --- small helpers -------------------------------------------------------------

log() { echo "bench: $*" >&2; }

failures=0
fail() {
  log "FAILED: $*"
  failures=$((failures + 1))
}

now() { date +%s.%N; }

# calc EXPR [DECIMALS]: floating-point arithmetic, which bash lacks.
calc() { awk "BEGIN { printf \"%.${2:-6}f\", $1 }"; }

# Median of the numbers on stdin, one per line; prints nothing for none.
median() {
  sort -g | awk '{ v[NR] = $1 }
    END { if (NR == 0) exit; if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# Tail of a process's stderr, to say why something failed in one place.
show_err() {
  [[ -s $1 ]] && sed 's/^/    | /' "$1" | tail -n 5 >&2
  return 0
}

# --- processes we start ----------------------------------------------------------
# Only these are ever signalled, by pid, and all are stopped on exit.

work=""
declare -A started=()   # pids not yet waited for (a reaped pid may be reused)
declare -A held_fd=()   # pid -> fd of the FIFO that is its stdin
saved_bpf_stats=""

cleanup() {
  local pid
  for pid in "${!started[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  wait 2>/dev/null || true
  if [[ -n $saved_bpf_stats ]]; then
    sysctl -qw kernel.bpf_stats_enabled="$saved_bpf_stats" || true
  fi
  [[ -n $work ]] && rm -rf "$work"
}

# shellcheck source=../scripts/lib/processes.sh
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib/processes.sh"

alive() {
  local state
  state=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null) || return 1
  [[ ${state%% *} != Z ]]
}

# wait_line FILE PREFIX: waits for a line "PREFIX rest" and prints rest.
wait_line() {
  local file=$1 prefix=$2 i line
  for ((i = 0; i < 200; i++)); do
    line=$(grep -m1 "^$prefix " "$file" 2>/dev/null || true)
    if [[ -n $line ]]; then
      echo "${line#"$prefix "}"
      return 0
    fi
    sleep 0.05
  done
  return 1
}

# --- what the kernel says (bpf_stats, bpftool) ------------------------------------

# Ids of the BPF programs or maps (KIND prog_id / map_id) a process holds, from
# its fdinfo: Debian's bpftool 7.1 shows no owner pids, and other tracers (a
# test's slabtrace, say) may be loaded at the same time.
owned_ids() {
  { grep -hs "^$2:" /proc/"$1"/fdinfo/* || true; } | awk '{ print $2 }' | sort -un | paste -sd, -
}

# Lines "id name run_cnt run_time_ns" for the programs PID holds.
prog_snapshot() {
  local ids
  ids=$(owned_ids "$1" prog_id)
  [[ -n $ids ]] || return 0
  bpftool prog show --json | jq -r --argjson ids "[$ids]" \
    '.[] | select(.id as $i | any($ids[]; . == $i))
         | "\(.id) \(.name) \(.run_cnt // 0) \(.run_time_ns // 0)"'
}

# Lines "name events ns" between two snapshots.
prog_delta() {
  awk 'NR == FNR { cnt[$1] = $3; ns[$1] = $4; next }
       ($1 in cnt) { print $2, $3 - cnt[$1], $4 - ns[$1] }' "$1" "$2"
}

# Lines "name bytes_memlock" for slabtrace's own maps (st_*) that PID holds;
# libbpf's .rodata/.bss are a few pages and not slabtrace's data.
map_snapshot() {
  local ids
  ids=$(owned_ids "$1" map_id)
  [[ -n $ids ]] || return 0
  bpftool map show --json | jq -r --argjson ids "[$ids]" \
    '.[] | select(.id as $i | any($ids[]; . == $i)) | select(.name | startswith("st_"))
         | "\(.name) \(.bytes_memlock)"'
}

sum_column2() { awk '{ s += $2 } END { printf "%d", s }'; }

# Waits until every kmem program of PID has run at least once: then the
# programs are attached, not merely loaded. Any process on the machine
# allocates and frees often enough (bpftool itself does).
wait_attached() {
  local pid=$1 deadline=$((SECONDS + 60))
  while ((SECONDS < deadline)); do
    alive "$pid" || return 1
    if prog_snapshot "$pid" | awk -v re="$kmem_programs" \
        '$2 ~ re { n++; if ($3 == 0) idle++ } END { exit !(n > 0 && idle == 0) }'; then
      return 0
    fi
    sleep 0.1
  done
  return 1
}

# utime + stime of PID in clock ticks.
cpu_ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'; }

# --- attaching each mode --------------------------------------------------------

# start_tracer MODE TAG [EXTRA SLABTRACE FLAGS...]: attaches MODE, waits until
# its programs run; sets REPLY to the pid. Output in $work/MODE-TAG.*.
start_tracer() {
  local mode=$1 tag=$2; shift 2
  local name="$mode-$tag" flags=()
  case $mode in
    floor) spawn_held "$name" "$floor_bin" ;;
    bpftrace) spawn "$name" env BPFTRACE_MAP_KEYS_MAX=$bpftrace_keys bpftrace "$here/memleak.bt" ;;
    *)
      read -ra flags <<<"${mode_flags[$mode]}"
      spawn "$name" "$slabtrace" record --duration 86400 --format json -o "$work/$name.json" \
        "${flags[@]}" "$@"
      ;;
  esac
  local pid=$REPLY
  if ! wait_attached "$pid"; then
    fail "$mode did not attach"
    show_err "$work/$name.err"
    stop "$pid" || true
    return 1
  fi
  REPLY=$pid
}

# --- throughput and BPF cost ------------------------------------------------------

# Tracing programs of other processes (a test's slabtrace, say) run on the
# same events and CPUs and would be measured as ours. Lines: their count,
# leaving out the programs PID holds (if given).
foreign_tracers() {
  local mine=""
  [[ -n ${1:-} ]] && mine=$(owned_ids "$1" prog_id)
  bpftool prog show --json | jq --argjson mine "[$mine]" \
    '[.[] | select(.type == "tracing" or .type == "tracepoint" or .type == "raw_tracepoint"
                   or .type == "kprobe" or .type == "perf_event")
          | select(.id as $i | any($mine[]; . == $i) | not)] | length'
}

# Waits up to --quiet-wait seconds for other tracers to go; measures anyway
# after that (the header says how many windows were disturbed).
wait_quiet() {
  local deadline=$((SECONDS + quiet_wait)) said=0
  while (($(foreign_tracers) > 0)); do
    if ((SECONDS >= deadline)); then
      log "other processes' tracing programs still attached after ${quiet_wait}s: measuring anyway"
      return 0
    fi
    ((said)) || log "waiting for other processes' tracing programs to detach"
    said=1
    sleep 2
  done
}

# How MODE attached: slabtrace probes at start-up and may fall back from
# tp_btf to classic tracepoints, which costs differently; its report says so,
# and what sample rate "default" means today.
attach_mode_of() {
  case $1 in
    floor) echo tp_btf ;;
    bpftrace) echo tracepoint ;;
    *) jq -r '"\(.attach_mode // "?") 1/\(.sample_rate // "?")"' "$2" 2>/dev/null || echo "?" ;;
  esac
}

# One workload window with MODE attached: appends "round mode msgs_per_s" to
# thr.tsv and "round mode program events ns" to prog.tsv. A window during
# which another process's tracer was attached is measured again (3 tries).
windows=0
disturbed_windows=0
measure_mode() {
  local round=$1 mode=$2 attempt pid out foreign messages
  for attempt in 1 2 3; do
    wait_quiet
    pid=""
    if [[ $mode != nothing ]]; then
      start_tracer "$mode" "r$round" || return 1
      pid=$REPLY
    fi
    # Throughput without bpf_stats (two clock reads per program run, for
    # every program on the node): what a user pays. slabtrace turns them on
    # itself 1 s in 10 to report its own cost, and that stays in its figure.
    sysctl -qw kernel.bpf_stats_enabled=0
    if ! out=$("$workload" udp-churn --seconds "$seconds" 2>&1); then
      fail "udp-churn with $mode attached: $out"
      [[ -n $pid ]] && { stop "$pid" || true; }
      return 1
    fi
    # Then the BPF cost of each program, in a second window with bpf_stats on.
    sysctl -qw kernel.bpf_stats_enabled=1
    if [[ -n $pid ]]; then
      prog_snapshot "$pid" >"$work/before"
      if ! "$workload" udp-churn --seconds "$seconds" >/dev/null 2>&1; then
        fail "udp-churn (cost window) with $mode attached"
      fi
      prog_snapshot "$pid" >"$work/after"
    fi
    foreign=$(foreign_tracers "$pid")
    if [[ -n $pid ]]; then
      stop "$pid" || { fail "$mode exited with an error"; show_err "$work/$mode-r$round.err"; return 1; }
    fi
    if ((foreign == 0 || attempt == 3)); then
      break
    fi
    log "another process's tracer attached during the window: measuring $mode again"
  done
  windows=$((windows + 1))
  ((foreign == 0)) || disturbed_windows=$((disturbed_windows + 1))
  if [[ -n $pid ]]; then
    attach_mode_of "$mode" "$work/$mode-r$round.json" >"$work/attach-$mode"
  fi
  if [[ -n $pid ]]; then
    prog_delta "$work/before" "$work/after" | sed "s/^/$round $mode /" >>"$work/prog.tsv"
  fi
  messages=${out##*messages }
  echo "$round $mode $(calc "$messages / $seconds" 0)" >>"$work/thr.tsv"
}

throughput_rounds() {
  local round i n=${#modes[@]}
  for ((round = 1; round <= rounds; round++)); do
    # Rotate the order each round so no mode always runs first, or right
    # after bpftrace's big maps are being freed.
    for ((i = 0; i < n; i++)); do
      local mode=${modes[$(((i + round - 1) % n))]}
      log "round $round/$rounds: $mode"
      measure_mode "$round" "$mode" || true
      sleep 0.5
    done
  done
}

# --- map memory per live object --------------------------------------------------

# MODE attached, then a leak of K datagrams held in an unread UDP socket:
# appends "mode leak live before after" to mem.tsv, per-map figures to
# mem-maps.tsv.
map_memory_run() {
  local mode=$1 pid hold port live
  wait_quiet
  start_tracer "$mode" mem || return 1
  pid=$REPLY
  map_snapshot "$pid" >"$work/maps-before"
  spawn_held "hold-$mode" "$workload" udp-hold
  hold=$REPLY
  if ! port=$(wait_line "$work/hold-$mode.out" ready); then
    fail "udp-hold did not start"; show_err "$work/hold-$mode.err"
    stop "$hold" || true; stop "$pid" || true
    return 1
  fi
  "$workload" udp-send --port "$port" --count "$leak_datagrams" >/dev/null
  sleep 0.5
  map_snapshot "$pid" >"$work/maps-after"
  # The report is written while the leak is still held, so it counts it.
  stop "$pid" || { fail "$mode record exited with an error"; show_err "$work/$mode-mem.err"; }
  stop "$hold" || true
  if ! live=$(jq -e '.live_objects' "$work/$mode-mem.json" 2>/dev/null); then
    fail "$mode record wrote no report"
    return 1
  fi
  echo "$mode $leak_datagrams $live $(sum_column2 <"$work/maps-before") $(sum_column2 <"$work/maps-after")" \
    "$(jq -r '.sample_rate // 1' "$work/$mode-mem.json")" "$(jq -r '.live_capacity // 0' "$work/$mode-mem.json")" \
    >>"$work/mem.tsv"
  awk -v mode="$mode" 'NR == FNR { before[$1] = $2; next } { print mode, $1, $2 - before[$1], $2 }' \
    "$work/maps-before" "$work/maps-after" >>"$work/mem-maps.tsv"
}

# --- scale: >= N live objects -----------------------------------------------------

# One leak serves three measurements: record (exact) and stream (exact) are
# both attached while it builds; then stream's CPU over a window, then the
# time record takes from the stop signal to its written report.
declare -A scale=()
scale_run() {
  local datagrams=$((scale_objects * 55 / 100)) rec stream hold port t0 t1 c0 c1 ticks_per_s
  ticks_per_s=$(getconf CLK_TCK)
  wait_quiet
  local t_launch; t_launch=$(now)
  # The table sized for the objects the run makes: memory per object is then
  # what a user who sizes --max-objects for an incident pays.
  scale_max_objects=$scale_objects
  start_tracer exact scale --max-objects "$scale_max_objects" || return 1
  rec=$REPLY
  scale[startup_s]=$(calc "$(now) - $t_launch" 2)
  spawn "stream-scale" "$slabtrace" stream --interval 1 --sample 1 --max-objects "$scale_max_objects"
  stream=$REPLY
  wait_attached "$stream" || { fail "stream did not attach"; show_err "$work/stream-scale.err"; stop "$rec" || true; return 1; }

  spawn_held hold-scale "$workload" udp-hold
  hold=$REPLY
  port=$(wait_line "$work/hold-scale.out" ready) || { fail "udp-hold did not start"; return 1; }
  log "scale: leaking $datagrams datagrams (about $((datagrams * 2)) objects)"
  t0=$(now)
  "$workload" udp-send --port "$port" --count "$datagrams" >/dev/null
  scale[leak_s]=$(calc "$(now) - $t0" 1)
  scale[datagrams]=$datagrams

  # Let stream finish an interval that sees the whole leak before timing it.
  sleep 2
  log "scale: loader CPU over ${stream_window}s"
  c0=$(cpu_ticks "$stream"); t0=$(now)
  sleep "$stream_window"
  c1=$(cpu_ticks "$stream"); t1=$(now)
  scale[loader_cpu_pct]=$(calc "100 * ($c1 - $c0) / $ticks_per_s / ($t1 - $t0)" 2)
  scale[stream_lines]=$(wc -l <"$work/stream-scale.out")
  stop "$stream" || { fail "stream exited with an error"; show_err "$work/stream-scale.err"; }
  # The kernel frees stream's million-entry maps in the background after it
  # exits; timed at once, record's report would share the CPUs with that.
  sleep 3

  scale[memlock]=$(map_snapshot "$rec" | sum_column2)
  log "scale: record's report"
  t0=$(now)
  stop "$rec" || { fail "record exited with an error"; show_err "$work/exact-scale.err"; }
  scale[report_s]=$(calc "$(now) - $t0" 3)
  stop "$hold" || true

  local json="$work/exact-scale.json"
  if ! scale[live]=$(jq -e '.live_objects' "$json" 2>/dev/null); then
    fail "record wrote no report at scale"
    return 1
  fi
  scale[capacity]=$(jq -r '.live_capacity' "$json")
  scale[lost_total]=$(jq -r '[.lost[]] | add // 0' "$json")
  scale[lost]=$(jq -r '.lost | to_entries | map("\(.key)=\(.value)") | join(" ")' "$json")
  scale[report_bytes]=$(stat -c %s "$json")
}

# --- the table ------------------------------------------------------------------------

# figure VALUE: VALUE, or "n/a", which main counts as a missing row.
figure() { echo "${1:-n/a}"; }

# verdict FIGURE OP TARGET: "met" / "not met" / "-" when there is no figure.
verdict() {
  [[ -n ${1:-} && -n ${3:-} ]] || { echo "-"; return; }
  if awk -v a="$1" -v b="$3" -v op="$2" 'BEGIN { exit !(op == ">=" ? a >= b : a <= b) }'; then
    echo "met"
  else
    echo "not met"
  fi
}

ratio_of() {
  awk -v m="$1" '$2 == "nothing" { base[$1] = $3 } $2 == m { v[$1] = $3 }
    END { for (r in v) if (base[r] > 0) print v[r] / base[r] }' "$work/thr.tsv" | median
}
rate_of() { awk -v m="$1" '$2 == m { print $3 }' "$work/thr.tsv" | median; }

# Median over rounds of all the mode's BPF time divided by its kmem events:
# helper programs (softirq depth, socket links) are charged to the kmem
# events they serve, so modes compare on what one allocation or free costs.
ns_per_kmem_event() {
  [[ -s $work/prog.tsv ]] || return 0
  awk -v m="$1" -v re="$kmem_programs" '$2 == m { ns[$1] += $5; if ($3 ~ re) ev[$1] += $4 }
    END { for (r in ns) if (ev[r] > 0) print ns[r] / ev[r] }' "$work/prog.tsv" | median
}

fmt_num() {
  if [[ -n ${1:-} ]]; then printf "%.${2:-0}f" "$1"; fi
}

print_header() {
  echo "slabtrace benchmark (issue 5)"
  echo "  date      $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "  machine   $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'), $(nproc) CPUs," \
       "$(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)"
  echo "  kernel    Linux $(uname -r)"
  echo "  tools     $(bpftrace --version), $(bpftool version | head -1), slabtrace $("$slabtrace" --version 2>/dev/null | tail -1)"
  echo "  command   $command_line"
  echo "  workload  st_workload udp-churn --seconds $seconds (1 message = skb head + data buffer," \
       "allocated and freed), $rounds round(s), modes interleaved, medians"
  echo "  source    tree at run time: git $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo "?")," \
       "$(git -C "$root" status --porcelain -- bpf src include 2>/dev/null | wc -l) file(s) changed in bpf/ src/ include/;" \
       "binaries from $build_dir"
  echo "  others    workload windows with another process's tracing programs attached:" \
       "$disturbed_windows of $windows (each such window was tried 3 times)"
}

print_throughput() {
  local floor_ns default_ns
  floor_ns=$(ns_per_kmem_event floor)
  default_ns=$(ns_per_kmem_event default)
  echo
  echo "Throughput and BPF cost (ratio: median of mode/nothing per round, in windows with bpf_stats"
  echo "off, as users run it; BPF ns per kmem event: all the mode's programs' run time / events on its"
  echo "4 kmem programs, in a second window of the same attachment with bpf_stats on)"
  printf "%-22s %-14s %-16s %9s %6s %7s  %-32s %s\n" mode flags "attach, sample" msgs/s ratio "BPF ns" target verdict
  local mode ratio ns target v flags attach
  for mode in "${modes[@]}"; do
    ratio=$(ratio_of "$mode"); ns="-"; target="-"; v="-"; flags="-"; attach="-"
    if [[ $mode != nothing ]]; then
      attach=$(cat "$work/attach-$mode" 2>/dev/null || true)
    fi
    if [[ $mode != nothing ]]; then
      ns=$(fmt_num "$(ns_per_kmem_event "$mode")")
    fi
    case $mode in
      default|exact|sampled*|nostacks) flags=${mode_flags[$mode]:-"(none)"} ;;
      bpftrace) flags="keys $bpftrace_keys" ;;
    esac
    case $mode in
      floor) target="reference: $reference_floor_ratio, ~52 ns" ;;
      bpftrace) target="reference: $reference_bpftrace_ratio" ;;
      default)
        local limit; limit=$(calc "${floor_ns:-0} * $target_cost_factor" 0)
        target="ratio >= $target_default_ratio, ns <= $limit"
        v="$(verdict "$ratio" ">=" "$target_default_ratio")/$(verdict "$default_ns" "<=" "$limit")" ;;
      exact)
        target="ratio >= $target_exact_ratio"
        v=$(verdict "$ratio" ">=" "$target_exact_ratio") ;;
    esac
    printf "%-22s %-14s %-16s %9s %6s %7s  %-32s %s\n" "${mode_label[$mode]}" "$flags" \
      "$(figure "$attach")" "$(figure "$(fmt_num "$(rate_of "$mode")")")" \
      "$(figure "$(fmt_num "$ratio" 2)")" "$(figure "$ns")" "$target" "$v"
  done
}

print_programs() {
  echo
  echo "BPF cost per program (bpf_stats over each workload window; medians over rounds)"
  printf "%-22s %-22s %12s %10s\n" mode program events/round ns/event
  local mode
  for mode in "${modes[@]}"; do
    [[ $mode == nothing ]] && continue
    local lines=""
    [[ -s $work/prog.tsv ]] && lines=$(awk -v m="$mode" '$2 == m { print $3, $4, ($4 > 0 ? $5 / $4 : 0) }' "$work/prog.tsv")
    if [[ -z $lines ]]; then
      printf "%-22s %-22s %12s %10s\n" "${mode_label[$mode]}" "$(figure "")" "" ""
      continue
    fi
    local program
    for program in $(echo "$lines" | awk '{ print $1 }' | sort -u); do
      printf "%-22s %-22s %12.0f %10.0f\n" "${mode_label[$mode]}" "$program" \
        "$(echo "$lines" | awk -v p="$program" '$1 == p { print $2 }' | median)" \
        "$(echo "$lines" | awk -v p="$program" '$1 == p && $2 > 0 { print $3 }' | median)"
    done
  done
}

# Bytes of all st_* maps per object, from the map-memory run: over the
# objects the live table has room for (--max-objects: its design load, where
# a user who sized it for the incident ends up), and over the objects tracked
# in this run (small leak, big table: an upper bound, not a per-object cost).
mem_field() { awk -v m="$1" -v f="$2" '$1 == m { print $f }' "$work/mem.tsv"; }
room_bytes() {
  awk -v m="$1" '$1 == m && $7 > 0 { printf "%.1f", $5 / $7 }' "$work/mem.tsv"
}
tracked_bytes() {
  awk -v m="$1" '$1 == m && $3 > 0 { printf "%.0f", $5 / $3 }' "$work/mem.tsv"
}

print_memory() {
  echo
  echo "BPF map memory (sum of bytes_memlock of slabtrace's st_* maps, bpftool map show, while"
  echo "recording a leak of K datagrams into an unread UDP socket). The live-object table is"
  echo "preallocated: 24-byte slots, two per object of room (--max-objects, default 1 M). per room ="
  echo "all maps / room: bytes per tracked object when the table holds what it was sized for."
  printf "%-22s %-30s %8s %9s %9s %12s %9s %10s  %-9s %s\n" mode flags K tracked room "maps B" \
    "per room" "per tracked" target verdict
  local mode target v per_room
  for mode in "${slabtrace_modes[@]}"; do
    per_room=$(room_bytes "$mode"); target="-"; v="-"
    if [[ $mode == default ]]; then
      target="<= $target_map_bytes B"
      v=$(verdict "$per_room" "<=" "$target_map_bytes")
    fi
    printf "%-22s %-30s %8s %9s %9s %12s %9s %10s  %-9s %s\n" "${mode_label[$mode]}" \
      "${mode_flags[$mode]:-(none)}" "$leak_datagrams" "$(figure "$(mem_field "$mode" 3)")" \
      "$(figure "$(mem_field "$mode" 7)")" "$(figure "$(mem_field "$mode" 5)")" "$(figure "$per_room")" \
      "$(figure "$(tracked_bytes "$mode")")" "$target" "$v"
  done
  if [[ -s $work/mem-maps.tsv ]]; then
    echo "    default mode, bytes by map: $(awk '$1 == "default" { printf "%s %d  ", $2, $4 }' "$work/mem-maps.tsv")"
  fi
}

print_scale() {
  echo
  echo "Scale (slabtrace exact: --sample 1 --max-objects ${scale_max_objects:-?}; record and stream attached"
  echo "while ${scale[datagrams]:-?} datagrams leak into an unread UDP socket)"
  local live=${scale[live]:-} per_object=""
  [[ -n $live && $live -gt 0 && -n ${scale[memlock]:-} ]] && per_object=$(calc "${scale[memlock]} / $live" 1)
  printf "  %-46s %-28s %-16s %s\n" "" figure target verdict
  printf "  %-46s %-28s %-16s %s\n" "tracked live objects" "$(figure "$live")" ">= $scale_objects" \
    "$(verdict "$live" ">=" "$scale_objects" | sed 's/^met$/enough/; s/^not met$/TOO FEW/')"
  printf "  %-46s %-28s\n" "live capacity (--max-objects)" "$(figure "${scale[capacity]:-}")"
  printf "  %-46s %-28s\n" "record's 'lost' counters, summed" "$(figure "${scale[lost_total]:-}")"
  printf "  %-46s %s\n" "  counters" "${scale[lost]:-n/a}"
  printf "  %-46s %-28s\n" "st_* maps memlock, bytes per live object" "$(figure "$per_object")"
  printf "  %-46s %-28s\n" "start-up (launch to programs running), s" "$(figure "${scale[startup_s]:-}")"
  printf "  %-46s %-28s\n" "leak built in, s (two tracers attached)" "$(figure "${scale[leak_s]:-}")"
  printf "  %-46s %-28s %-16s %s\n" "record report: stop signal to exit, s" "$(figure "${scale[report_s]:-}")" \
    "<= $target_report_s s" "$(verdict "${scale[report_s]:-}" "<=" "$target_report_s")"
  printf "  %-46s %-28s\n" "  report size, bytes (JSON)" "$(figure "${scale[report_bytes]:-}")"
  printf "  %-46s %-28s %-16s %s\n" "loader CPU, stream --interval 1, % of a core" \
    "$(figure "${scale[loader_cpu_pct]:-}") over ${stream_window}s" "<= $target_loader_cpu_pct %" \
    "$(verdict "${scale[loader_cpu_pct]:-}" "<=" "$target_loader_cpu_pct")"
}

print_targets() {
  local floor_ns limit
  floor_ns=$(ns_per_kmem_event floor)
  limit=$(calc "${floor_ns:-0} * $target_cost_factor" 0)
  echo
  echo "Targets (issue 5; information, not a test)"
  printf "  %-58s %10s  %-10s %s\n" "" figure target verdict
  target_row "default mode: throughput ratio (the floor's: $(fmt_num "$(ratio_of floor)" 2))" \
    "$(fmt_num "$(ratio_of default)" 2)" ">=" "$target_default_ratio"
  target_row "default mode: BPF ns per kmem event ($target_cost_factor x floor's $(fmt_num "$floor_ns"))" \
    "$(fmt_num "$(ns_per_kmem_event default)")" "<=" "$limit"
  target_row "exact mode: throughput ratio" "$(fmt_num "$(ratio_of exact)" 2)" ">=" "$target_exact_ratio"
  target_row "default mode: st_* map bytes per tracked object (table at its room)" "$(room_bytes default)" \
    "<=" "$target_map_bytes"
  target_row "loader CPU % of a core, stream at 1 s, ${scale[live]:-?} live objects" \
    "${scale[loader_cpu_pct]:-}" "<=" "$target_loader_cpu_pct"
  target_row "record's report for ${scale[live]:-?} live objects, s" "${scale[report_s]:-}" \
    "<=" "$target_report_s"
}

target_row() {
  printf "  %-58s %10s  %-10s %s\n" "$1" "$(figure "$2")" "$3 $4" "$(verdict "$2" "$3" "$4")"
}

# --- main ---------------------------------------------------------------------------

preflight() {
  if [[ $(id -u) -ne 0 ]]; then
    echo "bench: skipped: needs root (BPF programs, bpf_stats, sockets with SO_RCVBUFFORCE)" >&2
    exit 77
  fi
  if [[ ! -r /sys/kernel/btf/vmlinux ]]; then
    echo "bench: skipped: the kernel has no BTF (/sys/kernel/btf/vmlinux); the floor is tp_btf" >&2
    exit 77
  fi
  slabtrace="$build_dir/slabtrace"
  workload="$build_dir/st_workload"
  floor_bin="$build_dir/bench/bench_floor"
  local f missing_tools=0
  for f in "$slabtrace" "$workload" "$floor_bin"; do
    [[ -x $f ]] || { echo "bench: $f is missing: build first (scripts/bench.sh does)" >&2; missing_tools=1; }
  done
  for f in bpftool bpftrace jq; do
    command -v "$f" >/dev/null || { echo "bench: $f is not installed (scripts/setup.sh installs it)" >&2; missing_tools=1; }
  done
  ((missing_tools == 0)) || exit 1
  # bpftrace reads tracepoint formats from tracefs (scripts/setup.sh mounts it too).
  [[ -e /sys/kernel/tracing/events ]] || mount -t tracefs nodev /sys/kernel/tracing
}

main() {
  parse_args "$@"
  preflight
  work=$(mktemp -d /tmp/slabtrace-bench.XXXXXX)
  trap cleanup EXIT
  trap 'exit 130' INT TERM
  : >"$work/thr.tsv"; : >"$work/prog.tsv"; : >"$work/mem.tsv"; : >"$work/mem-maps.tsv"

  # bpf_stats is switched per window (off for throughput, on for cost) and
  # restored on exit.
  saved_bpf_stats=$(sysctl -n kernel.bpf_stats_enabled)
  sysctl -qw kernel.bpf_stats_enabled=1

  throughput_rounds
  local mode
  for mode in "${slabtrace_modes[@]}"; do
    log "map memory: $mode"
    map_memory_run "$mode" || true
  done
  scale_run || true

  # Every row is printed even when a step failed; a figure that could not be
  # measured reads n/a, and any n/a makes the run fail (the CI smoke checks that).
  {
    print_header
    print_throughput
    print_programs
    print_memory
    print_scale
    print_targets
  } >"$work/table"
  cat "$work/table"
  local missing
  missing=$({ grep -o 'n/a' "$work/table" || true; } | wc -l)
  if ((missing > 0 || failures > 0)); then
    log "$failures step(s) failed; $missing figure(s) missing"
    exit 1
  fi
}

main "$@"
