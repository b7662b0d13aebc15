#!/usr/bin/env python3
# A watching serve against nothing attached, on iperf3 over loopback: ROUNDS
# alternating pairs of windows (order flipped every round), client and server
# pinned to CPUs 0 and 1; per arm every window and the median, and the ratio of
# the medians. The bench's three windows per mode are too few for this
# workload; this is the longer look.
#   sudo python3 bench/serve-watch-ab.py [ROUNDS] [SECONDS]
import json, os, statistics, subprocess, sys, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SLABTRACE = os.environ.get("SLABTRACE", os.path.join(ROOT, "build", "slabtrace"))
rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 6
seconds = int(sys.argv[2]) if len(sys.argv) > 2 else 4


def iperf():
    server = subprocess.Popen(["iperf3", "-s", "-1", "-p", "5998", "-B", "127.0.0.1"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.3)
    out = subprocess.run(["iperf3", "-c", "127.0.0.1", "-p", "5998", "-t", str(seconds), "-J", "-A", "0,1"],
                         capture_output=True, text=True).stdout
    server.wait()
    return json.loads(out)["end"]["sum_received"]["bits_per_second"] / 8 / 2**20  # MiB/s


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
        windows[arm].append(iperf())
        if serve:
            serve.terminate()
            serve.wait()
print(time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), f"{rounds} rounds of {seconds} s, MiB/s")
for arm, v in windows.items():
    print(f"{arm:<16} median {statistics.median(v):>7.0f}   windows " + " ".join(f"{x:.0f}" for x in v))
print(f"ratio of medians {statistics.median(windows['serve watching']) / statistics.median(windows['nothing']):.3f}")
