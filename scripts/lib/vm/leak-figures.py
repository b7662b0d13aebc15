#!/usr/bin/env python3
"""leak-figures.py BUILD OUT.json: the kernel matrix's feature figures.

One UDP leak, as issue 11 asks for it on every kernel: a socket that never
reads, in cgroup B, and DATAGRAMS datagrams of 200 B sent to it from cgroup A,
under `slabtrace record` (every object tracked). Writes what slabtrace said
against what the kernel says (/proc/slabinfo deltas, the socket's queue) and
what this kernel offers (attach mode, drop reasons, rx_sk, cost per event),
for matrix-summary.py's features table. Runs inside a scripts/vmtest.sh guest
or on the host (scripts/vmtest.sh host ...; root, the lock). Exit status 0
when the figures were taken, whatever they say; 1 when they could not be."""
import json
import os
import signal
import subprocess
import sys
import time

# /proc/slabinfo and the cgroup2 mount, read as every measurement reads them.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "bench", "harness"))
from common import cgroup2_mount, slabinfo as slab_active  # noqa: E402

DATAGRAMS = 30000


def settled_active(cache, timeout=60):
    """The cache's active count once it stops moving (sends reach the queue late in a slow guest)."""
    last, deadline = None, time.monotonic() + timeout
    while time.monotonic() < deadline:
        now = slab_active()
        if last is not None and now.get(cache) == last.get(cache):
            return now
        last = now
        time.sleep(1)
    return last


def has_field(category, event, field):
    for base in ("/sys/kernel/tracing/events", "/sys/kernel/debug/tracing/events"):
        try:
            with open(f"{base}/{category}/{event}/format") as f:
                if any(f" {field};" in l for l in f if "field:" in l):
                    return True
        except OSError:
            pass
    return False


def main():
    build, out_path = sys.argv[1], sys.argv[2]
    mount = cgroup2_mount()
    if not mount:
        raise SystemExit("leak-figures: no cgroup2 mount")
    tag = f"slabtrace-test-{os.getpid()}"
    a, b = f"{mount}/{tag}-a", f"{mount}/{tag}-b"
    os.makedirs(a)
    os.makedirs(b)
    wl = f"{build}/st_workload"
    fig = {"kernel": os.uname().release}
    holder = tracer = None
    try:
        holder = subprocess.Popen([wl, "udp-hold", "--cgroup", b], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        port = int(holder.stdout.readline().split()[1])
        tracer = subprocess.Popen([f"{build}/slabtrace", "record", "--duration", "3600", "--format", "json"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        t0 = time.monotonic()
        said = []
        for line in tracer.stderr:
            said.append(line.rstrip())
            if "tracing for" in line:
                break
        fig["start_s"] = round(time.monotonic() - t0, 1)
        before = slab_active()
        subprocess.run([wl, "udp-send", "--cgroup", a, "--port", str(port), "--count", str(DATAGRAMS), "--size", "200"],
                       check=True, stdout=subprocess.DEVNULL)
        after = settled_active("skbuff_head_cache")
        tracer.send_signal(signal.SIGINT)
        report_text, rest = tracer.communicate(timeout=600)
        said += rest.splitlines()
        fig["log"] = [l for l in said if "libbpf" not in l][:12]
        r = json.loads(report_text)
    except (OSError, ValueError, subprocess.SubprocessError, IndexError) as e:
        fig["error"] = str(e)
        with open(out_path, "w") as f:
            json.dump(fig, f, indent=1)
        return 1
    finally:
        for p in (tracer, holder):
            if p and p.poll() is None:
                if p is holder:
                    p.stdin.close()
                p.terminate()
                p.wait()
        for d in (a, b):
            for _ in range(50):
                try:
                    os.rmdir(d)
                    break
                except OSError:
                    time.sleep(0.1)

    rel_a = "/" + os.path.relpath(a, mount)
    sender = next((c for c in r["cgroups"] if c.get("path") == rel_a), None)
    by_cache = sender["by_cache"] if sender else {}
    # The sender's caches that hold the leak: those with (nearly) one object per datagram.
    leak = {name: n for name, n in by_cache.items() if n >= DATAGRAMS * 0.9}
    fig["attach_mode"] = r.get("attach_mode")
    fig["notes"] = r.get("notes", [])
    fig["sender_caches"] = [{"cache": name, "objects": n, "slabinfo_delta": after.get(name, 0) - before.get(name, 0)}
                            for name, n in sorted(leak.items(), key=lambda kv: -kv[1])]
    fig["sender_cgroup"] = rel_a if sender else None
    # Per cache: the sender's stacks through udp_sendmsg (sampled 1 in 64, scaled).
    fig["udp_sendmsg_stack"] = {}
    for s in r["stacks"]:
        if "udp_sendmsg" in s["frames"] and s.get("cgroup_id") == (sender or {}).get("id") and s["cache"] in leak:
            fig["udp_sendmsg_stack"][s["cache"]] = fig["udp_sendmsg_stack"].get(s["cache"], 0) + s["outstanding"]
    h = next((h for h in r["skb"]["holders"] if h.get("pid") == holder.pid), None)
    fig["holder"] = None if not h else {k: h.get(k) for k in ("pid", "comm", "cgroup_path", "queued_skbs",
                                                             "kernel_queued_bytes", "kernel_queued_skbs")}
    fig["holder_cgroup_right"] = bool(h and h.get("cgroup_path") == "/" + os.path.relpath(b, mount))
    fig["drop_reasons"] = has_field("skb", "kfree_skb", "reason")
    fig["drop_rx_sk"] = has_field("skb", "kfree_skb", "rx_sk")
    fig["sk_data_ready"] = os.path.exists("/sys/kernel/tracing/events/sock/sk_data_ready")
    cost = next((f for f in r.get("findings", []) if f.get("kind") == "self_cost"), None)
    fig["ns_per_event"] = round(cost["per_s"]) if cost else None
    fig["lost"] = r.get("lost")
    with open(out_path, "w") as f:
        json.dump(fig, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
