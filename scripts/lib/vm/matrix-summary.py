#!/usr/bin/env python3
"""Prints scripts/test-matrix.sh's per-kernel table from the result folders.

matrix-summary.py DIR KERNEL...: DIR/KERNEL holds what matrix-guest.sh wrote
plus status (vmtest's exit status) and wall_s. A root test that leaves early
says "skipped: <reason>" (Catch2 v2 has no SKIP): it is counted as skipped,
not passed."""
import json
import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path


def read(p, default=""):
    try:
        return p.read_text().strip()
    except OSError:
        return default


def first_error(out):
    """The first failed assertion of a Catch2 log: where, what, and its values."""
    lines = out.splitlines()
    for i, l in enumerate(lines):
        if "FAILED:" in l or "Timeout" in l or "Exception" in l:
            said = [l.strip()]
            for n in lines[i + 1:i + 8]:
                n = n.strip()
                if not n or n.startswith("===") or n.startswith("---"):
                    break
                if n not in ("with expansion:", "with message:", "due to unexpected exception with message:"):
                    said.append(n)
            return said[:4]
    return [l.strip() for l in lines[-3:]]


def tests(d):
    """(passed, failed, skipped, [(name, first error lines)], [(name, reason)])"""
    try:
        root = ET.parse(d / "junit.xml").getroot()
    except (OSError, ET.ParseError):
        return None
    passed = failed = skipped = 0
    failures, skips = [], []
    for case in root.iter("testcase"):
        name = case.get("name", "?").removeprefix("root: ")
        out = "".join(e.text or "" for e in case.iter("system-out"))
        if case.find("failure") is not None or case.get("status") == "fail":
            failed += 1
            failures.append((name, first_error(out)))
        elif case.find("skipped") is not None or case.get("status") in ("notrun", "disabled"):
            skipped += 1
            skips.append((name, "not run"))
        else:
            m = re.search(r"skipped: ([^\n]*)", out)
            if m:
                skipped += 1
                skips.append((name, m.group(1).strip()))
            else:
                passed += 1
    return passed, failed, skipped, failures, skips


def features(base, kernels):
    """The kernels x features table from each guest's leak.json (leak-figures.py)."""
    head = ["kernel", "mode", "leak: caches of the sender (slabinfo delta)", "sender cgroup",
            "udp_sendmsg stacks (1 in 64, scaled)", "holder", "drop reasons", "ns/event"]
    rows = []
    for k in kernels:
        p = base / k / "leak.json"
        try:
            f = json.loads(p.read_text())
        except (OSError, ValueError):
            continue
        if "error" in f:
            rows.append([k, "-", "no figures: " + f["error"], "", "", "", "", ""])
            continue
        caches = ", ".join(f"{c['cache']} {c['objects']:,} ({c['slabinfo_delta']:+,})" for c in f["sender_caches"]) or "none"
        stacks = ", ".join(f"{c} {n:,}" for c, n in sorted(f["udp_sendmsg_stack"].items())) or "none"
        h = f.get("holder")
        holder = "none"
        if h:
            if h.get("queued_skbs"):
                holder = f"{h['comm']}: {h['queued_skbs']:,} skbs (traced)"
            else:
                holder = f"{h['comm']}: census, {(h.get('kernel_queued_bytes') or 0) / 1e6:.1f} MB queued"
            holder += "" if f.get("holder_cgroup_right") else ", WRONG cgroup"
        drops = "no" if not f["drop_reasons"] else ("yes, rx_sk" if f["drop_rx_sk"] else "yes, no rx_sk")
        rows.append([k, f.get("attach_mode") or "-", caches, "right" if f.get("sender_cgroup") else "not found",
                     stacks, holder, drops, str(f.get("ns_per_event") or "-")])
    if not rows:
        return
    print()
    print(f"Features: a {30000:,}-datagram UDP leak from cgroup A held in cgroup B (leak-figures.py)")
    table(head, rows)
    for k in kernels:
        try:
            f = json.loads((base / k / "leak.json").read_text())
        except (OSError, ValueError):
            continue
        for n in f.get("notes", []):
            if "instead of" in n or "not available" in n or "no bpf_loop" in n or "cache pointer" in n or "task_btf" in n:
                print(f"{k}: {n}")


def table(head, rows):
    widths = [max(len(r[i]) for r in rows + [head]) for i in range(len(head))]
    fmt = "| " + " | ".join("{:<%d}" % w for w in widths) + " |"
    print(fmt.format(*head))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in rows:
        print(fmt.format(*r))


def main():
    base = Path(sys.argv[1])
    rows, details = [], []
    for k in sys.argv[2:]:
        d = base / k
        status = read(d / "status", "?")
        t = tests(d)
        if status == "77" or (t is None and status == "0"):
            verdict = "SKIPPED"
        elif status == "0":
            verdict = "passed"
        else:
            verdict = "FAILED"
        p, f, s = (t[0], t[1], t[2]) if t else ("-", "-", "-")
        rows.append([k, read(d / "uname", "-"), read(d / "mode", "-"), read(d / "boot_s", "-"),
                     read(d / "suite_s", "-"), str(p), str(f), str(s), read(d / "wall_s", "-"), verdict])
        if verdict == "SKIPPED":
            why = [l for l in read(d / "vmtest.log").splitlines() if "SKIPPED" in l]
            details.append(f"{k}: {why[-1] if why else 'SKIPPED'}")
        if t:
            for name, lines in t[3]:
                details.append(f"{k}: FAILED {name}")
                details.extend("    " + l for l in lines)
            for name, why in t[4]:
                details.append(f"{k}: skipped {name}: {why}")
        elif verdict == "FAILED":
            tail = read(d / "vmtest.log").splitlines()[-3:]
            details.append(f"{k}: FAILED before the suite finished: " + " | ".join(tail))
    head = ["kernel", "uname -r", "mode", "boot s", "suite s", "passed", "failed", "skipped", "wall s", "result"]
    table(head, rows)
    for l in details:
        print(l)
    features(base, sys.argv[2:])


if __name__ == "__main__":
    main()
