#!/bin/bash
# One kernel's share of scripts/test-matrix.sh, run inside the guest:
# matrix-guest.sh BUILD OUT. Writes into OUT (shared with the host): uname,
# boot_s (guest uptime when the job started), mode (the attach mode slabtrace
# picks here, with its log), leak.json (leak-figures.py), ctest.log, junit.xml, suite_s. Exits with ctest's status.
build=$1 out=$2
cut -d' ' -f1 /proc/uptime >"$out/boot_s"
uname -r >"$out/uname"
"$build/slabtrace" record --duration 1 --format json >"$out/mode.json" 2>"$out/mode.log"
echo $? >"$out/mode.rc"
mode=$(sed -n 's/.*tracing for [0-9.]*s (\([^)]*\)).*/\1/p' "$out/mode.log" | head -1)
echo "${mode:-none}" >"$out/mode"
# The features table's figures (a 30,000-datagram UDP leak), before the suite.
python3 "$(dirname "$0")/leak-figures.py" "$build" "$out/leak.json" >"$out/leak.log" 2>&1
t0=$(date +%s)
ctest --test-dir "$build" -L root --output-on-failure --timeout "${SLABTRACE_VM_TEST_TIMEOUT:-900}" \
  --output-junit "$out/junit.xml" 2>&1 | tee "$out/ctest.log" |
  grep --line-buffered -E '^ *[0-9]+/[0-9]+ Test|tests passed|Total Test time'
rc=${PIPESTATUS[0]}
echo $(($(date +%s) - t0)) >"$out/suite_s"
exit "$rc"
