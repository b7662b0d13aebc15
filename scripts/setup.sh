#!/bin/bash
# Installs what slabtrace needs to build and test, from Debian 12 packages only.
# Idempotent and quiet when everything is already there.
set -euo pipefail

packages=(
  build-essential cmake pkg-config clang-14 llvm-14 libclang-rt-14-dev
  libbpf-dev bpftool libelf-dev zlib1g-dev
  libcli11-dev libspdlog-dev libfmt-dev nlohmann-json3-dev libcpp-httplib-dev catch2
  iproute2 iperf3 bpftrace prometheus librsvg2-bin tmux jq python3-yaml
  qemu-system-x86 kmod cpio xz-utils zstd
  # scripts/image.sh and tests/root/test_deploy.cpp: build the image without a
  # registry and run it as the DaemonSet says (runc: crun refuses v1/v2 hybrids).
  buildah podman runc
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "setup: missing packages (${missing[*]}); run as root to install them" >&2
    exit 1
  fi
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  # The prometheus package would start a server from its postinst where an init
  # system runs; the tests start their own on loopback instead.
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Tracepoints live in tracefs; many minimal hosts do not mount it.
if [[ $(id -u) -eq 0 && ! -e /sys/kernel/tracing/events ]]; then
  mount -t tracefs nodev /sys/kernel/tracing 2>/dev/null || true
fi
