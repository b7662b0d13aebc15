/* Interrupt context: who to blame for an allocation. In softirq or hardirq the
 * current task is whoever was interrupted, so such allocations go to pseudo
 * cgroups (ST_CGROUP_SOFTIRQ/HARDIRQ). */
#ifndef SLABTRACE_IRQ_CONTEXT_BPF_H
#define SLABTRACE_IRQ_CONTEXT_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

#include "slabtrace/bpf_shared.h"
#include "config.bpf.h"
#include "percpu.bpf.h"

/* preempt_count bits (include/linux/preempt.h): serving a softirq is
 * SOFTIRQ_OFFSET, not the whole softirq mask, which also counts
 * local_bh_disable() in process context; hardirq and NMI have their own. */
#define ST_PC_SOFTIRQ_OFFSET 0x100u
#define ST_PC_HARDIRQ_MASK 0xf0000u
#define ST_PC_NMI_MASK 0xf00000u

/* This CPU's __preempt_count and cpu_number (adjacent ints) as one number:
 * any struct with 8 bytes at offset 0 serves as the type of the read. */
static __always_inline __u64 preempt_count_and_cpu(__u64 addr)
{
#ifndef ST_LEGACY
  const struct timespec64 *p = bpf_rdonly_cast((void *)addr, bpf_core_type_id_kernel(struct timespec64));
  return (__u64)p->tv_sec;
#else
  __u64 v = 0;
  bpf_probe_read_kernel(&v, sizeof(v), (void *)addr);
  return v;
#endif
}

static __always_inline int context_level(struct st_cpu_state *cpu)
{
  if (!cpu)
    return ST_CTX_TASK;
  if (irq_from_preempt_count) {
    if (!cpu->preempt_count_addr) {
      /* Once per CPU: a runqueue never moves. Checked once with a
       * probe_read, which fails where a direct load would read 0. */
      struct task_struct *task = (void *)bpf_get_current_task();
      __u64 rq = (__u64)BPF_CORE_READ(task, se.cfs_rq, rq);
      __u32 pc_cpu[2] = {}; /* __preempt_count, cpu_number */
      if (!rq || bpf_probe_read_kernel(pc_cpu, sizeof(pc_cpu), (void *)(rq + preempt_count_from_rq)) != 0 ||
          pc_cpu[1] != bpf_get_smp_processor_id()) {
        stat_add(ST_STAT_IRQ_CONTEXT_UNKNOWN, 1);
        return ST_CTX_TASK;
      }
      cpu->preempt_count_addr = rq + preempt_count_from_rq;
    }
    __u64 v = preempt_count_and_cpu(cpu->preempt_count_addr);
    __u32 pc = (__u32)v;
    if ((__u32)(v >> 32) != bpf_get_smp_processor_id()) {
      /* Not what we think it is: say so, and look again next time. */
      stat_add(ST_STAT_IRQ_CONTEXT_UNKNOWN, 1);
      cpu->preempt_count_addr = 0;
      return ST_CTX_TASK;
    }
    if (pc & (ST_PC_HARDIRQ_MASK | ST_PC_NMI_MASK))
      return ST_CTX_HARDIRQ;
    return (pc & ST_PC_SOFTIRQ_OFFSET) ? ST_CTX_SOFTIRQ : ST_CTX_TASK;
  }
  return cpu->hardirq_depth ? ST_CTX_HARDIRQ : cpu->softirq_depth ? ST_CTX_SOFTIRQ : ST_CTX_TASK;
}

static __always_inline __u64 current_cgroup(int ctx_level, int typed)
{
  if (ctx_level == ST_CTX_HARDIRQ)
    return ST_CGROUP_HARDIRQ;
  if (ctx_level == ST_CTX_SOFTIRQ)
    return ST_CGROUP_SOFTIRQ;
  if (!typed || !have_task_btf)
    return bpf_get_current_cgroup_id();
  /* The helper walks the same pointers, but the call showed in the cost
   * (~15 ns per allocation). */
  struct task_struct *t = bpf_get_current_task_btf();
  return t->cgroups->dfl_cgrp->kn->id;
}

/* The cgroup to charge, as one call the verifier checks once: for the rare
 * paths (adoption) that sit inside the 32-step sk_data_ready walk, where the
 * preempt-count branches inlined at every step took the program past the
 * verifier's 1 M instructions (--sample 16). */
__noinline __u64 st_current_cgroup(int typed)
{
  return current_cgroup(context_level(cpu_state()), typed);
}

/* ---- interrupt context --------------------------------------------------- */

static __always_inline void depth_change(int hard, int delta)
{
  struct st_cpu_state *c = cpu_state();
  if (!c)
    return;
  __u32 *d = hard ? &c->hardirq_depth : &c->softirq_depth;
  /* We may attach inside a softirq and see its exit without its entry. */
  if (delta < 0 && *d == 0)
    return;
  *d += delta;
}

SEC("tp_btf/softirq_entry")
int BPF_PROG(st_btf_softirq_entry, unsigned int vec) { depth_change(0, 1); return 0; }
SEC("tp_btf/softirq_exit")
int BPF_PROG(st_btf_softirq_exit, unsigned int vec) { depth_change(0, -1); return 0; }
SEC("tp_btf/irq_handler_entry")
int BPF_PROG(st_btf_irq_entry, int irq) { depth_change(1, 1); return 0; }
SEC("tp_btf/irq_handler_exit")
int BPF_PROG(st_btf_irq_exit, int irq) { depth_change(1, -1); return 0; }

SEC("tracepoint/irq/softirq_entry")
int st_tp_softirq_entry(void *ctx) { depth_change(0, 1); return 0; }
SEC("tracepoint/irq/softirq_exit")
int st_tp_softirq_exit(void *ctx) { depth_change(0, -1); return 0; }
SEC("tracepoint/irq/irq_handler_entry")
int st_tp_irq_entry(void *ctx) { depth_change(1, 1); return 0; }
SEC("tracepoint/irq/irq_handler_exit")
int st_tp_irq_exit(void *ctx) { depth_change(1, -1); return 0; }

#endif
