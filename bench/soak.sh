#!/bin/bash
# Soak: `slabtrace serve` (scraped by a real Prometheus every 5 s) and
# `slabtrace stream` run for MINUTES while leaks come and go, UDP churns,
# processes, cgroups and network namespaces are created and removed, and
# sockets open and close. Prints each loader's RSS, open fds and CPU every
# minute; fails if they keep growing, a scrape fails, or either loader dies.
#
#   sudo bench/soak.sh MINUTES        (after a build; BUILD=dir for another build)
#
# The leaks are small (a few hundred datagrams each, and they are released):
# other work on the machine that measures /proc/slabinfo is disturbed little.
set -euo pipefail
minutes=${1:?usage: bench/soak.sh MINUTES}
[[ $minutes =~ ^[0-9]+$ && $minutes -ge 2 ]] || { echo "soak: MINUTES must be a whole number >= 2" >&2; exit 2; }
[[ $(id -u) -eq 0 ]] || { echo "soak: needs root (loads BPF)" >&2; exit 2; }
here=$(cd "$(dirname "$0")" && pwd)
build=${BUILD:-$here/../build}
bin=$build/slabtrace
wl=$build/st_workload
for f in "$bin" "$wl" /usr/bin/prometheus; do
  [[ -x $f ]] || { echo "soak: $f missing (scripts/build.sh; scripts/setup.sh installs prometheus)" >&2; exit 2; }
done

work=$(mktemp -d /tmp/slabtrace-soak.XXXXXX)
cg2=$(awk '$9 == "cgroup2" { print $5; exit }' /proc/self/mountinfo)
[[ -n $cg2 ]] || { echo "soak: no cgroup2 mount in /proc/self/mountinfo" >&2; exit 2; }
cgbase="$cg2/slabtrace-soak-$$"
declare -A started=()
workload_pid=

cleanup() {
  local pid
  [[ -n $workload_pid ]] && kill -TERM "$workload_pid" 2>/dev/null
  for pid in "${!started[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  # Leftover workload cgroups (their processes have exited by now).
  if [[ -d $cgbase ]]; then
    find "$cgbase" -depth -type d -exec rmdir {} + 2>/dev/null || true
  fi
  if [[ -n ${SOAK_KEEP:-} ]]; then echo "soak: kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap "exit 130" INT TERM
# spawn NAME CMD...: CMD in the background, output in $work/NAME.{out,err}; REPLY is its pid.
spawn() {
  local name=$1; shift
  "$@" </dev/null >"$work/$name.out" 2>"$work/$name.err" &
  REPLY=$!
  started[$REPLY]=1
}
# stop PID: SIGINT (slabtrace writes what it has and detaches); its exit status.
stop() {
  local pid=$1 rc=0
  kill -INT "$pid" 2>/dev/null || true
  wait "$pid" || rc=$?
  unset "started[$pid]"
  return "$rc"
}

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# wait_until SECONDS CMD...: runs CMD every 0.5 s until it succeeds.
wait_until() {
  local limit=$1 i; shift
  for ((i = 0; i < limit * 2; i++)); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.5
  done
  return 1
}

# --- the loaders and the scraper ------------------------------------------------
serve_port=$(free_port)
# --trace always: the tracer attached the whole time (the default watches
# first and would trace nothing of these small leaks).
spawn serve "$bin" serve --listen "127.0.0.1:$serve_port" --interval 5 --trace always
serve_pid=$REPLY
spawn stream "$bin" stream --interval 5
stream_pid=$REPLY
wait_until 90 curl -sf -m 2 "http://127.0.0.1:$serve_port/healthz" ||
  { echo "soak: serve never answered /healthz" >&2; cat "$work/serve.err" >&2; exit 1; }
wait_until 90 grep -q tracing "$work/stream.err" ||
  { echo "soak: stream never started" >&2; cat "$work/stream.err" >&2; exit 1; }

prom_port=$(free_port)
mkdir -p "$work/prom"
cat >"$work/prometheus.yml" <<EOF
global:
  scrape_interval: 5s
  scrape_timeout: 4s
scrape_configs:
  - job_name: slabtrace
    static_configs:
      - targets: ['127.0.0.1:$serve_port']
EOF
spawn prometheus /usr/bin/prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/prom" \
  --web.listen-address="127.0.0.1:$prom_port" --log.level=warn
prom_api="http://127.0.0.1:$prom_port/api/v1"
# promql QUERY: the first sample's value, or nothing.
promql() { curl -sf -m 5 --get --data-urlencode "query=$1" "$prom_api/query" | jq -r '.data.result[0].value[1] // empty'; }
wait_until 60 curl -sf -m 2 "http://127.0.0.1:$prom_port/-/ready" ||
  { echo "soak: Prometheus did not start" >&2; cat "$work/prometheus.err" >&2; exit 1; }

# --- the workload mix -------------------------------------------------------------
# One round every ~10 s, in the background. Every process it starts sits in a
# cgroup it created; every cgroup is removed once its processes are gone.
workload() {
  set +e
  mkdir -p "$cgbase"
  local round=0 holders=() pids=()
  # Stopped by SIGTERM: the holders go too (closing their stdin would do; a kill is quicker).
  trap 'for h in "${holders[@]}"; do kill "${h%%:*}" 2>/dev/null; done; wait; exit 0' TERM
  while :; do
    round=$((round + 1))
    local cg="$cgbase/r$round"
    mkdir -p "$cg"
    # A leak that comes: 300 datagrams to a socket nobody reads, in a cgroup of its own...
    local fifo="$work/hold$round.in" out="$work/hold$round.out" fd port=
    mkfifo "$fifo"
    "$wl" udp-hold --cgroup "$cg" <"$fifo" >"$out" &
    local hold_pid=$!
    exec {fd}>"$fifo"
    local i
    for ((i = 0; i < 50; i++)); do
      port=$(awk '/^ready/ { print $2 }' "$out" 2>/dev/null)
      [[ -n $port ]] && break
      sleep 0.1
    done
    [[ -n $port ]] && "$wl" udp-send --cgroup "$cg" --port "$port" --count 300 >/dev/null
    holders+=("$hold_pid:$fd:$cg")
    # ...and goes three rounds later (the holder exits, its cgroup is removed).
    if ((${#holders[@]} > 3)); then
      local opid ofd ocg
      IFS=: read -r opid ofd ocg <<<"${holders[0]}"
      holders=("${holders[@]:1}")
      # SIGTERM, not EOF: later holders inherit this FIFO's write end too.
      kill -TERM "$opid" 2>/dev/null
      wait "$opid" 2>/dev/null
      exec {ofd}>&-
      rmdir "$ocg" 2>/dev/null
    fi
    # A unix datagram leak in a new network namespace, gone at once.
    local ns="$cgbase/ns$round"
    mkdir -p "$ns"
    "$wl" unix-leak --cgroup "$ns" --count 200 </dev/null >/dev/null &
    pids+=($!)
    "$wl" udp-hold --cgroup "$ns" --new-netns </dev/null >/dev/null &
    pids+=($!)
    # Churn: allocations freed as fast as they come, for a second.
    "$wl" udp-churn --cgroup "$cg" --seconds 1 >/dev/null
    # Process and socket churn: short-lived processes opening and closing sockets.
    for ((i = 0; i < 20; i++)); do "$wl" udp-send --cgroup "$ns" --port 9 --count 5 >/dev/null 2>&1; done
    wait "${pids[@]}" 2>/dev/null
    pids=()
    rmdir "$ns" 2>/dev/null
    echo "$round $(date +%T)" >>"$work/rounds"
    sleep 8
  done
}
workload &
workload_pid=$!

# --- measuring ----------------------------------------------------------------------
clk=$(getconf CLK_TCK)
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
fds() { ls "/proc/$1/fd" | wc -l; }
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
alive() { kill -0 "$1" 2>/dev/null; }

declare -A first_rss first_fds first_cpu last_cpu_ticks
printf '%-6s  %-28s  %-28s  %s\n' minute "serve: RSS MiB, fds, CPU %" "stream: RSS MiB, fds, CPU %" "scrapes ok/failed (that minute)"
t_start=$(date +%s)
for p in serve stream; do
  pid_var=${p}_pid
  last_cpu_ticks[$p]=$(cpu_ticks "${!pid_var}")
done
fail=()
stream_lines_before=0
for ((m = 1; m <= minutes; m++)); do
  target=$((t_start + 60 * m))
  while (($(date +%s) < target)); do
    sleep 5
    alive "$serve_pid" || { fail+=("serve died in minute $m"); break 2; }
    alive "$stream_pid" || { fail+=("stream died in minute $m"); break 2; }
  done
  row=()
  for p in serve stream; do
    pid_var=${p}_pid
    pid=${!pid_var}
    rss=$(rss_kib "$pid")
    nfd=$(fds "$pid")
    ticks=$(cpu_ticks "$pid")
    cpu=$(awk -v a="${last_cpu_ticks[$p]}" -v b="$ticks" -v hz="$clk" 'BEGIN { printf "%.2f", (b - a) / hz / 60 * 100 }')
    last_cpu_ticks[$p]=$ticks
    if ((m == 1)); then first_rss[$p]=$rss; first_fds[$p]=$nfd; first_cpu[$p]=$cpu; fi
    eval "last_rss_$p=$rss last_fds_$p=$nfd last_cpu_$p=$cpu"
    row+=("$(printf '%7.1f %5d %7s' "$(awk -v k="$rss" 'BEGIN { print k / 1024 }')" "$nfd" "$cpu")")
    # Half-way RSS, for the growth check of the second half.
    if ((m == (minutes + 1) / 2)); then eval "half_rss_$p=$rss"; fi
  done
  ok=$(promql 'sum_over_time(up{job="slabtrace"}[1m])')
  all=$(promql 'count_over_time(up{job="slabtrace"}[1m])')
  failed=$(awk -v a="${all:-0}" -v o="${ok:-0}" 'BEGIN { print a - o }')
  rounds=$(wc -l <"$work/rounds" 2>/dev/null || echo 0)
  printf '%-6s  %-28s  %-28s  %s/%s   (workload round %s)\n' "$m" "${row[0]}" "${row[1]}" "${ok:-0}" "$failed" "$rounds"
  ((failed == 0)) || fail+=("$failed scrape(s) failed in minute $m")
  ((${all:-0} >= 6)) || fail+=("only ${all:-0} scrapes in minute $m (every 5 s wanted)")
  curl -sf -m 2 "http://127.0.0.1:$serve_port/healthz" >/dev/null || fail+=("/healthz did not answer in minute $m")
  stream_lines=$(wc -l <"$work/stream.out")
  ((stream_lines > stream_lines_before)) || fail+=("stream wrote nothing in minute $m")
  stream_lines_before=$stream_lines
done
elapsed=$(($(date +%s) - t_start))

# --- verdict --------------------------------------------------------------------------
kill -TERM "$workload_pid" 2>/dev/null; wait "$workload_pid" 2>/dev/null || true
workload_pid=
total_ok=$(promql "sum_over_time(up{job=\"slabtrace\"}[${elapsed}s])")
total=$(promql "count_over_time(up{job=\"slabtrace\"}[${elapsed}s])")
slowest=$(promql "max_over_time(scrape_duration_seconds{job=\"slabtrace\"}[${elapsed}s])")
# What serve could not track by the end (a bucket table that filled up with
# the churn's (cache, cgroup) pairs shows as buckets_full): said, not judged.
lost=$(curl -sf -m 5 --get --data-urlencode 'query=slabtrace_lost_events_total{job="slabtrace"} > 0' "$prom_api/query" |
  jq -r '[.data.result[] | "\(.metric.reason) \(.value[1])"] | join(", ")' 2>/dev/null || true)
# Cgroups come and go all the time: serve must give their buckets back
# (Session::snapshot_recycling), never run out of them.
buckets_full=$(promql 'max(slabtrace_lost_events_total{reason="buckets_full"})')
retired=$(promql 'max(slabtrace_buckets_retired_total)')
[[ ${buckets_full:-0} == 0 ]] || fail+=("serve ran out of (cache, cgroup) buckets: ${buckets_full} events lost")
prog_ids=$(cat /proc/"$serve_pid"/fdinfo/* /proc/"$stream_pid"/fdinfo/* 2>/dev/null | awk '/^prog_id:/ { print $2 }' |
  sort -un | paste -sd' ' -)

# Growth: what is held after the first minute (the warm-up: caches, names,
# the first pages) must stay flat. Slack covers allocator noise and the
# cgroups that are live at any one time.
for p in serve stream; do
  eval "rss=\$last_rss_$p nfd=\$last_fds_$p cpu=\$last_cpu_$p half=\${half_rss_$p:-\$last_rss_$p}"
  grow=$((rss - first_rss[$p]))
  allowed=$((first_rss[$p] / 5 > 16384 ? first_rss[$p] / 5 : 16384))
  ((grow <= allowed)) || fail+=("$p RSS grew by $((grow / 1024)) MiB (from $((first_rss[$p] / 1024)) MiB; allowed $((allowed / 1024)))")
  late=$((rss - half))
  ((minutes < 10 || late <= allowed / 2)) || fail+=("$p RSS still grew by $((late / 1024)) MiB in the second half")
  ((nfd <= first_fds[$p] + 16)) || fail+=("$p open fds grew from ${first_fds[$p]} to $nfd")
  awk -v a="${first_cpu[$p]}" -v b="$cpu" 'BEGIN { exit !(b <= 2 * a + 3) }' ||
    fail+=("$p CPU grew from ${first_cpu[$p]} % to $cpu % of a core")
done

((${#prog_ids} > 0)) || fail+=("found no BPF programs of serve or stream to check")
stop "$serve_pid" || fail+=("serve did not exit 0 on SIGINT: $(tail -1 "$work/serve.err")")
stop "$stream_pid" || fail+=("stream did not exit 0 on SIGINT: $(tail -1 "$work/stream.err")")
# The kernel frees a program after an RCU grace period: allow it ten seconds.
for ((i = 0; i < 20; i++)); do
  left=""
  for id in $prog_ids; do bpftool prog show id "$id" >/dev/null 2>&1 && left+=" $id"; done
  [[ -z $left ]] && break
  sleep 0.5
done
[[ -z $left ]] || fail+=("BPF programs still loaded after both exited:$left")
grep -iE "error|warn" "$work/serve.err" "$work/stream.err" | head -5 | sed 's/^/soak: loader said: /' || true

echo "soak: ${elapsed}s, $(wc -l <"$work/rounds" 2>/dev/null || echo 0) workload rounds, $(wc -l <"$work/stream.out") stream lines; scrapes ${total_ok:-0} ok of ${total:-0}, slowest ${slowest:-?} s; programs detached: $(wc -w <<<"$prog_ids"); buckets retired ${retired:-?}, lost to full buckets ${buckets_full:-?}"
echo "soak: serve's lost events at the end: ${lost:-none}"
for p in serve stream; do
  eval "rss=\$last_rss_$p nfd=\$last_fds_$p cpu=\$last_cpu_$p"
  echo "soak: $p first/last minute: RSS $((first_rss[$p] / 1024))/$((rss / 1024)) MiB, fds ${first_fds[$p]}/$nfd, CPU ${first_cpu[$p]}/$cpu % of a core"
done
if ((${#fail[@]})); then
  printf 'soak: FAIL: %s\n' "${fail[@]}" >&2
  exit 1
fi
echo "soak: PASS"
