#!/usr/bin/env python3
# serve's idle cost, A/B: two watching serves (binaries A and B) side by side on
# this node, each one's CPU as the sum of every thread's schedstat over a window.
# Side by side, so that both see the same node; swap the order to check.
#   sudo python3 bench/idle-ab.py OLD_BINARY NEW_BINARY [SECONDS]
import os, subprocess, sys, time
a, b, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3]) if len(sys.argv) > 3 else 60
def cpu(pid):
    t = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            t += int(open(f"/proc/{pid}/task/{tid}/schedstat").read().split()[0])
        except OSError:
            pass
    return t / 1e9
procs = []
for i, binary in enumerate((a, b)):
    procs.append(subprocess.Popen([binary, "serve", "--listen", f"127.0.0.1:{19464 + i}"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
time.sleep(4)
c0 = [cpu(p.pid) for p in procs]; t0 = time.monotonic()
time.sleep(seconds)
c1 = [cpu(p.pid) for p in procs]; wall = time.monotonic() - t0
for p in procs:
    p.terminate(); p.wait()
for name, x, y in zip((a, b), c0, c1):
    print(f"{name}: {100 * (y - x) / wall:.4f} % of a core over {wall:.1f} s")
print("load", open("/proc/loadavg").read().strip())
