# Background processes for slabtrace's measurement scripts (bench/run.sh,
# scripts/accuracy.sh). The caller declares `work` (a scratch directory) and
# the associative arrays `started` (pids not yet waited for) and `held_fd`
# (pid -> fd of the FIFO that is its stdin), and reaps `started` on exit.

# spawn NAME CMD...: CMD in the background, output in $work/NAME.{out,err};
# sets REPLY to its pid.
spawn() {
  local name=$1; shift
  "$@" </dev/null >"$work/$name.out" 2>"$work/$name.err" &
  REPLY=$!
  started[$REPLY]=1
}

# spawn_held NAME CMD...: like spawn, for tools that run until stdin closes
# (st_workload's holding modes, bench_floor). A background job's stdin is
# /dev/null, which would end them at once: give them a FIFO we keep open.
spawn_held() {
  local name=$1; shift
  local fifo="$work/$name.in" fd
  mkfifo "$fifo"
  "$@" <"$fifo" >"$work/$name.out" 2>"$work/$name.err" &
  REPLY=$!
  started[$REPLY]=1
  exec {fd}>"$fifo"
  held_fd[$REPLY]=$fd
}

# stop PID: closes a held process's stdin, or sends SIGINT (Ctrl-C: slabtrace
# and bpftrace write their reports and detach); returns its exit status.
stop() {
  local pid=$1 rc=0
  if [[ -n ${held_fd[$pid]:-} ]]; then
    local fd=${held_fd[$pid]}
    exec {fd}>&-
    unset "held_fd[$pid]"
  else
    kill -INT "$pid" 2>/dev/null || true
  fi
  wait "$pid" || rc=$?
  unset "started[$pid]"
  return "$rc"
}
