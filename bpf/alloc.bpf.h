/* Allocation paths: kmem_cache_alloc / kmalloc enter objects into their bucket
 * and (sampled) into the live table; every free event ends them by address. */
#ifndef SLABTRACE_ALLOC_BPF_H
#define SLABTRACE_ALLOC_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

#include "slabtrace/bpf_shared.h"
#include "config.bpf.h"
#include "percpu.bpf.h"
#include "irq_context.bpf.h"
#include "buckets.bpf.h"
#include "live_table.bpf.h"
#include "sockets.bpf.h"
#include "errno.bpf.h"

/* 16 k stacks of 48 frames: 6 MB. A hash collision is retried once without
 * the innermost frame (see on_alloc) rather than sized away. */
struct {
  __uint(type, BPF_MAP_TYPE_STACK_TRACE);
  __uint(max_entries, ST_MAX_STACKS);
  __uint(key_size, sizeof(__u32));
  __uint(value_size, ST_MAX_STACK_DEPTH * sizeof(__u64));
} st_stacks SEC(".maps");

/* Stacks for 1 in 2^stack_shift tracked allocations, at random. Not by
 * address: churn recycles a few hot addresses (per-CPU caches), and one of them
 * in the stack sample made every reuse pay a stack walk (~2.6 us), which made
 * the cost of a run depend on which addresses the slab handed out.
 * A capture costs 0.5-4 us (the unwinder), which at 1 in 64 was a fifth of
 * the default mode's cost under UDP churn. Past stack_budget captures in a
 * window on this CPU, the rest of the window draws 2^ST_STACK_THROTTLE_SHIFT
 * times more rarely, and its objects are marked so that the report weighs
 * them by the rate they were drawn at: still unbiased, at a bounded cost. */
#define ST_DRAW_NONE 0
#define ST_DRAW_FULL 1      /* drawn at 1 in 2^stack_shift */
#define ST_DRAW_THROTTLED 2 /* drawn at the throttled rate */
#define ST_OBJ_STACK_BITS ((ST_OBJ_NO_STACK << ST_OBJ_STACK_SHIFT) | ST_OBJ_STACK_THROTTLED)

static __always_inline int stack_draw(struct st_cpu_state *cpu)
{
  if (stack_shift == ST_STACK_NONE)
    return ST_DRAW_NONE;
  if (stack_shift == 0)
    return ST_DRAW_FULL;
  if (!cpu)
    return ST_DRAW_NONE;
  /* A random gap to the next capture, uniform over 0..2N-2 (mean N-1): one
   * capture per N tracked allocations on average, one random draw per capture
   * instead of per allocation. The object that ends a gap is drawn at the
   * rate the gap was drawn at. */
  if (cpu->stack_countdown) {
    cpu->stack_countdown--;
    return ST_DRAW_NONE;
  }
  int drawn = cpu->stack_gap_throttled ? ST_DRAW_THROTTLED : ST_DRAW_FULL;
  __u32 shift = stack_shift;
  if (stack_budget) {
    /* A clock read per capture, not per allocation. */
    __u64 now = bpf_ktime_get_ns();
    if (now - cpu->stack_window_start >= ST_STACK_WINDOW_NS) {
      cpu->stack_window_start = now;
      cpu->stack_window_captures = 0;
    }
    if (++cpu->stack_window_captures > stack_budget)
      shift += ST_STACK_THROTTLE_SHIFT; /* user space keeps stack_shift + this below 31 */
  }
  cpu->stack_gap_throttled = shift != stack_shift;
  __u32 n = 1u << (shift & 31);
  __u32 r = bpf_get_prandom_u32() & (2 * n - 1);
  cpu->stack_countdown = r == 2 * n - 1 ? n - 1 : r;
  if (drawn == ST_DRAW_THROTTLED)
    stat_add(ST_STAT_STACKS_THROTTLED, 1);
  return drawn;
}

/* The stack bits of an object's `packed` for a draw: the stack id, and the
 * rate it was drawn at; no stack when the draw or the capture failed. */
static __always_inline __u32 stack_bits_of(void *ctx, int drawn)
{
  if (drawn == ST_DRAW_NONE)
    return ST_OBJ_NO_STACK << ST_OBJ_STACK_SHIFT;
  long id = bpf_get_stackid(ctx, &st_stacks, 0);
  /* -EEXIST: another stack owns this hash bucket, and replacing it would
   * relabel the objects already filed under it. Without the innermost
   * frame (the allocator entry point) the hash lands elsewhere; the call
   * path is kept, which is what the report is about. */
  if (id == -ST_EEXIST)
    id = bpf_get_stackid(ctx, &st_stacks, 1);
  if (id < 0) {
    stat_add(ST_STAT_STACK_ERRORS, 1);
    return ST_OBJ_NO_STACK << ST_OBJ_STACK_SHIFT;
  }
  return (((__u32)id & ST_OBJ_NO_STACK) << ST_OBJ_STACK_SHIFT) |
         (drawn == ST_DRAW_THROTTLED ? ST_OBJ_STACK_THROTTLED : 0);
}

/* Allocation time in jiffies: bpf_ktime_get_ns cost ~45 ns per tracked
 * allocation on this VM's clock, bpf_jiffies64 a memory read. Ages need no
 * more than a tick (1-10 ms); user space learns HZ from st_clock. Compare
 * ticks by signed difference: they wrap after 49 days at HZ=1000. */
static __always_inline __u32 now_tick(void)
{
  return (__u32)bpf_jiffies64();
}

/* The head buckets of one-slot sk_buffs, by their data's bucket (+ 1; 0: none
 * yet). One per data bucket: the head cache is one cache, and a head and its
 * data are allocated in one context, so of one cgroup. User space reads it. */
__u32 st_head_bucket_of[ST_MAX_BUCKETS] = {};

static __always_inline void end_head_count(__u32 data_bucket, enum st_end_reason reason)
{
  __u32 hb = st_head_bucket_of[data_bucket & ST_OBJ_BUCKET_MASK];
  if (!hb)
    return;
  __u32 idx = hb - 1;
  struct st_counters *c = bpf_map_lookup_elem(&st_counts, &idx);
  if (c && reason < ST_END_REASONS)
    c->ended[reason] += 1;
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
  /* Counts only: bytes are counts times the bucket's object size (user space). */
  struct st_counters *c = bpf_map_lookup_elem(&st_counts, &bucket);
  if (c && reason < ST_END_REASONS)
    c->ended[reason] += 1;
  if (reason == ST_END_REUSED)
    stat_add(ST_STAT_MISSED_FREES, 1);
  /* A whole sk_buff: its head ends with its data, as a head in a slot of its
   * own does (end_linked_head), also when the data's free was the one missed:
   * the head's address was not reused, and the one missed free is counted. */
  if ((packed & ST_OBJ_SKB_BOTH) == ST_OBJ_SKB_BOTH)
    end_head_count(bucket, ST_END_SKB_DATA);
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
  if (!s || (s->obj.packed & ST_OBJ_SKB_BOTH) != ST_OBJ_SKB_HEAD ||
      (__s32)(s->obj.alloc_tick - data_alloc_tick) > 0)
    return;
  __u64 link = 0;
  __u32 ms = 0;
  end_slot(s, index, head, ST_END_SKB_DATA, &link, &ms);
}

/* Returns the ended object's flags (see end_slot), 0 when none was tracked. */
static __always_inline __u32 end_any(__u64 ptr, enum st_end_reason reason)
{
  __u64 link = 0;
  __u32 alloc_tick = 0;
  __u32 flags = end_object(ptr, reason, &link, &alloc_tick);
  if ((flags & ST_OBJ_SKB_BOTH) == ST_OBJ_SKB_DATA && link)
    end_linked_head(link, alloc_tick);
  return flags;
}

/* The one slot of an sk_buff (ST_OBJ_SKB_BOTH), by its data buffer's address,
 * skb->head. */
static __always_inline struct st_slot *one_slot_at(__u64 data)
{
  if (!skb_one_slot || !data)
    return NULL;
  struct st_slot *s = live_find(data);
  return s && (s->obj.packed & ST_OBJ_SKB_BOTH) == ST_OBJ_SKB_BOTH ? s : NULL;
}

/* The same by the sk_buff's own address. */
static __always_inline struct st_slot *one_slot_of(__u64 skb)
{
  if (!skb_one_slot || !skb)
    return NULL;
  return one_slot_at((__u64)BPF_CORE_READ((const struct sk_buff *)skb, head));
}

/* A tracked sk_buff head: its own slot, or its sk_buff's one slot. */
static __always_inline struct st_slot *head_slot(__u64 skb)
{
  struct st_slot *s = live_find(skb);
  if (s && (s->obj.packed & ST_OBJ_SKB_HEAD))
    return s;
  return one_slot_of(skb);
}

/* The head of a one-slot sk_buff left before its data (an skb event; a
 * clone's original freed while the clone holds the data): the slot goes on as
 * its data buffer alone. */
static __always_inline void end_head_of_slot(struct st_slot *s, enum st_end_reason reason)
{
  __u32 packed = s->obj.packed;
  if ((packed & ST_OBJ_SKB_BOTH) != ST_OBJ_SKB_BOTH)
    return;
  s->obj.packed = packed & ~ST_OBJ_SKB_HEAD;
  __u64 sk = s->obj.link;
  s->obj.link = 0;
  if (sk)
    unqueue(sk);
  end_head_count(ST_OBJ_BUCKET(packed), reason);
}

/* The skb head cache as the allocation path names it: heads handed out by the
 * per-CPU NAPI skb cache fire no allocation event and are adopted into its
 * buckets when a receive path first shows them (napi.bpf.h). Learned from the
 * first head allocated by __alloc_skb or skb_clone from it. */
__u64 st_skb_head_cache = 0;
__u32 st_skb_head_size = 0;
char st_skb_head_name[ST_CACHE_NAME_LEN] = {};

static __always_inline void learn_skb_head_cache(__u64 cache_key, const char *name, __u32 size)
{
  st_skb_head_size = size;
  if (name)
    bpf_probe_read_kernel_str(st_skb_head_name, sizeof(st_skb_head_name), name);
  st_skb_head_cache = cache_key; /* last: adoption waits for all three */
}

/* The return address into __alloc_skb's caller, from the stack of a head
 * allocated in it: the frame after the first one inside __alloc_skb. */
#define ST_SKB_SITE_FRAMES 12 /* the tracing plumbing and the BPF program come first */
static __always_inline __u64 alloc_skb_return_site(void *ctx)
{
  __u64 frames[ST_SKB_SITE_FRAMES] = {};
  if (bpf_get_stack(ctx, frames, sizeof(frames), 0) < 0)
    return 0;
  for (int i = 0; i < ST_SKB_SITE_FRAMES - 1; i++)
    if (in_range(frames[i], &skb_alloc_ranges[0]))
      return frames[i + 1];
  return 0;
}

/* An sk_buff head is a kmem_cache object the size of struct sk_buff (the head
 * cache) or of two and a count (the fclone cache). Nothing else allocated in
 * __alloc_skb is: the data buffer comes from kmalloc, or from the small-head
 * cache (6.3+), whose objects hold packet bytes and struct skb_shared_info. */
static __always_inline int skb_head_sized(__u32 object_size)
{
  return object_size == bpf_core_type_size(struct sk_buff) ||
         (bpf_core_type_exists(struct sk_buff_fclones) && object_size == bpf_core_type_size(struct sk_buff_fclones));
}

/* The requested size of a kmem_cache_alloc event whose cache is known only by
 * its address (raw_tp, 6.1+): read when the role of an allocation in
 * __alloc_skb depends on it. */
#define ST_SIZE_OF_CACHE 0xffffffffu

static __always_inline __u32 cache_object_size(struct st_cpu_state *cpu, __u64 cache)
{
  if (!cache || !cpu)
    return 0;
  /* __alloc_skb allocates from two caches at most (the head's and, 6.3+,
   * the small-head data cache): remembered per CPU, the probe_read (~35 ns)
   * is paid once per cache instead of twice per sk_buff. */
  for (int i = 0; i < ST_SIZE_MEMO; i++)
    if (cpu->size_memo[i].cache == cache)
      return cpu->size_memo[i].object_size;
  const struct kmem_cache *s = (const struct kmem_cache *)cache;
  __u32 size = BPF_CORE_READ(s, object_size);
  __u32 i = cpu->size_memo_next++ % ST_SIZE_MEMO;
  cpu->size_memo[i].cache = cache;
  cpu->size_memo[i].object_size = size;
  return size;
}

/* Where kmalloc_reserve is a macro (before 6.3), a data buffer's call site is
 * the return address of its __alloc_skb call, in one of __alloc_skb's few
 * callers. Each is learned once from a head's stack; a head's stack is taken
 * only while none is known, and after a head whose data never matched (a
 * caller not yet seen): a stack walk per head cost ~4 us on this machine.
 * Nothing but __alloc_skb reports such an address as a call site: it is
 * where its own _RET_IP_ points. */
#define ST_SKB_DATA_SITES 16
__u64 st_skb_data_sites[ST_SKB_DATA_SITES] = {};

static __always_inline int known_data_site(__u64 site)
{
  for (int i = 0; i < ST_SKB_DATA_SITES; i++) {
    __u64 known = st_skb_data_sites[i];
    if (known == site)
      return 1;
    if (!known)
      return 0;
  }
  return 0;
}

static __always_inline void learn_data_site(__u64 site)
{
  if (!site || known_data_site(site))
    return;
  for (int i = 0; i < ST_SKB_DATA_SITES; i++) {
#ifndef ST_LEGACY
    __u64 was = __sync_val_compare_and_swap(&st_skb_data_sites[i], 0, site);
    if (was == 0 || was == site)
      return;
#else
    /* No compare-and-swap before 5.12: two CPUs may write one entry, and the
     * site that lost is learned again from its next unmatched head. */
    if (!st_skb_data_sites[i]) {
      st_skb_data_sites[i] = site;
      return;
    }
#endif
  }
}

/* Enters an object into the live table, replacing a stale entry at its
 * address. Returns 0 when it was entered. */
static __always_inline int file_slot(__u64 ptr, const struct st_object *obj)
{
  /* An allocation at an address we think is live proves we missed its free. */
  int err = live_try_insert(ptr, obj);
  if (err == ST_INSERT_STALE) {
    end_any(ptr, ST_END_REUSED);
    err = live_try_insert(ptr, obj);
  }
  return live_insert_settle(ptr, obj, err);
}

/* A head that waited to share its data's slot gets its own after all (its
 * data never came, or could not take it). */
static __always_inline void file_pending_head(struct st_cpu_state *cpu, int level, __u64 head, __u32 head_bucket)
{
  if (level < 0 || level > 2 || !head)
    return;
  __u32 idx = head_bucket - 1;
  struct st_counters *c = bpf_map_lookup_elem(&st_counts, &idx);
  if (!c)
    return;
  struct st_object obj = {
      .packed = (idx & ST_OBJ_BUCKET_MASK) | (cpu->pending[level].stack & ST_OBJ_STACK_BITS) | ST_OBJ_SKB_HEAD,
      .alloc_tick = now_tick(),
  };
  if (file_slot(head, &obj))
    return;
  c->tracked += 1;
}

/* An allocation booked in its bucket: the bucket, its counters, and the
 * object's size. */
struct st_booking {
  struct st_counters *c;
  __u32 idx;
  __u32 flags; /* the bucket's ST_BUCKET_* flags */
  __u32 size;
};

/* Finds the bucket of an allocation in the sample and counts the allocation
 * there. Returns 0 when booked. */
static __always_inline int book(struct st_cpu_state *cpu, int ctx_level, int typed, __u64 cache_key,
                                const struct st_cache_ref *ref, __u32 skb_flags, struct st_booking *b)
{
  struct st_bucket_key key = {.cache = cache_key, .cgroup = current_cgroup(ctx_level, typed)};
  if (bucket_for(cpu, &key, ref, &b->idx, &b->flags, &b->size) != 0)
    return -1;
  struct st_counters *c = bpf_map_lookup_elem(&st_counts, &b->idx);
  if (!c)
    return -1;
  c->allocs += 1;
  b->c = c;
  /* Not the fclone cache (two sk_buffs and a count per object). */
  if ((skb_flags & ST_OBJ_SKB_HEAD) && !st_skb_head_cache && b->size < 2 * bpf_core_type_size(struct sk_buff)) {
    /* raw_tp events carry the cache, not its name: read it once, here. */
    const char *name = ref->name;
    const struct kmem_cache *s = (const struct kmem_cache *)ref->cache;
    if (!name && s)
      name = BPF_CORE_READ(s, name);
    learn_skb_head_cache(cache_key, name, b->size);
  }
  return 0;
}

/* Files a booked allocation: unless its bucket is ignored, its slot.
 * stack_bits: ST_PENDING_UNDECIDED to draw. level: the context's pending skb
 * (0-2). defer: an skb head that, if of the head cache, waits for its data to
 * share one slot (skb_one_slot): its bucket is left in
 * cpu->pending[level].bucket. head_bucket (+ 1): a data buffer whose head
 * waits so; link is then that head's address. Returns the stack bits it was
 * given (for its sk_buff's data buffer to share), ST_PENDING_UNDECIDED when
 * its bucket took none. */
static __always_inline __u32 file_booked(void *ctx, struct st_cpu_state *cpu, struct st_booking *b, __u64 ptr,
                                         __u64 cache_key, __u32 skb_flags, __u64 link, __u32 stack_bits, int level,
                                         int defer, __u32 head_bucket)
{
  if (level < 0 || level > 2)
    return ST_PENDING_UNDECIDED;
  __u32 idx = b->idx;
  if (b->flags & ST_BUCKET_IGNORED) {
    /* Still end a stale entry at this address: it was freed unseen. */
    end_any(ptr, ST_END_REUSED);
    if (head_bucket && cpu)
      file_pending_head(cpu, level, link, head_bucket);
    return ST_PENDING_UNDECIDED;
  }

  if (stack_bits == ST_PENDING_UNDECIDED)
    stack_bits = stack_bits_of(ctx, stack_draw(cpu));
  if (defer && skb_one_slot && cpu && cache_key == st_skb_head_cache) {
    cpu->pending[level].bucket = idx + 1;
    return stack_bits;
  }
  if (head_bucket && cpu) {
    /* The head shares this slot if this bucket's heads are in its bucket
     * (always, but checked: the report reads them from here). */
    __u32 *of = &st_head_bucket_of[idx & ST_OBJ_BUCKET_MASK];
    if (*of == 0)
      *of = head_bucket;
    if (*of == head_bucket) {
      skb_flags = ST_OBJ_SKB_BOTH;
      link = 0;
    } else {
      file_pending_head(cpu, level, link, head_bucket);
      head_bucket = 0;
    }
  }
  struct st_object obj = {
      .packed = (idx & ST_OBJ_BUCKET_MASK) | (stack_bits & ST_OBJ_STACK_BITS) | skb_flags,
      .alloc_tick = now_tick(),
      .link = link,
  };
  if (file_slot(ptr, &obj))
    return stack_bits;
  struct st_counters *c = b->c;
  c->tracked += 1;
  if (head_bucket) {
    __u32 hidx = head_bucket - 1;
    struct st_counters *hc = bpf_map_lookup_elem(&st_counts, &hidx);
    if (hc)
      hc->tracked += 1;
  }
  return stack_bits;
}

/* Books and files one allocation in the sample (see book, file_booked). */
static __always_inline __u32 track(void *ctx, struct st_cpu_state *cpu, int ctx_level, int typed, __u64 ptr,
                                   __u64 cache_key, const struct st_cache_ref *ref, __u32 skb_flags, __u64 link,
                                   __u32 stack_bits, int level, int defer, __u32 head_bucket)
{
  struct st_booking b = {};
  if (book(cpu, ctx_level, typed, cache_key, ref, skb_flags, &b) != 0)
    return ST_PENDING_UNDECIDED;
  return file_booked(ctx, cpu, &b, ptr, cache_key, skb_flags, link, stack_bits, level, defer, head_bucket);
}

/* cache_key: the bucket's cache (see struct st_bucket_key); ref: what else is
 * known about the cache (struct st_cache_ref); object_size: the cache's object
 * size for kmem_cache_alloc events (ST_SIZE_OF_CACHE: read it from
 * ref->cache), 0 for kmalloc; typed: the program may use BTF pointers
 * (tp_btf, raw_tp). */
static __always_inline int on_alloc(void *ctx, __u64 call_site, __u64 ptr, __u64 cache_key,
                                    const struct st_cache_ref *ref, __u32 object_size, int typed)
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
   * the pairing; a failed data allocation clears it. Which of the two an
   * allocation is comes from its size, never from the order alone: attached
   * between a head and its data, the first data buffer seen would take the
   * head's role and every later pair would be read the wrong way round
   * (measured: in 5 runs of 6, every head ended as an address reused).
   * Where kmalloc_reserve is a macro (before 6.3, e.g. 5.10) the data's call
   * site is __alloc_skb's own return address (see known_data_site). */
  __u32 skb_flags = 0;
  __u64 pending = 0;
  __u32 head_bucket = 0; /* the pending head waits to share its data's slot */
  int level = ctx_level > 2 ? 2 : ctx_level;
  int skb_site = in_skb_alloc(call_site);
  if (cpu && !skb_site && skb_data_site_is_caller && cpu->pending[level].head && !object_size &&
      (call_site == cpu->pending[level].site || known_data_site(call_site)))
    skb_site = 1;
  if (skb_site && cpu) {
    __u64 *slot = &cpu->pending[level].head;
    if (object_size == ST_SIZE_OF_CACHE)
      object_size = cache_object_size(cpu, ref->cache);
    int head = skb_head_sized(object_size);
    __u64 unmatched = head ? *slot : 0; /* a head before this one whose data never came */
    pending = head ? 0 : *slot;
    *slot = 0;
    head_bucket = cpu->pending[level].bucket;
    cpu->pending[level].bucket = 0;
    if (unmatched && head_bucket) {
      file_pending_head(cpu, level, unmatched, head_bucket);
      head_bucket = 0;
    }
    if (pending) {
      skb_flags = ST_OBJ_SKB_DATA;
    } else if (head && ptr) {
      skb_flags = ST_OBJ_SKB_HEAD;
      *slot = ptr;
      cpu->pending[level].stack = ST_PENDING_UNDECIDED;
      cpu->pending[level].deferred = 0;
      if (skb_data_site_is_caller) {
        __u64 site = 0;
        if (unmatched || !st_skb_data_sites[0]) {
          site = alloc_skb_return_site(ctx);
          learn_data_site(site);
        }
        cpu->pending[level].site = site;
      }
    }
  } else if (in_range(call_site, &skb_clone_range)) {
    skb_flags = ST_OBJ_SKB_HEAD;
  }
  if (!ptr) {
    /* A data buffer that failed: __alloc_skb frees its head. */
    stat_add(ST_STAT_FAILED_ALLOCS, 1);
    return 0;
  }
  /* Sampling (--sample N): an allocation outside the sample costs no more
   * than the skb pairing above, which must see every allocation. Its
   * allocation counters are then 1 in N too, scaled by user space like the
   * rest: reading the cgroup, finding the bucket and counting were most of
   * what an unsampled allocation cost (serve traces at 1 in 16).
   * An sk_buff from __alloc_skb is drawn by its data buffer's address: frees
   * are filtered by the address freed, and the data's free is what ends the
   * pair (6.18 frees heads through the NAPI cache, unseen). Drawn by their
   * own addresses, 15 in 16 sampled heads had an unsampled data buffer and
   * ended only when their address came back, as missed frees. So the head
   * waits here for its data, and is filed with it. Not on classic
   * tracepoints, whose cache name lives in the event record, gone by then.
   * Unsampled, a head of the head cache that will share its data's slot
   * (skb_one_slot) waits too, with its stack drawn here: its data's bucket
   * names its own (st_head_bucket_of, one head bucket per data bucket), which
   * spares it the cgroup, bucket and counter lookups of an event of its own.
   * Not under a cache filter, where its bucket may be one left out and its
   * stack draw would spend the budget of the caches asked for. */
  int is_head = cpu && (skb_flags & ST_OBJ_SKB_HEAD) && cpu->pending[level].head == ptr;
  if (is_head && typed &&
      (sample_shift || (skb_one_slot && !cache_filter_count && st_skb_head_cache && cache_key == st_skb_head_cache))) {
    cpu->pending[level].key = cache_key;
    cpu->pending[level].name = (__u64)ref->name;
    cpu->pending[level].cache = ref->cache;
    cpu->pending[level].size = ref->size;
    cpu->pending[level].deferred = 1;
    if (!sample_shift)
      cpu->pending[level].stack = stack_bits_of(ctx, stack_draw(cpu));
    return 0;
  }
  if (!sampled(ptr))
    return 0;
  __u32 inherited = ST_PENDING_UNDECIDED;
  int head_waits = 0;
  if (cpu && (skb_flags & ST_OBJ_SKB_DATA)) {
    inherited = cpu->pending[level].stack;
    head_waits = cpu->pending[level].deferred;
    cpu->pending[level].deferred = 0;
  }
  struct st_booking b = {};
  if (book(cpu, ctx_level, typed, cache_key, ref, skb_flags, &b) != 0)
    return 0;
  if (cpu && head_waits) {
    /* The head's bucket by its data's, once a whole sk_buff has shown it;
     * else found the long way (its cgroup is its data's, so is its bucket's). */
    __u32 hb = (b.flags & ST_BUCKET_IGNORED) ? 0 : st_head_bucket_of[b.idx & ST_OBJ_BUCKET_MASK];
    __u32 hidx = hb - 1;
    struct st_counters *hc = hb ? bpf_map_lookup_elem(&st_counts, &hidx) : NULL;
    if (hc) {
      hc->allocs += 1;
      if (inherited == ST_PENDING_UNDECIDED)
        inherited = stack_bits_of(ctx, stack_draw(cpu));
      head_bucket = hb;
    } else {
      struct st_cache_ref head_ref = {.name = (const char *)cpu->pending[level].name,
                                      .cache = cpu->pending[level].cache,
                                      .size = cpu->pending[level].size};
      inherited = track(ctx, cpu, ctx_level, typed, pending, cpu->pending[level].key, &head_ref,
                        ST_OBJ_SKB_HEAD, 0, inherited, level, 1, 0);
      head_bucket = cpu->pending[level].bucket;
      cpu->pending[level].bucket = 0;
    }
    cpu->pending[level].stack = inherited;
  }
  __u32 filed = file_booked(ctx, cpu, &b, ptr, cache_key, skb_flags, (skb_flags & ST_OBJ_SKB_DATA) ? pending : 0,
                            inherited, level, is_head, head_bucket);
  if (!(sample_shift && typed) && is_head)
    cpu->pending[level].stack = filed;
  return 0;
}

static __always_inline int on_free(__u64 ptr)
{
  if (!ptr || !sampled(ptr))
    return 0;
  end_any(ptr, ST_END_FREE);
  return 0;
}

/* kmem_cache_free, with the cache where the event carries it (skb_one_slot):
 * a head of the head cache freed while its data lives on, which only a
 * clone's original is (skb_release_data frees the data first otherwise),
 * leaves its sk_buff's one slot. */
static __always_inline int on_cache_free(__u64 ptr, __u64 cache)
{
  if (!ptr)
    return 0;
  if (sampled(ptr) && end_any(ptr, ST_END_FREE))
    return 0;
  if (!skb_one_slot || !cache || cache != st_skb_head_cache)
    return 0;
  const struct sk_buff *skb = (const struct sk_buff *)ptr;
  if (!BPF_CORE_READ_BITFIELD_PROBED(skb, cloned))
    return 0;
  struct st_slot *s = one_slot_of(ptr);
  if (s)
    end_head_of_slot(s, ST_END_FREE);
  return 0;
}

/* ---- tp_btf programs (typed arguments) ------------------------------------ */

/* Where the verifier lets tp_btf read the `const void *ptr` argument (6.18
 * does; 6.1 and 6.12 refuse: "arg1 type UNKNOWN is not a struct"; user space
 * probes it) and the event carries the cache pointer (6.1+). */

SEC("tp_btf/kmem_cache_alloc")
int BPF_PROG(st_btf_cache_alloc, unsigned long call_site, const void *ptr, struct kmem_cache *s,
             gfp_t gfp, int node)
{
  /* Typed arguments: direct reads, no probe_read. The cache address is
   * hashed into the bucket key: as_number. */
  struct st_cpu_state *cpu = cpu_state();
  if (!cpu)
    return 0;
  struct st_cache_ref ref = {.name = s->name, .size = s->object_size};
  return on_alloc(ctx, call_site, (__u64)ptr, as_number(cpu, s), &ref, s->object_size, 1);
}

SEC("tp_btf/kmem_cache_free")
int BPF_PROG(st_btf_cache_free, unsigned long call_site, const void *ptr)
{
  /* (call_site, ptr, s) where skb_one_slot: the branch is pruned elsewhere. */
  __u64 cache = 0;
  if (skb_one_slot) {
    struct st_cpu_state *cpu = cpu_state();
    if (cpu)
      cache = as_number(cpu, (const void *)ctx[2]);
  }
  return on_cache_free((__u64)ptr, cache);
}

SEC("tp_btf/kmalloc")
int BPF_PROG(st_btf_kmalloc, unsigned long call_site, const void *ptr, size_t bytes_req,
             size_t bytes_alloc, gfp_t gfp, int node)
{
  struct st_cache_ref ref = {.size = bytes_alloc};
  return on_alloc(ctx, call_site, (__u64)ptr, kmalloc_key(bytes_alloc, gfp), &ref, 0, 1);
}

SEC("tp_btf/kfree")
int BPF_PROG(st_btf_kfree, unsigned long call_site, const void *ptr)
{
  return on_free((__u64)ptr);
}

/* ---- raw_tp programs (untyped arguments) ---------------------------------- */

/* The same events with every argument a plain u64: nothing for the verifier
 * to refuse, and no probe_read for the pointers. The cache's name and size
 * are read once, when its bucket is made. Before 6.1 kmem_cache_alloc had
 * (call_site, ptr, bytes_req, bytes_alloc, gfp) and no cache pointer (user
 * space sets alloc_cache_arg from the BTF), and the _node variants were
 * events of their own. */

static __always_inline int raw_cache_alloc(struct bpf_raw_tracepoint_args *ctx)
{
  __u64 ptr = ctx->args[1];
  struct st_cache_ref ref = {};
  __u32 object_size = ST_SIZE_OF_CACHE;
  if (alloc_cache_arg == 2) {
    ref.cache = ctx->args[2];
  } else {
    /* (call_site, ptr, bytes_req, bytes_alloc, gfp): bytes_req is the
     * cache's object size. */
    object_size = ctx->args[2];
    ref.cache = object_cache(ptr);
    if (!ref.cache) {
      /* No way to tell the cache: filed under its size, never a guess. */
      ref.size = ctx->args[3];
      return on_alloc(ctx, ctx->args[0], ptr, ((__u64)ST_KEY_UNNAMED << ST_KEY_KIND_SHIFT) | (ref.size & ST_KEY_SIZE_MASK),
                      &ref, object_size, 1);
    }
  }
  return on_alloc(ctx, ctx->args[0], ptr, ref.cache, &ref, object_size, 1);
}

static __always_inline int raw_kmalloc(struct bpf_raw_tracepoint_args *ctx)
{
  /* (call_site, ptr, bytes_req, bytes_alloc, gfp[, node]) in every kernel. */
  struct st_cache_ref ref = {.size = ctx->args[3]};
  return on_alloc(ctx, ctx->args[0], ctx->args[1], kmalloc_key(ctx->args[3], ctx->args[4]), &ref, 0, 1);
}

SEC("raw_tp/kmem_cache_alloc")
int st_raw_cache_alloc(struct bpf_raw_tracepoint_args *ctx) { return raw_cache_alloc(ctx); }
SEC("raw_tp/kmem_cache_alloc_node")
int st_raw_cache_alloc_node(struct bpf_raw_tracepoint_args *ctx) { return raw_cache_alloc(ctx); }
SEC("raw_tp/kmalloc")
int st_raw_kmalloc(struct bpf_raw_tracepoint_args *ctx) { return raw_kmalloc(ctx); }
SEC("raw_tp/kmalloc_node")
int st_raw_kmalloc_node(struct bpf_raw_tracepoint_args *ctx) { return raw_kmalloc(ctx); }
SEC("raw_tp/kmem_cache_free")
int st_raw_cache_free(struct bpf_raw_tracepoint_args *ctx)
{
  return on_cache_free(ctx->args[1], skb_one_slot ? ctx->args[2] : 0);
}
SEC("raw_tp/kfree")
int st_raw_kfree(struct bpf_raw_tracepoint_args *ctx) { return on_free(ctx->args[1]); }

/* ---- classic tracepoint programs (fallback) ----------------------------- */

/* A __data_loc field: length << 16 | offset from the start of the event. */
#define ST_DATA_LOC_OFFSET(loc) ((loc) & 0xffffu)

/* Without the kmem_cache pointer, buckets are keyed by a hash of the cache
 * name the event carries (6.18); where it carries none, by the cache found
 * from the object's slab page; failing both, by size, named as such. */
static __always_inline __u64 name_key(void *ctx, __u32 data_loc, char *name_out)
{
  if (!data_loc)
    return 0;
  bpf_probe_read_kernel_str(name_out, ST_CACHE_NAME_LEN, (char *)ctx + ST_DATA_LOC_OFFSET(data_loc));
  __u64 h = 0xcbf29ce484222325ull; /* FNV-1a */
  for (int i = 0; i < ST_CACHE_NAME_LEN; i++) {
    if (!name_out[i])
      break;
    h = (h ^ (__u8)name_out[i]) * 0x100000001b3ull;
  }
  return ((__u64)ST_KEY_NAMED << ST_KEY_NAMED_SHIFT) | (h >> (64 - ST_KEY_NAMED_SHIFT));
}

static __always_inline int tp_cache_alloc(void *ctx)
{
  struct st_alloc_event e = {};
  read_cache_alloc_tp(ctx, &e);
  struct st_cache_ref ref = {.size = e.bytes_alloc};
  char name[ST_CACHE_NAME_LEN] = {};
  __u64 key = name_key(ctx, e.name_loc, name);
  if (key) {
    ref.name = (char *)ctx + ST_DATA_LOC_OFFSET(e.name_loc);
  } else if ((ref.cache = object_cache(e.ptr))) {
    key = ref.cache;
    ref.size = 0; /* the cache's object size, as in the other modes */
  } else {
    key = ((__u64)ST_KEY_UNNAMED << ST_KEY_KIND_SHIFT) | (e.bytes_alloc & ST_KEY_SIZE_MASK);
  }
  return on_alloc(ctx, e.call_site, e.ptr, key, &ref, e.bytes_req, 0);
}

static __always_inline int tp_kmalloc(void *ctx)
{
  struct st_alloc_event e = {};
  read_kmalloc_tp(ctx, &e);
  struct st_cache_ref ref = {.size = e.bytes_alloc};
  return on_alloc(ctx, e.call_site, e.ptr, kmalloc_key(e.bytes_alloc, e.gfp), &ref, 0, 0);
}

SEC("tracepoint/kmem/kmem_cache_alloc")
int st_tp_cache_alloc(void *ctx) { return tp_cache_alloc(ctx); }
SEC("tracepoint/kmem/kmem_cache_alloc_node")
int st_tp_cache_alloc_node(void *ctx) { return tp_cache_alloc(ctx); }
SEC("tracepoint/kmem/kmalloc")
int st_tp_kmalloc(void *ctx) { return tp_kmalloc(ctx); }
SEC("tracepoint/kmem/kmalloc_node")
int st_tp_kmalloc_node(void *ctx) { return tp_kmalloc(ctx); }
SEC("tracepoint/kmem/kmem_cache_free")
int st_tp_cache_free(void *ctx) { return on_free(read_free_tp_ptr(ctx)); }
SEC("tracepoint/kmem/kfree")
int st_tp_kfree(void *ctx) { return on_free(read_free_tp_ptr(ctx)); }

#endif
