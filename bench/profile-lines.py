#!/usr/bin/env python3
# Which source lines of slabtrace's BPF programs the time is on, under UDP
# churn: perf samples (cpu-clock, every CPU) joined with each program's JIT
# line table (bench_bpf_lines). bpf_stats say how long a program runs; this
# says where. A sample lands on the instruction after the one that stalled
# (skid): read a hot line together with the one before it.
#   sudo python3 bench/profile-lines.py [SECONDS] [LINES] [-- RECORD_FLAGS...]
import bisect
import collections
import os
import re
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "harness"))
from common import owned_ids  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.environ.get("ST_BUILD", os.path.join(ROOT, "build"))
args = sys.argv[1:]
flags = args[args.index("--") + 1:] if "--" in args else []
args = args[:args.index("--")] if "--" in args else args
seconds = float(args[0]) if args else 8
top = int(args[1]) if len(args) > 1 else 25
if os.geteuid() != 0:
    sys.exit("profile-lines: needs root (BPF, perf -a)")
for tool, how in (("perf", "apt-get install linux-perf"),
                  (os.path.join(BUILD, "bench", "bench_bpf_lines"), "scripts/build.sh")):
    if subprocess.run(["sh", "-c", f"command -v {tool}"], stdout=subprocess.DEVNULL).returncode:
        sys.exit(f"profile-lines: {tool} not found ({how})")

scratch = tempfile.mkdtemp(prefix="slabtrace-lines-")
rec = subprocess.Popen([os.path.join(BUILD, "slabtrace"), "record", "-d", str(seconds + 60), "-f", "json",
                        "-o", os.path.join(scratch, "report.json"), "--no-cost", *flags],
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
try:
    deadline = time.time() + 60
    while not owned_ids(rec.pid, "prog_id") and time.time() < deadline and rec.poll() is None:
        time.sleep(0.2)
    time.sleep(2)  # attached, its start-up (census, caches) done
    ids = owned_ids(rec.pid, "prog_id")
    if not ids:
        sys.exit(f"profile-lines: record attached nothing: {rec.stderr.read().strip()[-300:]}")
    data = os.path.join(scratch, "perf.data")
    perf = subprocess.run(["perf", "record", "-a", "-e", "cpu-clock", "-F", "20000", "-o", data, "--",
                           os.path.join(BUILD, "st_workload"), "udp-churn", "--seconds", str(seconds)],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if perf.returncode:
        sys.exit(f"profile-lines: perf record failed: {perf.stderr.strip()[-300:]}")
    work = perf.stdout
    # The line tables while the programs are still loaded.
    records = []
    for pid in sorted(ids):
        out = subprocess.run([os.path.join(BUILD, "bench", "bench_bpf_lines"), str(pid)],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True).stdout
        for line in out.splitlines():
            f = line.split("\t")
            if len(f) == 3:
                records.append((int(f[0], 16), f[1], f[2].strip()))
finally:
    rec.terminate()
    rec.wait(60)
records.sort()
starts = [r[0] for r in records]

script = subprocess.run(["perf", "script", "-i", data, "-F", "ip,sym"], stdout=subprocess.PIPE,
                        stderr=subprocess.DEVNULL, text=True).stdout
per_prog, per_line, total = collections.Counter(), collections.Counter(), 0
for line in script.splitlines():
    f = line.split()
    if len(f) < 2:
        continue
    total += 1
    m = re.match(r"bpf_prog_[0-9a-f]+_(\w+)", f[1])
    if not m:
        continue
    prog = m.group(1)
    per_prog[prog] += 1
    i = bisect.bisect_right(starts, int(f[0], 16)) - 1
    if i >= 0:
        per_line[(prog, records[i][1], records[i][2])] += 1

msgs = re.search(r"messages ([0-9]+)", work or "")
msgs = int(msgs.group(1)) if msgs else 0
# cpu-clock at 20 kHz: a sample is 50 us of one CPU.
per_msg = (lambda n: f"{n * 50000 / msgs:7.1f}") if msgs else (lambda n: "      -")
print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: {seconds:g} s of UDP churn, {msgs:,} messages, "
      f"{total:,} samples; record {' '.join(flags) or '(default)'}")
print(f"{'program':28s} {'samples':>8s} {'ns/msg':>7s}")
for prog, n in per_prog.most_common():
    print(f"{prog:28s} {n:8,d} {per_msg(n)}")
print(f"\n{'samples':>8s} {'ns/msg':>7s} {'of prog':>7s}  program / line")
for (prog, where, text), n in per_line.most_common(top):
    print(f"{n:8,d} {per_msg(n)} {100 * n / per_prog[prog]:6.1f}%  {prog} {where}  {text[:80]}")
