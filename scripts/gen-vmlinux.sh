#!/bin/sh
# Regenerates vmlinux/<arch>/vmlinux.h from a BTF kernel. CO-RE relocations let
# one header serve every kernel with BTF, so this runs only when a newer kernel
# has types the BPF code wants; the result is committed.
set -eu
btf=${1:-/sys/kernel/btf/vmlinux}
arch=${2:-x86}
out="$(dirname "$0")/../vmlinux/$arch/vmlinux.h"
mkdir -p "$(dirname "$out")"
bpftool btf dump file "$btf" format c > "$out.tmp"
mv "$out.tmp" "$out"
echo "wrote $out from $btf"
