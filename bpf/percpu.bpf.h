/* Per-CPU scratch state (private to the BPF side) and the health counters. */
#ifndef SLABTRACE_PERCPU_BPF_H
#define SLABTRACE_PERCPU_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

#include "slabtrace/bpf_shared.h"
#include "core_fixes.bpf.h"

/* Allocation context, from the preempt count or the irq entry/exit depths. */
#define ST_CTX_TASK 0
#define ST_CTX_SOFTIRQ 1
#define ST_CTX_HARDIRQ 2

#define ST_PENDING_UNDECIDED 0xffffffffu
#define ST_SIZE_MEMO 2

/* Per-CPU scratch state: never read by user space. */
#define ST_BUCKET_CACHE_BITS 3
#define ST_BUCKET_CACHE (1 << ST_BUCKET_CACHE_BITS)
struct st_bucket_cache_entry {
  __u64 cache;
  __u64 cgroup;
  __u32 idx;   /* bucket index + 1; 0: empty */
  __u32 flags; /* the bucket's ST_BUCKET_* flags */
  __u32 object_size; /* the bucket's: raw_tp events carry no size */
  __u32 pad;
};
/* An skb head just allocated in __alloc_skb, awaiting its data; one per
 * context, since an interrupt may allocate its own skb in between. One cache
 * line's worth, read and written together by a head and its data. */
struct st_pending {
  __u64 head;
  __u64 site; /* the call site its data will have (skb_data_site_is_caller) */
  /* Under address sampling, what the head is filed under once its data is
   * drawn (see on_alloc): its bucket's cache key and the cache. */
  __u64 key;
  __u64 name;  /* const char *: the cache's name, or 0 */
  __u64 cache; /* struct kmem_cache *, or 0 */
  /* The stack bits of `packed` the head got (its stack id, or
   * ST_OBJ_NO_STACK when it was not chosen, and ST_OBJ_STACK_THROTTLED), for
   * its data to share; ST_PENDING_UNDECIDED when the head was not tracked,
   * and the data draws for itself. */
  __u32 stack;
  __u32 size; /* object size, or 0: the bucket's */
  /* skb_one_slot: the head's bucket + 1 when it waits to share its data's
   * slot (0: filed already, or not tracked). */
  __u32 bucket;
  __u32 deferred; /* the head waits for its data's event to be booked */
};

struct st_cpu_state {
  /* What every event reads first, together. */
  __u64 preempt_count_addr; /* this CPU's __preempt_count, found on first use */
  __u64 scratch;            /* turns a typed pointer into a number, see as_number */
  __u32 softirq_depth;
  __u32 hardirq_depth;
  __u32 stack_countdown;    /* tracked allocations until the next stack capture */
  __u32 stack_gap_throttled; /* the countdown was drawn at the throttled rate */
  __u32 stack_window_captures; /* captures in the current budget window */
  __u32 buckets_made;       /* ST_LEGACY: buckets this CPU created (see bucket_create) */
  __u64 stack_window_start;  /* ktime of that window's first capture */
  struct st_pending pending[3];
  /* Recently used buckets: the hash lookup of (cache, cgroup) is the largest
   * fixed cost of an event, and a CPU allocates from few buckets at a time. */
  struct st_bucket_cache_entry recent[ST_BUCKET_CACHE];
  /* Object sizes of the caches __alloc_skb allocated from (see cache_object_size). */
  struct {
    __u64 cache;
    __u32 object_size;
    __u32 pad;
  } size_memo[ST_SIZE_MEMO];
  __u32 size_memo_next;
};


struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct st_stats);
} st_stat SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct st_cpu_state);
} st_cpu SEC(".maps");

static __always_inline void stat_add(enum st_stat which, __u64 n)
{
  __u32 zero = 0;
  struct st_stats *s = bpf_map_lookup_elem(&st_stat, &zero);
  if (s && which < ST_STAT_COUNT)
    s->v[which] += n;
}

static __always_inline struct st_cpu_state *cpu_state(void)
{
  __u32 zero = 0;
  return bpf_map_lookup_elem(&st_cpu, &zero);
}

/* A typed (BTF) pointer as a number. The verifier refuses to hash or compare
 * typed pointers as numbers, and a probe_read of the raw argument cost ~35 ns;
 * stored to per-CPU map memory and read back, the pointer is a plain number
 * (allowed to programs loaded with CAP_PERFMON). */
static __always_inline __u64 as_number(struct st_cpu_state *cpu, const void *p)
{
  cpu->scratch = (__u64)p;
  return *(volatile __u64 *)&cpu->scratch;
}

/* Typed pointer arguments cannot be shifted (sampled() hashes them): read the
 * raw argument as a number instead. */
static __always_inline __u64 raw_arg(unsigned long long *ctx, int i)
{
  __u64 v = 0;
  bpf_probe_read_kernel(&v, sizeof(v), &ctx[i]);
  return v;
}

#endif
