#!/usr/bin/env python3
# A watching serve against nothing attached, on iperf3 over loopback (client
# and server pinned to CPUs 0 and 1) or on the bench's process churn (fork +
# exec /bin/true, one at a time): ROUNDS alternating pairs of windows (order
# flipped every round); per arm every window and the median, and the ratio of
# the medians. The bench's three windows per mode are too few for these
# workloads; this is the longer look.
#   sudo python3 bench/serve-watch-ab.py [ROUNDS] [SECONDS] [tcp-bulk|exec-churn]
import json, os, statistics, subprocess, sys, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SLABTRACE = os.environ.get("SLABTRACE", os.path.join(ROOT, "build", "slabtrace"))
rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 6
seconds = int(sys.argv[2]) if len(sys.argv) > 2 else 4
workload = sys.argv[3] if len(sys.argv) > 3 else "tcp-bulk"
WORKLOAD = os.environ.get("ST_WORKLOAD", os.path.join(ROOT, "build", "st_workload"))
UNIT = {"tcp-bulk": "MiB/s", "exec-churn": "execs/s"}
if workload not in UNIT:
    sys.exit(f"serve-watch-ab: unknown workload {workload}: tcp-bulk or exec-churn")


def iperf():
    server = subprocess.Popen(["iperf3", "-s", "-1", "-p", "5998", "-B", "127.0.0.1"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.3)
    out = subprocess.run(["iperf3", "-c", "127.0.0.1", "-p", "5998", "-t", str(seconds), "-J", "-A", "0,1"],
                         capture_output=True, text=True).stdout
    server.wait()
    return json.loads(out)["end"]["sum_received"]["bits_per_second"] / 8 / 2**20  # MiB/s


def exec_churn():
    out = subprocess.run([WORKLOAD, "exec-churn", "--seconds", str(seconds)], capture_output=True, text=True).stdout
    words = out.split()
    if "execs" not in words:
        sys.exit(f"serve-watch-ab: st_workload exec-churn said {out.strip()!r}")
    return int(words[words.index("execs") + 1]) / seconds


def watching_serve():
    p = subprocess.Popen([SLABTRACE, "serve", "--listen", "127.0.0.1:9498"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    for line in p.stderr:
        if "watching" in line:
            return p
    sys.exit(f"serve-watch-ab: serve exited before watching (status {p.wait()})")


windows = {"nothing": [], "serve watching": []}
for r in range(rounds):
    for arm in (["nothing", "serve watching"] if r % 2 == 0 else ["serve watching", "nothing"]):
        serve = watching_serve() if arm != "nothing" else None
        windows[arm].append(iperf() if workload == "tcp-bulk" else exec_churn())
        if serve:
            serve.terminate()
            serve.wait()
print(time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), f"{rounds} rounds of {seconds} s, {workload}, {UNIT[workload]}")
for arm, v in windows.items():
    print(f"{arm:<16} median {statistics.median(v):>7.0f}   windows " + " ".join(f"{x:.0f}" for x in v))
print(f"ratio of medians {statistics.median(windows['serve watching']) / statistics.median(windows['nothing']):.3f}")
