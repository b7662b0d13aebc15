#!/bin/bash
# Installs what is missing, builds, and runs the benchmark (bench/run.sh; its
# options pass through, e.g. --quick or --rounds 5 --seconds 5). Needs root.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
"$root/scripts/setup.sh"
"$root/scripts/build.sh"
exec "$root/bench/run.sh" --build-dir "$root/build" "$@"
