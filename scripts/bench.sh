#!/bin/bash
# Installs what is missing, builds, and runs the benchmark (bench/harness bench;
# its options pass through, e.g. --quick, --rounds 3 --seconds 4, -o FILE). Needs root.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
"$root/scripts/setup.sh"
"$root/scripts/build.sh"
exec python3 "$root/bench/harness" bench --build-dir "$root/build" "$@"
