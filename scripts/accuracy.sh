#!/bin/bash
# slabtrace's accuracy against /proc/slabinfo (issue 3): builds, then runs the
# accuracy root tests (tests/root/test_accuracy.cpp) one by one and prints one
# table of their figures and targets (bench/harness accuracy; options pass
# through: --reports DIR, -o FILE, --tags '[accuracy]'). Needs root.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
"$root/scripts/build.sh"
exec python3 "$root/bench/harness" accuracy --build-dir "$root/build" "$@"
