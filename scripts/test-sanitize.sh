#!/bin/bash
# Builds everything with ASan + UBSan (-DSLABTRACE_SANITIZE=ON) into
# build-sanitize/ and runs the unit and root suites against it: the root tests
# run the sanitized slabtrace binary and workloads. Any sanitizer report, from
# the tests or from a process they start, fails the run (reports are logged
# to files and listed at the end, since tests do not always check every
# child's exit status).
#
#   scripts/test-sanitize.sh [ctest arguments]     (default: -L 'unit|root')
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build=${SANITIZE_BUILD:-$root/build-sanitize}
started=$(date +%s)

# clang-14 (as for the fuzz targets): it builds this tree in ~2/5 of g++'s time
# with the sanitizers on. -O1 and line tables only: enough for ASan's and
# UBSan's stacks to name file:line, and the cheapest build that keeps them.
flags="-O1 -gline-tables-only"
CC=clang-14 CXX=clang++-14 cmake -S "$root" -B "$build" -DSLABTRACE_SANITIZE=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_C_FLAGS_RELWITHDEBINFO="$flags" -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="$flags" >/dev/null
# A failed build fails the run (pipefail): grep printing nothing does not.
if ! cmake --build "$build" -j"$(nproc)" 2>&1 | { grep -vE '^\[ *[0-9]+%\]|^-- |^gmake|Built target' || true; }; then
  echo "sanitize: the build failed" >&2
  exit 1
fi
test -x "$build/slabtrace"
built=$(date +%s)

logs="$build/sanitizer-reports"
rm -rf "$logs"
mkdir -p "$logs"
export ASAN_OPTIONS="log_path=$logs/asan:detect_leaks=1:detect_stack_use_after_return=1:strict_string_checks=1:check_initialization_order=1"
export UBSAN_OPTIONS="log_path=$logs/ubsan:print_stacktrace=1:halt_on_error=1"
# The instrumented workloads and tracer are slower: throughput targets (a
# churn's message count) count on 0.4 of the machine; ratios and bounds stay
# (root_helpers.hpp). The normal run checks the full figures. A UDP churn made
# 544 k messages in 10 s here under ASan on a loaded machine, > 1 M alone.
export SLABTRACE_TEST_SCALE=${SLABTRACE_TEST_SCALE:-0.4}
rc=0
(($#)) || set -- -L 'unit|root'
ctest --test-dir "$build" --output-on-failure --timeout 900 "$@" || rc=$?

reports=("$logs"/*)
if [[ -e ${reports[0]} ]]; then
  echo "sanitize: ${#reports[@]} sanitizer report(s):" >&2
  for r in "${reports[@]}"; do
    echo "--- $r" >&2
    grep -E 'ERROR|SUMMARY|runtime error|#[0-9] ' "$r" | head -20 >&2
  done
  rc=1
fi
echo "sanitize: build $((built - started)) s, tests $(($(date +%s) - built)) s"
exit "$rc"
