// SPDX-License-Identifier: GPL-2.0
/* slabtrace: keeps the set of live slab objects, aggregated in the kernel.
 *
 * Every allocation enters a (cache, cgroup) bucket whose per-CPU counters user
 * space reads cheaply at any interval; sampled objects also enter the live-object
 * map (address -> bucket, stack, size, age) so that frees can be matched by
 * address whatever event reports them. No per-event ring buffer: the hot path is
 * a few map operations.
 *
 * Each program exists twice: tp_btf (typed arguments, the kmem_cache pointer)
 * and classic tracepoint (fallback); user space picks one set with autoload. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

#include "slabtrace/bpf_shared.h"
#include "core_fixes.bpf.h"

char LICENSE[] SEC("license") = "GPL";

/* Set by user space before load. */
const volatile __u32 sample_shift = 0;          /* track 1 in 2^shift addresses */
/* Stacks for 1 in 2^stack_shift tracked objects (ST_STACK_NONE: none), drawn
 * at random (see stack_sampled): unbiased, and scaled in the report. */
const volatile __u32 stack_shift = 0;
const volatile __u32 kmalloc_max_cache_size = 8192;
const volatile __u64 gfp_account = 1ull << 22;
const volatile __u64 gfp_reclaimable = 1ull << 4;
const volatile __u64 gfp_dma = 1ull << 0;
const volatile __u32 cache_filter_count = 0;
const volatile char cache_filter_names[ST_MAX_CACHE_FILTERS][ST_CACHE_NAME_LEN] = {};
const volatile __u64 cache_filter_keys[ST_MAX_CACHE_FILTERS] = {};
/* Code ranges that allocate sk_buffs: [0] where heads and data are allocated
 * (__alloc_skb, kmalloc_reserve), [1] skb_clone. Empty ranges disable pairing. */
const volatile struct st_addr_range skb_alloc_ranges[ST_MAX_SKB_RANGES] = {};
const volatile struct st_addr_range skb_clone_range = {};
/* The BPF memory allocator refills map elements from irq_work with kmalloc:
 * tracing those would make the tracer feed on itself (every tracked object
 * allocates a map element, which is a new object to track). */
const volatile struct st_addr_range ignore_ranges[ST_MAX_IGNORE_RANGES] = {};
/* Interrupt context from the CPU's preempt count, where x86 keeps it in the
 * per-CPU variable __preempt_count (6.15+), followed by cpu_number. A typed
 * ksym would be the direct way, but kernels without CONFIG_KALLSYMS_ALL (this
 * project's own CI) cannot resolve data symbols. Every static per-CPU
 * variable sits at the same distance from every other one on each CPU, and
 * the CPU's runqueue (a per-CPU variable too) is reachable from the current
 * task: user space reads the distance from the BTF's .data..percpu section.
 * When set, the softirq/irq entry and exit programs stay unattached: they
 * cost two program runs per softirq, this costs one 8-byte read per
 * allocation. */
const volatile __u32 irq_from_preempt_count = 0;
const volatile __u32 live_mask = (1 << 21) - 1;
const volatile __s64 preempt_count_from_rq = 0;

/* See struct st_slot. Sized by user space from --max-objects (a power of
 * two, live_mask = size - 1). */
struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(map_flags, BPF_F_MMAPABLE);
  __uint(max_entries, 1 << 21);
  __type(key, __u32);
  __type(value, struct st_slot);
} st_live SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, ST_MAX_BUCKETS);
  __type(key, struct st_bucket_key);
  __type(value, __u32);
} st_bucket_ids SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, ST_MAX_BUCKETS);
  __type(key, __u32);
  __type(value, struct st_bucket);
} st_buckets SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, ST_MAX_BUCKETS);
  __type(key, __u32);
  __type(value, struct st_counters);
} st_counts SEC(".maps");

/* 16 k stacks of 48 frames: 6 MB. A hash collision is retried once without
 * the innermost frame (see on_alloc) rather than sized away. */
struct {
  __uint(type, BPF_MAP_TYPE_STACK_TRACE);
  __uint(max_entries, ST_MAX_STACKS);
  __uint(key_size, sizeof(__u32));
  __uint(value_size, ST_MAX_STACK_DEPTH * sizeof(__u64));
} st_stacks SEC(".maps");

/* Allocated as sockets appear (once per socket per run), not up front. */
struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __uint(max_entries, 65536);
  __type(key, __u64);
  __type(value, struct st_sock);
} st_socks SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 4096);
  __type(key, struct st_drop_key);
  __type(value, __u64);
} st_drop_socks SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, ST_MAX_DROP_REASONS);
  __type(key, __u32);
  __type(value, __u64);
} st_drops SEC(".maps");

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

/* Next free bucket index; buckets are never reused within a run. */
__u32 st_next_bucket = 0;

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

/* preempt_count bits (include/linux/preempt.h): serving a softirq is
 * SOFTIRQ_OFFSET, not the whole softirq mask, which also counts
 * local_bh_disable() in process context; hardirq and NMI have their own. */
#define ST_PC_SOFTIRQ_OFFSET 0x100u
#define ST_PC_HARDIRQ_MASK 0xf0000u
#define ST_PC_NMI_MASK 0xf00000u

static __always_inline int context_level(struct st_cpu_state *cpu)
{
  if (!cpu)
    return ST_CTX_TASK;
  if (irq_from_preempt_count) {
    if (!cpu->preempt_count_addr) {
      /* Once per CPU: a runqueue never moves. */
      struct task_struct *task = (void *)bpf_get_current_task();
      __u64 rq = (__u64)BPF_CORE_READ(task, se.cfs_rq, rq);
      if (!rq)
        return ST_CTX_TASK;
      cpu->preempt_count_addr = rq + preempt_count_from_rq;
    }
    __u32 pc_cpu[2] = {}; /* __preempt_count, cpu_number */
    if (bpf_probe_read_kernel(pc_cpu, sizeof(pc_cpu), (void *)cpu->preempt_count_addr) != 0 ||
        pc_cpu[1] != bpf_get_smp_processor_id()) {
      /* Not what we think it is: say so, and look again next time. */
      stat_add(ST_STAT_IRQ_CONTEXT_UNKNOWN, 1);
      cpu->preempt_count_addr = 0;
      return ST_CTX_TASK;
    }
    if (pc_cpu[0] & (ST_PC_HARDIRQ_MASK | ST_PC_NMI_MASK))
      return ST_CTX_HARDIRQ;
    return (pc_cpu[0] & ST_PC_SOFTIRQ_OFFSET) ? ST_CTX_SOFTIRQ : ST_CTX_TASK;
  }
  return cpu->hardirq_depth ? ST_CTX_HARDIRQ : cpu->softirq_depth ? ST_CTX_SOFTIRQ : ST_CTX_TASK;
}

/* Address-hash sampling: alloc and free of one object always decide alike, so
 * the sample is unbiased and scaling by 2^shift estimates the population. */
static __always_inline int sampled(__u64 ptr)
{
  if (sample_shift == 0)
    return 1;
  __u64 h = (ptr >> 3) * 0x9E3779B97F4A7C15ull;
  return (h >> (64 - sample_shift)) == 0;
}

/* Stacks for 1 in 2^stack_shift tracked allocations, at random. Not by
 * address: churn recycles a few hot addresses (per-CPU caches), and one of them
 * in the stack sample made every reuse pay a stack walk (~2.6 us), which made
 * the cost of a run depend on which addresses the slab handed out. */
static __always_inline int stack_sampled(struct st_cpu_state *cpu)
{
  if (stack_shift == ST_STACK_NONE)
    return 0;
  if (stack_shift == 0)
    return 1;
  if (!cpu)
    return 0;
  /* A random gap to the next capture, uniform over 0..2N-2 (mean N-1): one
   * capture per N tracked allocations on average, one random draw per capture
   * instead of per allocation. */
  if (cpu->stack_countdown) {
    cpu->stack_countdown--;
    return 0;
  }
  __u32 n = 1u << stack_shift;
  __u32 r = bpf_get_prandom_u32() & (2 * n - 1);
  cpu->stack_countdown = r == 2 * n - 1 ? n - 1 : r;
  return 1;
}

/* Allocation time in jiffies: bpf_ktime_get_ns cost ~45 ns per tracked
 * allocation on this VM's clock, bpf_jiffies64 a memory read. Ages need no
 * more than a tick (1-10 ms); user space learns HZ from st_clock. Compare
 * ticks by signed difference: they wrap after 49 days at HZ=1000. */
static __always_inline __u32 now_tick(void)
{
  return (__u32)bpf_jiffies64();
}

static __always_inline int in_range(__u64 addr, const volatile struct st_addr_range *r)
{
  return addr >= r->start && addr < r->end;
}

static __always_inline int in_skb_alloc(__u64 call_site)
{
  for (int i = 0; i < ST_MAX_SKB_RANGES; i++)
    if (in_range(call_site, &skb_alloc_ranges[i]))
      return 1;
  return 0;
}

static __always_inline int ignored_site(__u64 call_site)
{
  for (int i = 0; i < ST_MAX_IGNORE_RANGES; i++)
    if (in_range(call_site, &ignore_ranges[i]))
      return 1;
  return 0;
}

static __always_inline int name_matches(const char *name, const volatile char *want)
{
  for (int i = 0; i < ST_CACHE_NAME_LEN; i++) {
    if (name[i] != want[i])
      return 0;
    if (name[i] == 0)
      return 1;
  }
  return 1;
}

static __always_inline int cache_wanted(__u64 key, const char *name)
{
  if (cache_filter_count == 0)
    return 1;
  for (int i = 0; i < ST_MAX_CACHE_FILTERS; i++) {
    if (i >= cache_filter_count)
      break;
    if (cache_filter_keys[i] == key || name_matches(name, cache_filter_names[i]))
      return 1;
  }
  return 0;
}

/* Finds or creates the bucket of (cache, cgroup). Creation is rare (once per
 * pair per run) and is where the cache name is copied, off the common path. */
static __always_inline struct st_bucket *
bucket_create(struct st_bucket_key *key, const char *name, __u32 object_size, __u32 *idx_out);

/* Index and flags of the bucket of (cache, cgroup); 0 when found or made.
 * The per-CPU cache of recent buckets answers most calls without a map. */
static __always_inline int bucket_for(struct st_cpu_state *cpu, struct st_bucket_key *key, const char *name,
                                      __u32 object_size, __u32 *idx_out, __u32 *flags_out)
{
  struct st_bucket_cache_entry *recent = NULL;
  if (cpu) {
    /* Cache pointers are 64-byte aligned and kmalloc keys differ only in a
     * few bits: mix them, or two busy caches keep evicting each other. */
    __u64 mix = (key->cache ^ key->cgroup) * 0x9E3779B97F4A7C15ull;
    recent = &cpu->recent[mix >> (64 - ST_BUCKET_CACHE_BITS)];
    if (recent->idx && recent->cache == key->cache && recent->cgroup == key->cgroup) {
      *idx_out = recent->idx - 1;
      *flags_out = recent->flags;
      return 0;
    }
  }
  struct st_bucket *b = NULL;
  __u32 *idx = bpf_map_lookup_elem(&st_bucket_ids, key);
  if (idx) {
    *idx_out = *idx;
    b = bpf_map_lookup_elem(&st_buckets, idx);
  } else {
    b = bucket_create(key, name, object_size, idx_out);
  }
  if (!b)
    return -1;
  *flags_out = b->flags;
  if (recent) {
    recent->cache = key->cache;
    recent->cgroup = key->cgroup;
    recent->flags = b->flags;
    recent->idx = *idx_out + 1;
  }
  return 0;
}

/* Creation is rare (once per pair per run) and is where the cache name is
 * copied, off the common path. */
static __always_inline struct st_bucket *
bucket_create(struct st_bucket_key *key, const char *name, __u32 object_size, __u32 *idx_out)
{
  __u32 *idx = NULL;
  __u32 fresh = __sync_fetch_and_add(&st_next_bucket, 1);
  if (fresh >= ST_MAX_BUCKETS) {
    stat_add(ST_STAT_BUCKETS_FULL, 1);
    return NULL;
  }
  struct st_bucket *b = bpf_map_lookup_elem(&st_buckets, &fresh);
  if (!b)
    return NULL;
  b->cache = key->cache;
  b->cgroup = key->cgroup;
  b->object_size = object_size;
  if (name)
    bpf_probe_read_kernel_str(b->name, sizeof(b->name), name);
  b->flags = cache_wanted(key->cache, b->name) ? 0 : ST_BUCKET_IGNORED;
  /* Another CPU may have created the same pair meanwhile: its index wins and
   * ours stays an unused slot. */
  if (bpf_map_update_elem(&st_bucket_ids, key, &fresh, BPF_NOEXIST) != 0) {
    idx = bpf_map_lookup_elem(&st_bucket_ids, key);
    if (!idx)
      return NULL;
    *idx_out = *idx;
    return bpf_map_lookup_elem(&st_buckets, idx);
  }
  *idx_out = fresh;
  return b;
}

static __always_inline __u64 current_cgroup(int ctx_level, int typed)
{
  if (ctx_level == ST_CTX_HARDIRQ)
    return ST_CGROUP_HARDIRQ;
  if (ctx_level == ST_CTX_SOFTIRQ)
    return ST_CGROUP_SOFTIRQ;
  if (!typed)
    return bpf_get_current_cgroup_id();
  /* The helper walks the same pointers, but the call showed in the cost
   * (~15 ns per allocation). */
  struct task_struct *t = bpf_get_current_task_btf();
  return t->cgroups->dfl_cgrp->kn->id;
}

/* ---- the live-object table (struct st_slot) ------------------------------ */

static __always_inline __u32 home_slot(__u64 ptr)
{
  return st_home_slot(ptr, live_mask);
}

static __always_inline struct st_slot *slot_at(__u32 home, __u32 k)
{
  __u32 i = (home + k) & live_mask;
  return bpf_map_lookup_elem(&st_live, &i);
}

static __always_inline __u64 slot_addr(struct st_slot *s)
{
  return *(volatile __u64 *)&s->addr;
}

/* Probing: the first ST_LIVE_FAST_PROBES slots in a plain loop (almost every
 * search ends there), the rest of a long path under bpf_loop, whose callback
 * the verifier checks once: plain loops exceeded its budget at 128 probes
 * (and at 32 when inlined into every caller), and bpf_loop's indirect call on
 * every probe cost ~12 ns per event. The entry points are global functions
 * that take and return numbers; callers look the slot up. */
#define ST_LIVE_FAST_PROBES 8

struct st_find_walk {
  __u64 ptr;
  __u32 home;
  __s32 found; /* slot index, or -1 */
};

static __always_inline long find_probe(__u32 k, struct st_find_walk *w)
{
  struct st_slot *s = slot_at(w->home, k);
  if (!s)
    return 1;
  __u64 a = slot_addr(s);
  if (a == w->ptr) {
    w->found = (__s32)((w->home + k) & live_mask);
    return 1;
  }
  return a == ST_SLOT_EMPTY; /* the path ends at an empty slot */
}

static long find_step(__u32 k, void *data)
{
  return find_probe(k + ST_LIVE_FAST_PROBES, data);
}

/* Index of the slot holding a live address, or -1. */
__noinline int st_live_find(__u64 ptr)
{
  struct st_find_walk w = {.ptr = ptr, .home = home_slot(ptr), .found = -1};
  for (__u32 k = 0; k < ST_LIVE_FAST_PROBES; k++)
    if (find_probe(k, &w))
      return w.found;
  bpf_loop(ST_LIVE_PROBES - ST_LIVE_FAST_PROBES, find_step, &w, 0);
  return w.found;
}

static __always_inline struct st_slot *live_find_at(__u64 ptr, __u32 *index)
{
  int i = st_live_find(ptr);
  if (i < 0)
    return NULL;
  __u32 key = (__u32)i;
  *index = key;
  return bpf_map_lookup_elem(&st_live, &key);
}

static __always_inline struct st_slot *live_find(__u64 ptr)
{
  __u32 index = 0;
  return live_find_at(ptr, &index);
}

#define ST_INSERT_STALE 1 /* the address is in the table already: its free was missed */
#define ST_INSERT_FULL (-28) /* no free slot within ST_LIVE_PROBES: ENOSPC */
#define ST_INSERT_RACE (-11) /* another CPU took the slot first: EAGAIN */

struct st_insert_walk {
  __u64 ptr;
  __u32 home;
  __u32 free_k;    /* probe of the first free slot */
  __s64 free_index; /* -1: none yet */
  __u64 free_was;  /* ST_SLOT_EMPTY or ST_SLOT_DEAD */
  __u32 stale;     /* the address is in the table already */
};

static __always_inline long insert_probe(__u32 k, struct st_insert_walk *w)
{
  struct st_slot *s = slot_at(w->home, k);
  if (!s)
    return 1;
  __u64 a = slot_addr(s);
  if (a == w->ptr) {
    w->stale = 1;
    return 1;
  }
  if ((a == ST_SLOT_EMPTY || a == ST_SLOT_DEAD) && w->free_index < 0) {
    w->free_index = (w->home + k) & live_mask;
    w->free_k = k;
    w->free_was = a;
  }
  return a == ST_SLOT_EMPTY;
}

static long insert_step(__u32 k, void *data)
{
  return insert_probe(k + ST_LIVE_FAST_PROBES, data);
}

/* A slot before ours may have been emptied while we probed (see
 * live_release): our probe path must not end before it reaches us. */
static long mend_step(__u32 k, void *data)
{
  struct st_insert_walk *w = data;
  struct st_slot *s = slot_at(w->home, k);
  if (s && slot_addr(s) == ST_SLOT_EMPTY)
    __sync_val_compare_and_swap(&s->addr, ST_SLOT_EMPTY, ST_SLOT_DEAD);
  return 0;
}

/* Claims the first free slot on the address's probe path. The whole path up
 * to an empty slot is searched first: the address may sit beyond a dead slot. */
__noinline int st_live_insert(__u64 ptr, __u32 packed, __u32 alloc_tick, __u64 link)
{
  struct st_insert_walk w = {.ptr = ptr, .home = home_slot(ptr), .free_index = -1};
  int done = 0;
  for (__u32 k = 0; k < ST_LIVE_FAST_PROBES && !done; k++)
    done = insert_probe(k, &w);
  if (!done)
    bpf_loop(ST_LIVE_PROBES - ST_LIVE_FAST_PROBES, insert_step, &w, 0);
  if (w.stale)
    return ST_INSERT_STALE;
  if (w.free_index < 0)
    return ST_INSERT_FULL;
  __u32 key = (__u32)w.free_index;
  struct st_slot *slot = bpf_map_lookup_elem(&st_live, &key);
  if (!slot)
    return ST_INSERT_FULL;
  if (__sync_val_compare_and_swap(&slot->addr, w.free_was, ptr) != w.free_was)
    return ST_INSERT_RACE;
  /* Published before the object is written: nobody frees an object before
   * its allocation has returned, and the report tolerates one stale slot. */
  slot->obj.packed = packed;
  slot->obj.alloc_tick = alloc_tick;
  slot->obj.link = link;
  if (w.free_k)
    bpf_loop(w.free_k, mend_step, &w, 0);
  return 0;
}

static __always_inline int live_try_insert(__u64 ptr, const struct st_object *obj)
{
  return st_live_insert(ptr, obj->packed, obj->alloc_tick, obj->link);
}

/* Frees a slot. A dead slot whose successor is empty can be empty itself (no
 * probe path runs through it to anything), which keeps churn from filling the
 * table with dead slots. An insert on another CPU may have read this slot
 * live and be claiming the successor right now: if the successor is taken
 * after we emptied ours, we put the dead mark back; if it was taken before
 * the insert finished, the insert restores it (st_live_insert). Either way no
 * live object ends up behind an empty slot, where its free would be missed. */
static __always_inline int live_release(struct st_slot *s, __u64 ptr, __u32 index)
{
  if (__sync_val_compare_and_swap(&s->addr, ptr, ST_SLOT_DEAD) != ptr)
    return 0; /* someone else ended it first */
  struct st_slot *next = slot_at(index, 1);
  if (next && slot_addr(next) == ST_SLOT_EMPTY &&
      __sync_val_compare_and_swap(&s->addr, ST_SLOT_DEAD, ST_SLOT_EMPTY) == ST_SLOT_DEAD &&
      slot_addr(next) != ST_SLOT_EMPTY)
    __sync_val_compare_and_swap(&s->addr, ST_SLOT_EMPTY, ST_SLOT_DEAD);
  return 1;
}

/* A head queued on a socket leaves it when it ends. */
static __always_inline void unqueue(__u64 sk)
{
  struct st_sock *so = bpf_map_lookup_elem(&st_socks, &sk);
  if (so)
    __sync_fetch_and_add(&so->queued, -1);
}

/* Removes a tracked object from the live set and books it as ended. Returns
 * its flags (ST_OBJ_*) or 0 when the address was not tracked; *link gets what
 * hangs off it (see struct st_object). */
static __always_inline __u32 end_slot(struct st_slot *s, __u32 index, __u64 ptr, enum st_end_reason reason,
                                      __u64 *link, __u32 *alloc_tick)
{
  struct st_object *o = &s->obj;
  __u32 packed = o->packed;
  __u32 bucket = ST_OBJ_BUCKET(packed);
  *link = o->link;
  *alloc_tick = o->alloc_tick;
  if (!live_release(s, ptr, index))
    return 0;
  /* Ended bytes are ended objects times the bucket's object size: user space. */
  struct st_counters *c = bpf_map_lookup_elem(&st_counts, &bucket);
  if (c && reason < ST_END_REASONS)
    c->ended[reason] += 1;
  if (reason == ST_END_REUSED)
    stat_add(ST_STAT_MISSED_FREES, 1);
  if ((packed & ST_OBJ_SKB_HEAD) && *link)
    unqueue(*link);
  return (packed & ST_OBJ_FLAGS) | 1; /* never 0 for a tracked object */
}

static __always_inline __u32 end_object(__u64 ptr, enum st_end_reason reason, __u64 *link, __u32 *alloc_tick)
{
  __u32 index = 0;
  struct st_slot *s = live_find_at(ptr, &index);
  if (!s)
    return 0;
  return end_slot(s, index, ptr, reason, link, alloc_tick);
}

/* An skb head is over when its data buffer is freed: skb_release_data frees the
 * data (a traced kfree) while the head itself often returns to a per-CPU NAPI
 * cache or leaves by kmem_cache_free_bulk, neither of which fires a kmem event.
 * A head allocated after its supposed data is a new skb at a reused address:
 * leave it alone. */
static __always_inline void end_linked_head(__u64 head, __u32 data_alloc_tick)
{
  __u32 index = 0;
  struct st_slot *s = live_find_at(head, &index);
  if (!s || !(s->obj.packed & ST_OBJ_SKB_HEAD) || (__s32)(s->obj.alloc_tick - data_alloc_tick) > 0)
    return;
  __u64 link = 0;
  __u32 ms = 0;
  end_slot(s, index, head, ST_END_SKB_DATA, &link, &ms);
}

static __always_inline void end_any(__u64 ptr, enum st_end_reason reason)
{
  __u64 link = 0;
  __u32 alloc_tick = 0;
  __u32 flags = end_object(ptr, reason, &link, &alloc_tick);
  if (!flags)
    return;
  if ((flags & ST_OBJ_SKB_DATA) && link)
    end_linked_head(link, alloc_tick);
}

static __always_inline int on_alloc(void *ctx, __u64 call_site, __u64 ptr, __u64 cache_key,
                                    const char *name, __u32 size, int typed)
{
  if (ignored_site(call_site)) {
    stat_add(ST_STAT_BPF_ALLOCS, 1);
    return 0;
  }
  struct st_cpu_state *cpu = cpu_state();
  int ctx_level = context_level(cpu);

  /* Pair an skb head with its data buffer: in __alloc_skb the head allocation
   * is followed, in the same context on the same CPU, by kmalloc_reserve's.
   * Only allocations inside that code touch the pending slot, so unrelated
   * allocations in between (an irq_work, a new slab's metadata) cannot break
   * the pairing; a failed data allocation clears it. */
  __u32 skb_flags = 0;
  __u64 pending = 0;
  if (in_skb_alloc(call_site) && cpu) {
    __u64 *slot = &cpu->pending_head[ctx_level > 2 ? 2 : ctx_level];
    pending = *slot;
    *slot = 0;
    if (pending) {
      skb_flags = ST_OBJ_SKB_DATA;
    } else if (ptr) {
      skb_flags = ST_OBJ_SKB_HEAD;
      *slot = ptr;
    }
  } else if (in_range(call_site, &skb_clone_range)) {
    skb_flags = ST_OBJ_SKB_HEAD;
  }
  if (!ptr) {
    stat_add(ST_STAT_FAILED_ALLOCS, 1);
    return 0;
  }

  struct st_bucket_key key = {.cache = cache_key, .cgroup = current_cgroup(ctx_level, typed)};
  __u32 idx = 0;
  __u32 bucket_flags = 0;
  if (bucket_for(cpu, &key, name, size, &idx, &bucket_flags) != 0)
    return 0;
  struct st_counters *c = bpf_map_lookup_elem(&st_counts, &idx);
  if (!c)
    return 0;
  c->allocs += 1;
  c->alloc_bytes += size;

  if (!sampled(ptr))
    return 0;
  if (bucket_flags & ST_BUCKET_IGNORED) {
    /* Still end a stale entry at this address: it was freed unseen. */
    end_any(ptr, ST_END_REUSED);
    return 0;
  }

  struct st_object obj = {
      .packed = (idx & ST_OBJ_BUCKET_MASK) | (ST_OBJ_NO_STACK << ST_OBJ_STACK_SHIFT) | skb_flags,
      .alloc_tick = now_tick(),
      .link = (skb_flags & ST_OBJ_SKB_DATA) ? pending : 0,
  };
  if (stack_sampled(cpu)) {
    long id = bpf_get_stackid(ctx, &st_stacks, 0);
    /* -EEXIST: another stack owns this hash bucket, and replacing it would
     * relabel the objects already filed under it. Without the innermost
     * frame (the allocator entry point) the hash lands elsewhere; the call
     * path is kept, which is what the report is about. */
    if (id == -17 /* EEXIST */)
      id = bpf_get_stackid(ctx, &st_stacks, 1);
    if (id < 0)
      stat_add(ST_STAT_STACK_ERRORS, 1);
    else
      obj.packed = (obj.packed & ~(ST_OBJ_NO_STACK << ST_OBJ_STACK_SHIFT)) |
                   (((__u32)id & ST_OBJ_NO_STACK) << ST_OBJ_STACK_SHIFT);
  }
  /* An allocation at an address we think is live proves we missed its free. */
  int err = live_try_insert(ptr, &obj);
  if (err == ST_INSERT_STALE) {
    end_any(ptr, ST_END_REUSED);
    err = live_try_insert(ptr, &obj);
  }
  if (err == ST_INSERT_RACE)
    err = live_try_insert(ptr, &obj);
  if (err) {
    stat_add(err == ST_INSERT_FULL ? ST_STAT_MAP_FULL : ST_STAT_BUSY, 1);
    return 0;
  }
  c->tracked += 1;
  c->tracked_bytes += size;
  if (obj.link)
    stat_add(ST_STAT_SKB_LINKS, 1);
  return 0;
}

static __always_inline int on_free(__u64 ptr)
{
  if (!ptr || !sampled(ptr))
    return 0;
  end_any(ptr, ST_END_FREE);
  return 0;
}

/* kmalloc objects have no cache pointer: name the cache from the slab size and
 * the gfp bits that choose the kmalloc type, in the kernel's order of precedence. */
static __always_inline __u64 kmalloc_key(__u64 bytes_alloc, __u64 gfp)
{
  __u64 kind = ST_KEY_KMALLOC;
  /* One bucket per page order: a bucket has one object size. */
  if (bytes_alloc > kmalloc_max_cache_size)
    return ((__u64)ST_KEY_KMALLOC_LARGE << ST_KEY_KIND_SHIFT) | (bytes_alloc & 0xffffffffull);
  if (gfp & gfp_dma)
    kind = ST_KEY_KMALLOC_DMA;
  else if (gfp & gfp_reclaimable)
    kind = ST_KEY_KMALLOC_RCL;
  else if (gfp & gfp_account)
    kind = ST_KEY_KMALLOC_CG;
  return (kind << ST_KEY_KIND_SHIFT) | (bytes_alloc & 0xffffffffull);
}

/* Typed pointer arguments cannot be shifted (sampled() hashes them): read the
 * raw argument as a number instead. */
static __always_inline __u64 raw_arg(unsigned long long *ctx, int i)
{
  __u64 v = 0;
  bpf_probe_read_kernel(&v, sizeof(v), &ctx[i]);
  return v;
}

/* ---- the clock ------------------------------------------------------------ */

/* Never attached: user space runs it (BPF_PROG_TEST_RUN) to read jiffies and
 * the monotonic clock together, which turns allocation ticks into ages. */
__u64 st_clock_jiffies = 0;
__u64 st_clock_ns = 0;

SEC("raw_tp")
int st_clock(void *ctx)
{
  st_clock_jiffies = bpf_jiffies64();
  st_clock_ns = bpf_ktime_get_ns();
  return 0;
}

/* ---- tp_btf programs --------------------------------------------------- */

SEC("tp_btf/kmem_cache_alloc")
int BPF_PROG(st_btf_cache_alloc, unsigned long call_site, const void *ptr, struct kmem_cache *s,
             gfp_t gfp, int node)
{
  /* Typed arguments: direct reads, no probe_read. The cache address is
   * hashed into the bucket key: as_number. */
  struct st_cpu_state *cpu = cpu_state();
  if (!cpu)
    return 0;
  return on_alloc(ctx, call_site, (__u64)ptr, as_number(cpu, s), s->name, s->object_size, 1);
}

SEC("tp_btf/kmem_cache_free")
int BPF_PROG(st_btf_cache_free, unsigned long call_site, const void *ptr)
{
  return on_free((__u64)ptr);
}

SEC("tp_btf/kmalloc")
int BPF_PROG(st_btf_kmalloc, unsigned long call_site, const void *ptr, size_t bytes_req,
             size_t bytes_alloc, gfp_t gfp, int node)
{
  return on_alloc(ctx, call_site, (__u64)ptr, kmalloc_key(bytes_alloc, gfp), NULL, bytes_alloc, 1);
}

SEC("tp_btf/kfree")
int BPF_PROG(st_btf_kfree, unsigned long call_site, const void *ptr)
{
  return on_free((__u64)ptr);
}

/* ---- classic tracepoint programs (fallback) ----------------------------- */

/* Without the kmem_cache pointer, buckets are keyed by a hash of the cache
 * name the event carries (6.18+); older kernels' events carry no name. */
static __always_inline __u64 name_key(void *ctx, __u32 data_loc, char *name_out)
{
  if (!data_loc)
    return 0;
  bpf_probe_read_kernel_str(name_out, ST_CACHE_NAME_LEN, (char *)ctx + (data_loc & 0xffff));
  __u64 h = 0xcbf29ce484222325ull; /* FNV-1a */
  for (int i = 0; i < ST_CACHE_NAME_LEN; i++) {
    if (!name_out[i])
      break;
    h = (h ^ (__u8)name_out[i]) * 0x100000001b3ull;
  }
  return ((__u64)ST_KEY_NAMED << 60) | (h >> 4);
}

SEC("tracepoint/kmem/kmem_cache_alloc")
int st_tp_cache_alloc(struct trace_event_raw_kmem_cache_alloc *ctx)
{
  char name[ST_CACHE_NAME_LEN] = {};
  __u32 data_loc = 0;
  if (bpf_core_field_exists(ctx->__data_loc_name))
    data_loc = BPF_CORE_READ(ctx, __data_loc_name);
  __u64 bytes = BPF_CORE_READ(ctx, bytes_alloc);
  __u64 key = name_key(ctx, data_loc, name);
  if (!key)
    key = ((__u64)ST_KEY_UNNAMED << ST_KEY_KIND_SHIFT) | (bytes & 0xffffffffull);
  const char *name_src = data_loc ? (char *)ctx + (data_loc & 0xffff) : NULL;
  return on_alloc(ctx, BPF_CORE_READ(ctx, call_site), (__u64)BPF_CORE_READ(ctx, ptr), key,
                  name_src, bytes, 0);
}

SEC("tracepoint/kmem/kmem_cache_free")
int st_tp_cache_free(struct trace_event_raw_kmem_cache_free *ctx)
{
  return on_free((__u64)BPF_CORE_READ(ctx, ptr));
}

SEC("tracepoint/kmem/kmalloc")
int st_tp_kmalloc(struct trace_event_raw_kmalloc *ctx)
{
  __u64 bytes = BPF_CORE_READ(ctx, bytes_alloc);
  return on_alloc(ctx, BPF_CORE_READ(ctx, call_site), (__u64)BPF_CORE_READ(ctx, ptr),
                  kmalloc_key(bytes, BPF_CORE_READ(ctx, gfp_flags)), NULL, bytes, 0);
}

SEC("tracepoint/kmem/kfree")
int st_tp_kfree(struct trace_event_raw_kfree *ctx)
{
  return on_free((__u64)BPF_CORE_READ(ctx, ptr));
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

/* ---- sk_buffs ------------------------------------------------------------ */

static __always_inline __u64 socket_inode(const struct sock *sk);

/* Drops by reason and by the socket they were meant for (rx_sk, 6.12+), or
 * the socket that sent them. A drop storm is not a leak: the report tells them apart. */
static __always_inline void count_drop(__u32 reason, const struct sock *sk)
{
  struct st_drop_key key = {.reason = reason};
  if (sk) {
    key.inode = socket_inode(sk);
    key.cgroup = sock_cgroup_id(sk);
  }
  __u64 one = 1;
  __u64 *n = bpf_map_lookup_elem(&st_drop_socks, &key);
  if (n)
    __sync_fetch_and_add(n, 1);
  else
    bpf_map_update_elem(&st_drop_socks, &key, &one, BPF_NOEXIST);
}

static __always_inline int on_skb_end(__u64 skb, __u32 reason, int dropped)
{
  if (dropped) {
    __u32 r = reason < ST_MAX_DROP_REASONS ? reason : ST_MAX_DROP_REASONS - 1;
    __u64 *n = bpf_map_lookup_elem(&st_drops, &r);
    if (n)
      *n += 1;
  }
  if (!skb || !sampled(skb))
    return 0;
  __u64 link = 0;
  __u32 ms = 0;
  end_object(skb, ST_END_SKB_EVENT, &link, &ms);
  return 0;
}

SEC("tp_btf/consume_skb")
int BPF_PROG(st_btf_consume_skb, struct sk_buff *skb)
{
  return on_skb_end(raw_arg(ctx, 0), 0, 0);
}

SEC("tp_btf/kfree_skb")
int BPF_PROG(st_btf_kfree_skb, struct sk_buff *skb, void *location, enum skb_drop_reason reason)
{
  const struct sock *sk = NULL;
  /* The receiving socket is the tracepoint's fourth argument since 6.12. */
  if (bpf_core_field_exists(struct trace_event_raw_kfree_skb, rx_sk))
    sk = (const struct sock *)raw_arg(ctx, 3);
  if (!sk)
    sk = BPF_CORE_READ(skb, sk);
  count_drop((__u32)reason, sk);
  return on_skb_end(raw_arg(ctx, 0), (__u32)reason, 1);
}

SEC("tracepoint/skb/consume_skb")
int st_tp_consume_skb(struct trace_event_raw_consume_skb *ctx)
{
  return on_skb_end((__u64)BPF_CORE_READ(ctx, skbaddr), 0, 0);
}

SEC("tracepoint/skb/kfree_skb")
int st_tp_kfree_skb(struct trace_event_raw_kfree_skb *ctx)
{
  __u32 reason = 0;
  if (bpf_core_field_exists(ctx->reason))
    reason = BPF_CORE_READ(ctx, reason);
  const struct sock *sk = NULL;
  if (bpf_core_field_exists(ctx->rx_sk))
    sk = BPF_CORE_READ(ctx, rx_sk);
  count_drop(reason, sk);
  return on_skb_end((__u64)BPF_CORE_READ(ctx, skbaddr), reason, 1);
}

static __always_inline __u64 socket_inode(const struct sock *sk)
{
  struct socket *sock = BPF_CORE_READ(sk, sk_socket);
  if (!sock)
    return 0;
  /* A socket's inode sits right after it in struct socket_alloc. */
  struct inode *ino = (void *)sock + bpf_core_field_offset(struct socket_alloc, vfs_inode);
  return BPF_CORE_READ(ino, i_ino);
}

static __always_inline struct st_sock *socket_entry(const struct sock *sk)
{
  __u64 key = (__u64)sk;
  struct st_sock *known = bpf_map_lookup_elem(&st_socks, &key);
  if (known)
    return known;
  struct st_sock info = {};
  struct socket *sock = BPF_CORE_READ(sk, sk_socket);
  info.inode = socket_inode(sk);
  if (sock)
    info.type = BPF_CORE_READ(sock, type);
  info.netns = BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum);
  info.family = BPF_CORE_READ(sk, __sk_common.skc_family);
  info.protocol = BPF_CORE_READ_BITFIELD_PROBED(sk, sk_protocol);
  info.cgroup = sock_cgroup_id(sk);
  if (bpf_map_update_elem(&st_socks, &key, &info, BPF_NOEXIST) != 0 &&
      !bpf_map_lookup_elem(&st_socks, &key)) {
    stat_add(ST_STAT_SOCKS_FULL, 1);
    return NULL;
  }
  return bpf_map_lookup_elem(&st_socks, &key);
}

/* sk_data_ready fires after skbs are queued on a socket: the queue's tail end
 * holds them, which ties each to the socket that now holds it (skb->sk cannot:
 * it is NULL on queued UDP skbs and the sender on unix ones). UDP on 6.17+
 * splices batches from per-NUMA producer queues and signals once per batch, so
 * walk back from the tail until an skb already tied to this socket. */
#define ST_QUEUE_WALK 32

/* Ties one queued skb to the socket whose queue holds it. Returns 1 when the
 * walk can stop: the skb was tied to this socket already, or no room. */
static __always_inline int tie_queued(__u64 addr, const struct sock *sk, __u64 sk_addr, struct st_sock **so,
                                      __u32 truesize)
{
  if (!sampled(addr))
    return 0;
  struct st_slot *s = live_find(addr);
  if (!s || !(s->obj.packed & ST_OBJ_SKB_HEAD))
    return 0;
  struct st_object *o = &s->obj;
  if (o->link == sk_addr)
    return 1;
  if (!*so)
    *so = socket_entry(sk);
  if (!*so)
    return 1;
  if (o->link)
    unqueue(o->link); /* moved from another socket's queue */
  o->link = sk_addr;
  __sync_fetch_and_add(&(*so)->queued, 1);
  (*so)->last_truesize = truesize;
  stat_add(ST_STAT_QUEUED, 1);
  return 0;
}

/* Classic tracepoint: every pointer read is a probe_read. */
static __always_inline int on_data_ready(const struct sock *sk)
{
  if (!sk)
    return 0;
  __u64 sk_addr = (__u64)sk;
  __u64 queue_head = (__u64)&sk->sk_receive_queue;
  struct sk_buff *skb = BPF_CORE_READ(sk, sk_receive_queue.prev);
  struct st_sock *so = NULL;
  for (int i = 0; i < ST_QUEUE_WALK; i++) {
    __u64 addr = (__u64)skb;
    if (!addr || addr == queue_head)
      break;
    if (tie_queued(addr, sk, sk_addr, &so, BPF_CORE_READ(skb, truesize)))
      break;
    skb = BPF_CORE_READ(skb, prev);
  }
  return 0;
}

/* tp_btf: the same walk with direct loads, each a few ns where a probe_read
 * costs ~35; addresses are hashed and compared through as_number. */
static __always_inline int on_data_ready_typed(const struct sock *sk)
{
  struct st_cpu_state *cpu = cpu_state();
  if (!sk || !cpu)
    return 0;
  __u64 sk_addr = as_number(cpu, sk);
  __u64 queue_head = sk_addr + bpf_core_field_offset(struct sock, sk_receive_queue);
  struct sk_buff *skb = sk->sk_receive_queue.prev;
  struct st_sock *so = NULL;
  for (int i = 0; i < ST_QUEUE_WALK; i++) {
    __u64 addr = as_number(cpu, skb);
    if (!addr || addr == queue_head)
      break;
    if (sampled(addr)) {
      if (tie_queued(addr, sk, sk_addr, &so, skb->truesize))
        break;
    }
    skb = skb->prev;
  }
  return 0;
}

/* Data copied to the reader: the skb has left the queue (it may still wait in
 * a per-CPU defer list before it is freed), so its socket no longer holds it.
 * UDP's linear copy (copy_linear_skb) fires no event, so for UDP the report's
 * cross-check with the socket's own queue accounting does this job.
 * A MSG_PEEK or a partial TCP read leaves it queued; the next sk_data_ready
 * walk ties such skbs to their socket again only if they are at the tail, so
 * a peeking reader can hide a few: the kernel's queue accounting is beside
 * every holder to catch that. */
static __always_inline int on_read(__u64 skb)
{
  if (!skb || !sampled(skb))
    return 0;
  struct st_slot *s = live_find(skb);
  struct st_object *o = s ? &s->obj : NULL;
  if (o && (o->packed & ST_OBJ_SKB_HEAD) && o->link) {
    __u64 sk = o->link;
    o->link = 0;
    unqueue(sk);
  }
  return 0;
}

SEC("tp_btf/skb_copy_datagram_iovec")
int BPF_PROG(st_btf_skb_read, const struct sk_buff *skb)
{
  return on_read(raw_arg(ctx, 0));
}

SEC("tracepoint/skb/skb_copy_datagram_iovec")
int st_tp_skb_read(struct trace_event_raw_skb_copy_datagram_iovec *ctx)
{
  return on_read((__u64)BPF_CORE_READ(ctx, skbaddr));
}

SEC("tp_btf/sk_data_ready")
int BPF_PROG(st_btf_data_ready, const struct sock *sk)
{
  return on_data_ready_typed(sk);
}

SEC("tracepoint/sock/sk_data_ready")
int st_tp_data_ready(struct trace_event_raw_sk_data_ready *ctx)
{
  return on_data_ready((const struct sock *)BPF_CORE_READ(ctx, skaddr));
}
