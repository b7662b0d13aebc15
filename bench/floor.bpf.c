// SPDX-License-Identifier: GPL-2.0
/* The floor: empty tp_btf programs on the four kmem tracepoints slabtrace uses.
 * Whatever they cost (trampoline, bpf_stats bookkeeping, the tracepoint itself
 * becoming live) any tracer on these events pays; the benchmark holds
 * slabtrace's cost per event against theirs. Names are prefixed fl_ so the
 * benchmark can tell them from slabtrace's st_ programs. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "GPL";

SEC("tp_btf/kmem_cache_alloc")
int BPF_PROG(fl_cache_alloc) { return 0; }

SEC("tp_btf/kmem_cache_free")
int BPF_PROG(fl_cache_free) { return 0; }

SEC("tp_btf/kmalloc")
int BPF_PROG(fl_kmalloc) { return 0; }

SEC("tp_btf/kfree")
int BPF_PROG(fl_kfree) { return 0; }
