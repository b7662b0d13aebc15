#!/bin/bash
# scripts/vmtest.sh KERNEL [CMD...]: runs CMD (default: the root test suite of
# this tree's build/) on another kernel. KERNEL is 5.10 (Debian 11), 6.1
# (Debian 12), 6.12 (Debian 12 backports) or host (this machine, no VM).
#
# The guest boots Debian's own linux-image-*-amd64-unsigned under QEMU with
# this machine's / shared read-only over virtio-9p below a tmpfs overlay, so
# it runs the very binaries built here. Exit status: CMD's, or 77 when the
# kernel could not be fetched or booted (SKIPPED, never a pass), or 124 when
# the guest died or timed out while CMD ran.
#
# Environment: SLABTRACE_VM_CACHE (downloads, default /var/cache/slabtrace-vm),
# SLABTRACE_VM_TIMEOUT (seconds per boot), SLABTRACE_VM_ACCEL (kvm|tcg, else
# probed), SLABTRACE_VM_CPUS (2), SLABTRACE_VM_MEM (3G), SLABTRACE_VM_SHARE (a
# host directory the guest may write, at the same path). Variables named
# SLABTRACE_* and CI are passed into the guest.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
. "$root/scripts/lib/vm/kernels.sh"

usage() { echo "usage: scripts/vmtest.sh 5.10|6.1|6.12|host [CMD...]" >&2; exit 2; }
(($# >= 1)) || usage
kernel=$1; shift
case $kernel in 5.10|6.1|6.12|host) ;; *) usage ;; esac

if (($#)); then
  cmd="$*"
else
  [[ -x $root/build/slabtrace ]] || { echo "vmtest: no build in $root/build (run scripts/build.sh)" >&2; exit 2; }
  cmd="ctest --test-dir '$root/build' -L root --output-on-failure --timeout ${SLABTRACE_VM_TEST_TIMEOUT:-900}"
fi

if [[ $kernel == host ]]; then
  echo "vmtest: host kernel $(uname -r), no VM"
  exec bash -c "$cmd"
fi

skip() { echo "vmtest: $kernel SKIPPED: $*"; exit 77; }

[[ $(id -u) -eq 0 ]] || skip "needs root (the guest's root tests run as root on this machine's files)"
command -v qemu-system-x86_64 >/dev/null || skip "qemu-system-x86_64 not installed (scripts/setup.sh installs qemu-system-x86)"
for t in dpkg-deb depmod cpio xz zstd; do command -v $t >/dev/null || skip "$t not installed"; done

vm_cache=${SLABTRACE_VM_CACHE:-/var/cache/slabtrace-vm}
mkdir -p "$vm_cache"
exec 9>"$vm_cache/.lock"
flock 9    # one fetch/unpack at a time; released before the boot
vm_apt_setup || skip "cannot reach the Debian mirror"
vm_fetch "$kernel" || skip "cannot fetch linux-image-$kernel*-amd64-unsigned from ${vm_suite[$kernel]}"
vm_busybox || skip "cannot fetch busybox-static"

# The initramfs: busybox, /init, and the modules for 9p and overlayfs,
# decompressed (busybox insmod reads plain .ko only). Rebuilt when /init changes.
mods=$(vm_modules_for "$vm_kdir" "$vm_kver" virtio virtio_ring virtio_pci virtio_console 9pnet 9pnet_virtio 9p overlay) ||
  skip "kernel $vm_kver lacks the 9p/virtio/overlay modules"
initrd_id=$( (cat "$root/scripts/lib/vm/init" "$vm_busybox"; echo "$mods") | sha1sum | cut -c1-12)
initrd=$vm_kdir/initrd-$initrd_id.cpio.gz
if [[ ! -s $initrd ]]; then
  stage=$(mktemp -d)
  mkdir -p "$stage/bin" "$stage/modules"
  cp "$vm_busybox" "$stage/bin/busybox"
  cp "$root/scripts/lib/vm/init" "$stage/init"; chmod +x "$stage/init"
  : >"$stage/modules.list"
  for m in $mods; do
    base=$(basename "$m"); plain=${base%.xz}; plain=${plain%.zst}; plain=${plain%.gz}
    case $base in
      *.xz) xz -dc "$vm_kdir/lib/modules/$vm_kver/$m" ;;
      *.zst) zstd -dcq "$vm_kdir/lib/modules/$vm_kver/$m" ;;
      *.gz) gzip -dc "$vm_kdir/lib/modules/$vm_kver/$m" ;;
      *) cat "$vm_kdir/lib/modules/$vm_kver/$m" ;;
    esac >"$stage/modules/$plain"
    echo "$plain" >>"$stage/modules.list"
  done
  (cd "$stage" && find . | cpio -o -H newc --quiet | gzip -1) >"$initrd.tmp"
  mv "$initrd.tmp" "$initrd"
  rm -rf "$stage"
fi
flock -u 9

# Run directory: shared read-write with the guest (the host's / is read-only
# there). It is under /tmp, so the guest sees the same path.
run=$(mktemp -d /tmp/slabtrace-vm.XXXXXX)
cleanup() {
  rm -rf "$run"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
cp "$root/scripts/lib/vm/guest.sh" "$run/guest.sh"
printf '%s\n' "$cmd" >"$run/cmd"
pwd >"$run/cwd"
{
  echo "PATH=$(printf %q "$PATH")"
  echo "HOME=/root"
  echo "TERM=dumb"
  echo "LANG=C.UTF-8"
  echo "VM_MODULES=$(printf %q "$vm_kdir/lib/modules/$vm_kver")"
  echo "VM_BPF_STATS=$(cat /proc/sys/kernel/bpf_stats_enabled 2>/dev/null || echo 0)"
  { env | grep -E '^(SLABTRACE_[A-Z0-9_]*|CI|CTEST_[A-Z_]*)=' || true; } | while IFS='=' read -r k v; do echo "$k=$(printf %q "$v")"; done
} >"$run/env"

cpus=${SLABTRACE_VM_CPUS:-2}
mem=${SLABTRACE_VM_MEM:-3G}
timeout_s=${SLABTRACE_VM_TIMEOUT:-$( (($#)) && echo 900 || echo 3600)}
# oops=panic + panic=-1 + -no-reboot: a kernel Oops ends the guest at once
# (reported as a failure with the console's Oops) instead of hanging a test.
append="console=ttyS0 loglevel=4 panic=-1 oops=panic mitigations=off tsc=reliable slabtrace.run=$run"

qemu_args=(
  -nodefaults -display none -no-reboot
  -smp "$cpus" -m "$mem"
  -kernel "$vm_vmlinuz" -initrd "$initrd" -append "$append"
  # The kernel's console goes to a file (shown when the guest dies); CMD's
  # output comes through a virtio console: the emulated UART moves ~11 KB/s,
  # too slow for a test suite's failure output.
  -serial "file:$run/console.log"
  -device virtio-serial-pci -chardev stdio,id=cmdout,signal=off -device virtconsole,chardev=cmdout
  -fsdev "local,id=rootfs,path=/,security_model=none,readonly=on,multidevs=remap"
  -device "virtio-9p-pci,fsdev=rootfs,mount_tag=root"
  -fsdev "local,id=runfs,path=$run,security_model=none"
  -device "virtio-9p-pci,fsdev=runfs,mount_tag=run"
)
if [[ -n ${SLABTRACE_VM_SHARE:-} ]]; then
  [[ -d $SLABTRACE_VM_SHARE ]] || { echo "vmtest: SLABTRACE_VM_SHARE=$SLABTRACE_VM_SHARE is not a directory" >&2; exit 2; }
  share=$(cd "$SLABTRACE_VM_SHARE" && pwd)
  qemu_args+=(-fsdev "local,id=sharefs,path=$share,security_model=none"
    -device "virtio-9p-pci,fsdev=sharefs,mount_tag=share")
  echo "VM_SHARE=$(printf %q "$share")" >>"$run/env"
fi

# KVM only where a probe boot proves it boots this kernel: some hosts offer a
# /dev/kvm (e.g. a paravirtual kvm_pvm) that cannot run a stock kernel.
# TCG runs single-threaded: multi-threaded TCG oopsed (int3 in
# bpf_trace_run1) when bpf_stats was toggled. la57 off: QEMU's max CPU offers
# 5-level paging, which few nodes have; the guests run the common 4-level
# address layout (SLABTRACE_VM_CPU=max boots with LA57 where a kernel enables it).
tcg_args=(-accel tcg,thread=single -cpu "${SLABTRACE_VM_CPU:-max,la57=off}")
kvm_args=(-accel kvm -cpu host)

boot() {  # boot TIMEOUT ACCEL_ARGS...: boots the guest; CMD's output to stdout
  local t=$1; shift
  rm -f "$run/started" "$run/rc" "$run/console.log"
  timeout -k 10 "$t" qemu-system-x86_64 "${qemu_args[@]}" "$@" </dev/null 2>"$run/qemu.err" | sed -u 's/\r$//'
  return "${PIPESTATUS[0]}"
}
console_tail() {  # the guest kernel's last words
  echo "vmtest: last lines of the guest's console:"
  tr -d '\r' <"$run/console.log" 2>/dev/null | tail -"${1:-40}" | sed 's/^/  | /'
}

accel=${SLABTRACE_VM_ACCEL:-}
if [[ -z $accel ]]; then
  accel=tcg
  probe=$vm_cache/accel-$kernel-$(cat /proc/sys/kernel/random/boot_id 2>/dev/null | cut -c1-8)
  if [[ -r $probe ]]; then
    accel=$(cat "$probe")
  elif [[ -w /dev/kvm ]]; then
    saved=$(cat "$run/cmd"); echo true >"$run/cmd"
    if boot 60 "${kvm_args[@]}" >/dev/null 2>&1 && [[ $(cat "$run/rc" 2>/dev/null) == 0 ]]; then accel=kvm; fi
    printf '%s\n' "$saved" >"$run/cmd"
    echo "$accel" >"$probe"
  fi
fi
[[ $accel == kvm ]] && accel_args=("${kvm_args[@]}") || accel_args=("${tcg_args[@]}")

echo "vmtest: booting $vm_kver ($(basename "$vm_kdir")) with $accel, $cpus vCPUs, $mem, timeout ${timeout_s}s"
t0=$(date +%s)
qrc=0
boot "$timeout_s" "${accel_args[@]}" || qrc=$?
t1=$(date +%s)
if [[ -r $run/rc ]]; then
  rc=$(cat "$run/rc")
  echo "vmtest: $kernel ($vm_kver): exit status $rc after $((t1 - t0)) s"
  exit "$rc"
fi
console_tail
if [[ ! -e $run/started ]]; then
  echo "vmtest: qemu: $(tail -3 "$run/qemu.err" | tr '\n' ' ')"
  skip "kernel $vm_kver did not boot (qemu status $qrc after $((t1 - t0)) s)"
fi
if ((qrc == 124 || qrc == 137)); then
  echo "vmtest: $kernel ($vm_kver): FAILED: timed out after ${timeout_s}s while CMD ran"
else
  echo "vmtest: $kernel ($vm_kver): FAILED: the guest died while CMD ran (qemu status $qrc; Oops above?)"
fi
exit 124
