// SPDX-License-Identifier: GPL-2.0
/* slabtrace: keeps the set of live slab objects, aggregated in the kernel.
 *
 * Every allocation enters a (cache, cgroup) bucket whose per-CPU counters user
 * space reads cheaply at any interval; sampled objects also enter the live-object
 * table (address -> bucket, stack, age, link) so that frees can be matched by
 * address whatever event reports them. No per-event ring buffer: the hot path is
 * a few map operations.
 *
 * One translation unit in parts, by concern (each part includes what it uses):
 *   core_fixes   kernel differences (CO-RE flavours), the one place for them
 *   config       tunables set in .rodata before load, and predicates on them
 *   percpu       per-CPU scratch state and health counters
 *   irq_context  softirq/hardirq detection: who to blame for an allocation
 *   buckets      (cache, cgroup) buckets and their counters
 *   live_table   the table of live objects, by address
 *   sockets      sockets holding sk_buffs, drops per socket
 *   alloc        allocation and free events
 *   napi         skb heads from the NAPI cache, adopted on the receive path
 *   skb          sk_buff end events and socket queues
 *   queue_walk   socket iterators that tie queued heads to their socket
 *
 * Allocation programs exist in three flavours: tp_btf (typed arguments),
 * raw_tp (untyped: where the verifier refuses tp_btf's void * arguments) and
 * classic tracepoints (the fallback); user space probes the kernel and picks
 * one set with autoload (src/bpf/loader.cpp's program table). The same source
 * is built twice: slabtrace.bpf.o, and with ST_LEGACY for kernels without
 * bpf_loop or atomic compare-and-swap (see live_table.bpf.h). */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

#include "slabtrace/bpf_shared.h"
#include "core_fixes.bpf.h"
#include "config.bpf.h"
#include "percpu.bpf.h"
#include "irq_context.bpf.h"
#include "buckets.bpf.h"
#include "live_table.bpf.h"
#include "sockets.bpf.h"
#include "alloc.bpf.h"
#include "napi.bpf.h"
#include "skb.bpf.h"
#include "queue_walk.bpf.h"

char LICENSE[] SEC("license") = "GPL";

/* ---- the clock ------------------------------------------------------------ */

/* Never attached: user space runs it (BPF_PROG_TEST_RUN) to read jiffies and
 * the monotonic clock together, which turns allocation ticks into ages; and,
 * with irq_from_preempt_count, once before attaching to learn whether this
 * CPU's preempt count reads back where the BTF says (context_level). */
__u64 st_clock_jiffies = 0;
__u64 st_clock_ns = 0;
__u32 st_preempt_count_ok = 0;

SEC("raw_tp")
int st_clock(void *ctx)
{
  st_clock_jiffies = bpf_jiffies64();
  st_clock_ns = bpf_ktime_get_ns();
  if (irq_from_preempt_count) {
    struct st_cpu_state *cpu = cpu_state();
    st_preempt_count_ok = cpu && context_level(cpu) == ST_CTX_TASK && cpu->preempt_count_addr != 0;
  }
  return 0;
}

/* Never attached: run once by user space before the others are attached, to
 * read where the kernel put its direct map and struct pages (see
 * object_cache). Returns 1 when both were read. */
SEC("raw_tp")
int st_layout(void *ctx)
{
  __u64 base = 0, vmemmap = 0;
  if (!page_offset_base_addr || !vmemmap_base_addr ||
      bpf_probe_read_kernel(&base, sizeof(base), (void *)page_offset_base_addr) ||
      bpf_probe_read_kernel(&vmemmap, sizeof(vmemmap), (void *)vmemmap_base_addr))
    return 0;
  st_page_offset = base;
  st_vmemmap = vmemmap;
  return 1;
}
