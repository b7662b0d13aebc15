#!/bin/bash
# Builds the libFuzzer targets of tests/fuzz (every parser of outside input and
# the CLI) with clang-14, ASan and UBSan into build-fuzz/, and runs each for
# FUZZ_SECONDS (default 20) from its seeds in tests/fixtures. A crash, a leak
# or a sanitizer report fails the run; the input that caused it is left in
# build-fuzz/artifacts/TARGET/ — fix the bug and keep the input in
# tests/fixtures/fuzz/TARGET/ (the unit suite runs every file there).
#
#   scripts/test-fuzz.sh [TARGET...]        (default: all)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
seconds=${FUZZ_SECONDS:-20}
# One fixed seed: CI explores a prefix of what a longer local run with the
# same seed explored, so a run that passed here for longer passes there.
seed_value=${FUZZ_SEED:-1}
build=${FUZZ_BUILD:-$root/build-fuzz}
started=$(date +%s)

CC=clang-14 CXX=clang++-14 cmake -S "$root" -B "$build" -DSLABTRACE_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
# A failed build fails the run (pipefail): grep printing nothing does not.
if ! cmake --build "$build" --target fuzz_all -j"$(nproc)" 2>&1 | { grep -vE '^\[ *[0-9]+%\]|^-- |^gmake|Built target' || true; }; then
  echo "fuzz: the build failed" >&2
  exit 1
fi
built=$(date +%s)

targets=("$@")
if ((${#targets[@]} == 0)); then
  for bin in "$build"/tests/fuzz/fuzz_*; do [[ -x $bin && -f $bin ]] && targets+=("${bin##*/fuzz_}"); done
fi
# Every target the bodies know has a binary, and the other way round.
known=$(FUZZ_LIST_TARGETS=1 "$build/tests/fuzz/fuzz_slabinfo" 2>/dev/null | sort | paste -sd' ')
binaries=$(for t in "${targets[@]}"; do [[ $t == cli ]] || echo "$t"; done | sort | paste -sd' ')
if (($# == 0)) && [[ $known != "$binaries" ]]; then
  echo "fuzz: targets in fuzz_targets.cpp ($known) and in tests/fuzz/CMakeLists.txt ($binaries) differ" >&2
  exit 1
fi

failed=()
for name in "${targets[@]}"; do
  bin="$build/tests/fuzz/fuzz_$name"
  corpus="$build/corpus/$name"
  artifacts="$build/artifacts/$name/"
  mkdir -p "$corpus" "$artifacts"
  # Seeds: the fixture files the target names, and every kept input.
  while IFS= read -r seed; do
    [[ -n $seed && -e $seed ]] && find "$seed" -type f -exec cp -t "$corpus" {} +
    :
  done < <(FUZZ_PRINT_SEEDS=1 "$bin" 2>/dev/null || true)
  extra=()
  [[ $name == cli ]] && extra=(-close_fd_mask=3 -dict="$root/tests/fuzz/cli.dict")
  log="$build/fuzz-$name.log"
  t0=$(date +%s)
  if "$bin" -seed="$seed_value" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 \
    -artifact_prefix="$artifacts" "${extra[@]}" "$corpus" >"$log" 2>&1; then
    runs=$(awk '/stat::number_of_executed_units/ { print $2 }' "$log")
    cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -1)
    printf 'fuzz: %-16s ok   %9s runs in %3ss, %s, corpus %s\n' "$name" "${runs:-?}" "$(($(date +%s) - t0))" "${cov:-cov: ?}" \
      "$(find "$corpus" -type f | wc -l)"
  else
    printf 'fuzz: %-16s FAIL (log %s, input in %s)\n' "$name" "$log" "$artifacts"
    grep -E 'ERROR|SUMMARY|runtime error|uncaught|assertion failed|deadly signal' "$log" | head -8 | sed 's/^/  /'
    failed+=("$name")
  fi
done
echo "fuzz: build $((built - started)) s, fuzzing $(($(date +%s) - built)) s, ${#targets[@]} targets of ${seconds} s"
if ((${#failed[@]})); then
  echo "fuzz: FAILED: ${failed[*]}" >&2
  exit 1
fi
