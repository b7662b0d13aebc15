"""What every measurement shares: processes we start (and only those are ever
signalled), what the kernel says (bpf_stats, bpftool, /proc/slabinfo), cgroups
we create, medians, and the header that says where and when figures were taken."""

import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

SKIPPED = 77  # CTest's SKIP_RETURN_CODE: this machine cannot run the measurement


def log(prog, *words):
    print(f"{prog}: " + " ".join(str(w) for w in words), file=sys.stderr, flush=True)


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def preflight(prog, build_dir, binaries, tools):
    """Exits 77 where the measurement cannot run at all, 1 where a part is missing."""
    if os.geteuid() != 0:
        log(prog, "skipped: needs root (BPF programs, bpf_stats, cgroups, SO_RCVBUFFORCE)")
        sys.exit(SKIPPED)
    if not os.access("/sys/kernel/btf/vmlinux", os.R_OK):
        log(prog, "skipped: the kernel has no BTF (/sys/kernel/btf/vmlinux)")
        sys.exit(SKIPPED)
    missing = [b for b in binaries if not os.access(os.path.join(build_dir, b), os.X_OK)]
    for b in missing:
        log(prog, f"{os.path.join(build_dir, b)} is missing: build first (scripts/build.sh)")
    for t in tools:
        if not shutil.which(t):
            log(prog, f"{t} is not installed (scripts/setup.sh installs it)")
            missing.append(t)
    if missing:
        sys.exit(1)


# --- processes we start -------------------------------------------------------------


class Proc:
    """A background process with its output in files; `held` ones run until
    their stdin closes (st_workload's holding modes, bench_floor)."""

    def __init__(self, work, name, argv, held=False, env=None):
        self.name = name
        self.out_path = os.path.join(work, name + ".out")
        self.err_path = os.path.join(work, name + ".err")
        self._out = open(self.out_path, "w")
        self._err = open(self.err_path, "w")
        self.popen = subprocess.Popen(argv, stdin=subprocess.PIPE if held else subprocess.DEVNULL,
                                      stdout=self._out, stderr=self._err, env=env)
        self.pid = self.popen.pid

    def alive(self):
        return self.popen.poll() is None

    def out(self):
        with open(self.out_path) as f:
            return f.read()

    def err(self):
        with open(self.err_path) as f:
            return f.read()

    def err_tail(self, lines=5):
        return "".join("    | " + l for l in self.err().splitlines(True)[-lines:])

    def wait_line(self, prefix, timeout=30, stream="out"):
        """The rest of the first line starting with `prefix`, or None."""
        deadline = time.monotonic() + timeout
        while True:
            text = self.out() if stream == "out" else self.err()
            for line in text.splitlines():
                if line.startswith(prefix):
                    return line[len(prefix):].strip()
            if time.monotonic() >= deadline or not self.alive():
                return None
            time.sleep(0.05)

    def stop(self, sig=signal.SIGINT, timeout=120):
        """Closes a held process's stdin, or sends SIGINT (Ctrl-C: slabtrace and
        bpftrace write their reports and detach). Returns the exit status."""
        if self.popen.poll() is None:
            if self.popen.stdin:
                self.popen.stdin.close()
            else:
                self.popen.send_signal(sig)
        try:
            rc = self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            rc = self.popen.wait()
        self._out.close()
        self._err.close()
        return rc


class Scratch:
    """A scratch directory and the processes started in it; on exit every one
    still running is ended (by its own pid) and the directory removed."""

    def __init__(self, prefix):
        self.dir = tempfile.mkdtemp(prefix=prefix)
        self.procs = []

    def start(self, name, argv, held=False, env=None):
        p = Proc(self.dir, name, argv, held, env)
        self.procs.append(p)
        return p

    def path(self, name):
        return os.path.join(self.dir, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for p in self.procs:
            if p.alive():
                p.stop(signal.SIGTERM, timeout=30)
        shutil.rmtree(self.dir, ignore_errors=True)


def run(argv, timeout=None, env=None):
    """Runs argv to its end; (exit status, stdout + stderr)."""
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout, env=env)
    return r.returncode, r.stdout


# --- what the kernel says ------------------------------------------------------------


def bpf_stats(on):
    with open("/proc/sys/kernel/bpf_stats_enabled", "w") as f:
        f.write("1" if on else "0")


def bpf_stats_enabled():
    with open("/proc/sys/kernel/bpf_stats_enabled") as f:
        return f.read().strip() == "1"


def bpftool(*args):
    out = subprocess.run(["bpftool", *args, "--json"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                         text=True).stdout
    return json.loads(out or "[]")


def owned_ids(pid, kind):
    """Ids of the BPF programs or maps (kind "prog_id" / "map_id") a process
    holds, from its fdinfo: Debian's bpftool 7.1 shows no owner pids."""
    ids = set()
    base = f"/proc/{pid}/fdinfo"
    try:
        fds = os.listdir(base)
    except OSError:
        return ids
    for fd in fds:
        try:
            with open(os.path.join(base, fd)) as f:
                for line in f:
                    if line.startswith(kind + ":"):
                        ids.add(int(line.split()[1]))
        except OSError:
            pass
    return ids


def programs_of(pid):
    """{id: (name, run_cnt, run_time_ns)} of the programs a process holds."""
    ids = owned_ids(pid, "prog_id")
    if not ids:
        return {}
    return {p["id"]: (p["name"], p.get("run_cnt", 0), p.get("run_time_ns", 0))
            for p in bpftool("prog", "show") if p["id"] in ids}


def program_delta(before, after):
    """[(name, runs, ns)] between two programs_of() readings."""
    return [(after[i][0], after[i][1] - before[i][1], after[i][2] - before[i][2]) for i in after if i in before]


def maps_memlock(pid, prefix="st_"):
    """{name: bytes_memlock} of the maps (named prefix*) a process holds."""
    ids = owned_ids(pid, "map_id")
    return {m["name"]: m.get("bytes_memlock", 0) for m in bpftool("map", "show")
            if m["id"] in ids and m["name"].startswith(prefix)}


TRACING_TYPES = {"tracing", "tracepoint", "raw_tracepoint", "kprobe", "perf_event"}


def foreign_tracers(mine=()):
    """Tracing programs of other processes (a test's slabtrace, say): they run
    on the same events and CPUs and would be measured as ours."""
    own = set()
    for pid in mine:
        own |= owned_ids(pid, "prog_id")
    return sum(1 for p in bpftool("prog", "show") if p["type"] in TRACING_TYPES and p["id"] not in own)


def wait_quiet(prog, seconds):
    """Waits up to `seconds` for other processes' tracers to detach."""
    deadline = time.monotonic() + seconds
    said = False
    while foreign_tracers():
        if time.monotonic() >= deadline:
            log(prog, f"other processes' tracing programs still attached after {seconds:g}s: measuring anyway")
            return
        if not said:
            log(prog, "waiting for other processes' tracing programs to detach")
            said = True
        time.sleep(2)


def wait_programs_run(proc, name_pattern, timeout=60):
    """Waits until every program of proc whose name matches has run once:
    then they are attached, not merely loaded."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not proc.alive():
            return False
        progs = [p for p in programs_of(proc.pid).values() if name_pattern.search(p[0])]
        if progs and all(p[1] > 0 for p in progs):
            return True
        time.sleep(0.1)
    return False


def cpu_seconds(pid):
    """CPU time of every thread of pid, in seconds (schedstat: nanoseconds)."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
        except OSError:
            pass
    return total / 1e9


def slabinfo():
    """{cache: active objects} from /proc/slabinfo."""
    out = {}
    with open("/proc/slabinfo") as f:
        for line in f.readlines()[2:]:
            fields = line.split()
            out[fields[0]] = int(fields[1])
    return out


def cgroup2_mount():
    """The cgroup2 mount point, from /proc/self/mountinfo (the file system type
    follows the " - " separator)."""
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            if right.split()[:1] == ["cgroup2"]:
                return left.split()[4]
    return None


def machine_header(title, command, root):
    """Lines that say what was measured, where and when."""
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem_kib = int(f.readline().split()[1])
    git = subprocess.run(["git", "-C", root, "rev-parse", "--short", "HEAD"], stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, text=True).stdout.strip() or "?"
    changed = subprocess.run(["git", "-C", root, "status", "--porcelain", "--", "bpf", "src", "include"],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True).stdout.count("\n")
    return [
        title,
        f"  date      {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        f"  machine   {cpu}, {os.cpu_count()} CPUs, {mem_kib / 1048576:.0f} GiB; load {os.getloadavg()[0]:.1f} at the start",
        f"  kernel    Linux {platform.release()}",
        f"  command   {command}",
        f"  source    git {git}, {changed} file(s) changed in bpf/ src/ include/",
    ]
