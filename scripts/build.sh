#!/bin/bash
# Configures and builds slabtrace into build/ (incremental). Exits non-zero when
# the build fails, so nothing runs on a stale binary.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cmake -S "$root" -B "$root/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
# Progress lines are dropped; grep finding nothing to print is no failure, but
# the compiler's is (pipefail).
if ! cmake --build "$root/build" -j"$(nproc)" 2>&1 | { grep -vE '^\[ *[0-9]+%\]|^-- ' || true; }; then
  echo "build.sh: the build failed" >&2
  exit 1
fi
test -x "$root/build/slabtrace"
