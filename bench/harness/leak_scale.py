"""slabtrace against one big leak (issue 5, scale): `record --max-objects ROOM`
while DATAGRAMS UDP datagrams (two live objects each) leak into one unread
socket. Prints how long the leak took, kernel slab memory, slabtrace's map
memory, the report's time after SIGINT, what was lost (map_full: inserts that
found no slot), and slabinfo beside slabtrace's counts.

  4194304 2100000   the seed incident's size: the socket's buffer stops the
                    leak near 1.68 M datagrams, 3.36 M live objects
  65536 52000       a table past its room: ~105,000 objects, 160 % of room"""

import json
import os
import time

from common import Scratch, log, maps_memlock, preflight, run

PROG = "leak-scale"


def add_arguments(p):
    p.add_argument("room", type=int, help="--max-objects")
    p.add_argument("datagrams", type=int, help="datagrams to leak")


def main(args, root):
    preflight(PROG, args.build_dir, ["slabtrace", "st_workload"], ["bpftool"])
    slabtrace = os.path.join(args.build_dir, "slabtrace")
    workload = os.path.join(args.build_dir, "st_workload")
    with Scratch("slabtrace-leak-scale.") as s:
        hold = s.start("hold", [workload, "udp-hold"], held=True)
        port = hold.wait_line("ready ")
        if port is None:
            log(PROG, "udp-hold did not start\n" + hold.err_tail())
            return 1
        report = s.path("report.json")
        rec = s.start("record", [slabtrace, "record", "--duration", "3600", "--format", "json",
                                 "--max-objects", str(args.room), "-o", report])
        if rec.wait_line("slabtrace: info: tracing", timeout=120, stream="err") is None:
            log(PROG, "record did not start tracing\n" + rec.err_tail())
            return 1
        t0 = time.monotonic()
        run([workload, "udp-send", "--port", port, "--count", str(args.datagrams)])
        print(f"leak sent in {time.monotonic() - t0:.1f} s")
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith(("Slab:", "SUnreclaim:")):
                    print(line.strip())
        print("st_* maps, bytes:", sum(maps_memlock(rec.pid).values()))
        t0 = time.monotonic()
        rc = rec.stop()
        print(f"report written {time.monotonic() - t0:.2f} s after SIGINT (status {rc})")
        hold.stop()
        with open(report) as f:
            r = json.load(f)
        skb = r.get("skb", {})
        print(json.dumps({"live_objects": r.get("live_objects"), "live_capacity": r.get("live_capacity"),
                          "lost": r.get("lost"), "heads": skb.get("outstanding_heads"), "data": skb.get("outstanding_data"),
                          "holders": [{k: h.get(k) for k in ("pid", "comm", "queued_skbs")} for h in skb.get("holders", [])]}))
        for c in r.get("caches", []):
            if c.get("outstanding", 0) > 10000:
                print(json.dumps({k: c.get(k) for k in ("name", "outstanding", "slabinfo")}))
    return 0
