#!/bin/bash
# Runs inside the scripts/vmtest.sh guest (chroot into the overlaid host root).
# $1 is the run directory shared with the host: it holds env (variables to
# export), cwd, cmd (the job as a bash script) and receives started and rc.
run=$1
touch "$run/started"
set -a; . "$run/env"; set +a
ip link set lo up
# The kernel's own modules, for anything a test loads with modprobe.
if [[ -n ${VM_MODULES:-} && -d $VM_MODULES ]]; then
  mkdir -p "/lib/modules/$(uname -r)"
  mount --bind "$VM_MODULES" "/lib/modules/$(uname -r)"
fi
# Devices the tests open by path, whose modules nothing requests before:
# /dev/net/tun (st_tap), veth pairs (the deploy test).
modprobe -q tun 2>/dev/null
modprobe -q veth 2>/dev/null
if [[ -n ${VM_SHARE:-} ]]; then
  mkdir -p "$VM_SHARE"
  mount -t 9p -o trans=virtio,version=9p2000.L,cache=none,msize=262144 share "$VM_SHARE"
fi
[[ -n ${VM_BPF_STATS:-} ]] && sysctl -q kernel.bpf_stats_enabled="$VM_BPF_STATS"
[[ -e /sys/kernel/tracing/events ]] || echo "vmtest: tracefs has no events on $(uname -r)"
cd "$(cat "$run/cwd")" 2>/dev/null || cd /
# CMD's output to the host through the virtio console (see vmtest.sh).
for i in $(seq 50); do [[ -c /dev/hvc0 ]] && break; sleep 0.1; done
if [[ -c /dev/hvc0 ]]; then exec >/dev/hvc0 2>&1; else echo "vmtest: no /dev/hvc0: CMD's output is on the serial console"; fi
bash "$run/cmd" </dev/null
echo $? >"$run/rc.tmp" && mv "$run/rc.tmp" "$run/rc"
sync
