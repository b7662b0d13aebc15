#!/usr/bin/env python3
# The default mode's cost, A/B: arms of `slabtrace record` (a binary and its
# flags) under the same UDP churn, in rounds with the order rotated; per arm the
# medians of slabtrace's own bpf_stats figures (ns per event, all programs and the
# kmem ones), messages per second and missed_frees. bpf_stats are on for a
# second in ten, as in every record run: compare arms, not with the bench table.
#   sudo python3 bench/record-ab.py ROUNDS 'OLD_BINARY [FLAGS]' 'NEW_BINARY [FLAGS]' ...
import json, os, re, statistics, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKLOAD = os.environ.get("ST_WORKLOAD", os.path.join(ROOT, "build", "st_workload"))
CHURN_S, RECORD_S, LEAD_S = 5.5, 4, 0.7

rounds, arms = int(sys.argv[1]), [a.split() for a in sys.argv[2:]]
results = [{} for _ in arms]
scratch = tempfile.mkdtemp(prefix="slabtrace-ab-")
for r in range(rounds):
    order = list(range(len(arms)))
    order = order[r % len(order):] + order[:r % len(order)]
    for i in order:
        churn = subprocess.Popen([WORKLOAD, "udp-churn", "--seconds", str(CHURN_S)], stdout=subprocess.PIPE, text=True)
        time.sleep(LEAD_S)  # attach to churn already running, as on a node
        out = os.path.join(scratch, f"arm{i}.json")
        run = subprocess.run(arms[i][:1] + ["record", "-d", str(RECORD_S), "-f", "json", "-o", out] + arms[i][1:],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        said = churn.communicate()[0]
        if run.returncode:
            sys.exit(f"record-ab: arm {' '.join(arms[i])} failed: {run.stderr.strip()[-300:]}")
        report = json.load(open(out))
        m = re.search(r"messages ([0-9]+)", said)
        d = results[i]
        d.setdefault("msgs/s", []).append(int(m.group(1)) / CHURN_S if m else float("nan"))
        ns = events = 0
        for c in report["cost"]:
            d.setdefault(c["program"], []).append(c["ns_per_event"])
            ns += c["ns_per_event"] * c["events"]
            events += c["events"]
        d.setdefault("all", []).append(ns / max(events, 1))
        d.setdefault("missed_frees", []).append(report["lost"]["missed_frees"])

keys = ["all", "st_btf_cache_alloc", "st_btf_kmalloc", "st_btf_kfree", "msgs/s", "missed_frees"]
print(time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), f"{rounds} rounds, load", open("/proc/loadavg").read().split()[0])
print(f"{'arm':<44}" + "".join(f"{k.replace('st_btf_', ''):>14}" for k in keys))
for arm, d in zip(arms, results):
    row = "".join(f"{statistics.median(d[k]) if k in d else float('nan'):>14.1f}" for k in keys)
    print(f"{' '.join(arm)[-44:]:<44}{row}")
