"""slabtrace's accuracy against the kernel's own counts (issue 3), as a table.

The figures come from the root tests themselves (tests/root/test_accuracy.cpp):
each test case runs on its own with SLABTRACE_ACCURACY_ROWS set and appends one
row per cache it judges, with the target its CHECKs hold it to. A row's result
is whether its test case passed — the same workloads (build/st_workload), the
same conditions, written once. Exit status: 0 when every test case ran, 1 when
one failed to run, 77 when this machine cannot run them."""

import json
import os

from common import SKIPPED, log, preflight, run

PROG = "accuracy"


def test_cases(binary, tags):
    rc, out = run([binary, "--list-test-names-only", tags])
    return [line.strip() for line in out.splitlines() if line.strip() and not line.startswith(" ")] if rc >= 0 else []


def add_arguments(p):
    p.add_argument("--tags", default="[accuracy]", help="Catch2 tags of the test cases to run")
    p.add_argument("--reports", help="keep each test case's output in this directory")
    p.add_argument("-o", "--output", help="also write the table to this file")


def main(args, root):
    preflight(PROG, args.build_dir, ["root_tests", "slabtrace", "st_workload"], [])
    binary = os.path.join(args.build_dir, "root_tests")
    cases = test_cases(binary, args.tags)
    if not cases:
        log(PROG, f"no test case matches {args.tags} in {binary}")
        return 1
    rows, results, failed_to_run = [], [], []
    import tempfile
    with tempfile.TemporaryDirectory(prefix="slabtrace-accuracy.") as work:
        for i, case in enumerate(cases):
            log(PROG, f"running: {case}")
            rows_file = os.path.join(work, f"rows-{i}.ndjson")
            env = dict(os.environ, SLABTRACE_ACCURACY_ROWS=rows_file)
            # Catch2 treats a name with a comma or brackets as a filter expression; quote-escape it.
            name = case.replace("\\", "\\\\").replace(",", "\\,").replace("[", "\\[")
            rc, out = run([binary, name], env=env, timeout=900)
            if args.reports:
                os.makedirs(args.reports, exist_ok=True)
                with open(os.path.join(args.reports, f"case-{i}.txt"), "w") as f:
                    f.write(case + "\n" + out)
            case_rows = []
            if os.path.exists(rows_file):
                with open(rows_file) as f:
                    case_rows = [json.loads(line) for line in f if line.strip()]
            if rc == SKIPPED or "skipped:" in out and not case_rows:
                failed_to_run.append(f"{case}: skipped ({out.strip().splitlines()[-1] if out.strip() else '?'})")
                continue
            if not case_rows:
                failed_to_run.append(f"{case}: status {rc}, no rows\n{out[-600:]}")
                continue
            result = "met" if rc == 0 else "NOT MET"
            results.append((case, rc))
            for r in case_rows:
                r["result"] = result
                rows.append(r)
    lines = table(rows, results, failed_to_run)
    text = "\n".join(lines) + "\n"
    print(text, end="")
    if args.output:
        with open(args.output, "w") as f:
            f.write(text)
    return 1 if failed_to_run else 0


def table(rows, results, failed_to_run):
    import platform
    import time
    L = [f"slabtrace accuracy against /proc/slabinfo — Linux {platform.release()}, "
         f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
         "rows from the root tests (tests/root/test_accuracy.cpp); slab delta = the report's own /proc/slabinfo reading",
         "at start and end; ratio = outstanding / slab delta; result = whether that test case passed", ""]
    fmt = "{:<13} {:<20} {:>11} {:>11} {:>10} {:>7}  {:<62} {}"
    L.append(fmt.format("workload", "cache", "outstanding", "allocs seen", "slab delta", "ratio", "target", "result"))
    L.append(fmt.format("-" * 13, "-" * 20, "-" * 11, "-" * 11, "-" * 10, "-" * 7, "-" * 62, "-------"))
    notes = []
    for r in rows:
        d = r["slab_delta"]
        ratio = f"{r['outstanding'] / d:.3f}" if d else "-"
        L.append(fmt.format(r["workload"], r["cache"][:20], r["outstanding"], r["allocs"], d, ratio, r["target"][:62],
                            r["result"]))
        if r.get("note") and r["note"] != "agrees":
            notes.append(f"- {r['workload']} {r['cache']}: {r['note'].strip()}")
    if notes:
        L += [""] + sorted(set(notes))
    failed = [c for c, rc in results if rc != 0]
    L += ["", f"{len(results) - len(failed)} of {len(results)} test cases met their targets"]
    L += [f"- not met: {c}" for c in failed]
    L += [f"- failed to run: {f}" for f in failed_to_run]
    return L
