/* The live-object table (struct st_slot): open addressing with linear probing
 * in an mmap-able BPF array, searched by address.
 *
 * ST_LEGACY (the object built for kernels without bpf_loop, 5.17, or atomic
 * compare-and-swap, 5.12): a BPF hash map by address instead, whose
 * BPF_NOEXIST update and delete are the atomic claim and release. The
 * interface is the same: live_find(_at), live_try_insert, live_release. */
#ifndef SLABTRACE_LIVE_TABLE_BPF_H
#define SLABTRACE_LIVE_TABLE_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

#include "slabtrace/bpf_shared.h"
#include "config.bpf.h"
#include "percpu.bpf.h"
#include "errno.bpf.h"

/* See struct st_slot. Sized by user space from --max-objects (a power of
 * two, live_mask = size - 1). */
struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(map_flags, BPF_F_MMAPABLE);
  __uint(max_entries, 1 << 21);
  __type(key, __u32);
  __type(value, struct st_slot);
} st_live SEC(".maps");

/* ST_LEGACY's live set (one entry in the other object: both have every map,
 * so one skeleton serves both). Sized by user space from --max-objects. */
struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 1);
  __type(key, __u64);
  __type(value, struct st_slot);
} st_live_hash SEC(".maps");

#define ST_INSERT_STALE 1             /* the address is in the table already: its free was missed */
#define ST_INSERT_FULL (-ST_ENOSPC)   /* no free slot within ST_LIVE_PROBES */
#define ST_INSERT_RACE (-ST_EAGAIN)   /* another CPU took the slot first */

#ifndef ST_LEGACY

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

/* One walk along an address's probe path, for a search and an insert alike:
 * it stops at the address or at an empty slot (the path's end), and notes
 * the first free slot (empty or dead) on the way, where an insert goes. */
struct st_walk {
  __u64 ptr;
  __u32 home;
  __s32 found;      /* slot holding the address, or -1 */
  __s64 free_index; /* first free slot on the path, or -1 */
  __u64 free_was;   /* ST_SLOT_EMPTY or ST_SLOT_DEAD */
  __u32 free_k;     /* probe of the first free slot */
};

static __always_inline long walk_probe(__u32 k, struct st_walk *w)
{
  struct st_slot *s = slot_at(w->home, k);
  if (!s)
    return 1;
  __u64 a = slot_addr(s);
  if (a == w->ptr) {
    w->found = (__s32)((w->home + k) & live_mask);
    return 1;
  }
  if ((a == ST_SLOT_EMPTY || a == ST_SLOT_DEAD) && w->free_index < 0) {
    w->free_index = (w->home + k) & live_mask;
    w->free_k = k;
    w->free_was = a;
  }
  return a == ST_SLOT_EMPTY;
}

static long walk_step(__u32 k, void *data)
{
  return walk_probe(k + ST_LIVE_FAST_PROBES, data);
}

static __always_inline void walk_path(struct st_walk *w)
{
  for (__u32 k = 0; k < ST_LIVE_FAST_PROBES; k++)
    if (walk_probe(k, w))
      return;
  bpf_loop(ST_LIVE_PROBES - ST_LIVE_FAST_PROBES, walk_step, w, 0);
}

/* Index of the slot holding a live address, or -1. */
__noinline int st_live_find(__u64 ptr)
{
  struct st_walk w = {.ptr = ptr, .home = home_slot(ptr), .found = -1, .free_index = -1};
  walk_path(&w);
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

/* A slot before ours may have been emptied while we probed (see
 * live_release): our probe path must not end before it reaches us. */
static long mend_step(__u32 k, void *data)
{
  struct st_walk *w = data;
  struct st_slot *s = slot_at(w->home, k);
  if (s && slot_addr(s) == ST_SLOT_EMPTY)
    __sync_val_compare_and_swap(&s->addr, ST_SLOT_EMPTY, ST_SLOT_DEAD);
  return 0;
}

/* Claims the first free slot on the address's probe path. The whole path up
 * to an empty slot is searched first: the address may sit beyond a dead slot. */
__noinline int st_live_insert(__u64 ptr, __u32 packed, __u32 alloc_tick, __u64 link)
{
  struct st_walk w = {.ptr = ptr, .home = home_slot(ptr), .found = -1, .free_index = -1};
  walk_path(&w);
  if (w.found >= 0)
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

/* Frees a slot. A slot whose successor is empty ends no probe path but its
 * own, so it is emptied rather than marked dead, in the compare-and-swap that
 * claims it (one locked instruction per free: the second, dead to empty, was
 * a fifth of a kfree event's cost). That keeps churn from filling the table
 * with dead slots. An insert on another CPU may have read this slot live and
 * be claiming the successor right now: if the successor is taken after we
 * emptied ours, we put the dead mark back; if it was taken before the insert
 * finished, the insert restores it (st_live_insert). Either way no live
 * object ends up behind an empty slot, where its free would be missed. */
static __always_inline int live_release(struct st_slot *s, __u64 ptr, __u32 index)
{
  struct st_slot *next = slot_at(index, 1);
  __u64 to = next && slot_addr(next) == ST_SLOT_EMPTY ? ST_SLOT_EMPTY : ST_SLOT_DEAD;
  if (__sync_val_compare_and_swap(&s->addr, ptr, to) != ptr)
    return 0; /* someone else ended it first */
  if (to == ST_SLOT_EMPTY && next && slot_addr(next) != ST_SLOT_EMPTY)
    __sync_val_compare_and_swap(&s->addr, ST_SLOT_EMPTY, ST_SLOT_DEAD);
  return 1;
}

#else /* ST_LEGACY */

static __always_inline struct st_slot *live_find_at(__u64 ptr, __u32 *index)
{
  *index = 0;
  return bpf_map_lookup_elem(&st_live_hash, &ptr);
}

static __always_inline struct st_slot *live_find(__u64 ptr)
{
  return bpf_map_lookup_elem(&st_live_hash, &ptr);
}

static __always_inline int live_try_insert(__u64 ptr, const struct st_object *obj)
{
  struct st_slot slot = {.addr = ptr, .obj = *obj};
  /* Compared as an int: the verifier turns the helper into a direct call of
   * the map's update op, which returns int on older kernels, so the error
   * arrives zero-extended (-E2BIG as 0xfffffff9, measured on 5.10 with a
   * kretprobe) and a 64-bit compare with -7 never matches. */
  int err = (int)bpf_map_update_elem(&st_live_hash, &ptr, &slot, BPF_NOEXIST);
  if (err == -ST_EEXIST)
    return ST_INSERT_STALE;
  if (err == -ST_E2BIG || err == -ST_ENOMEM)
    return ST_INSERT_FULL;
  /* -EBUSY: the bucket is locked by the program this one interrupted on
   * this CPU (the map's own recursion guard). */
  return err ? ST_INSERT_RACE : 0;
}

/* The delete is the claim: of two CPUs ending one object, one succeeds. */
static __always_inline int live_release(struct st_slot *s, __u64 ptr, __u32 index)
{
  return bpf_map_delete_elem(&st_live_hash, &ptr) == 0;
}

#endif /* ST_LEGACY */

/* What an insert that returned err comes to: one more try when another CPU
 * took the slot first, then a failure counted (map_full or busy). 0 when the
 * object is in the table. A stale entry (ST_INSERT_STALE) is the caller's to
 * end before it calls this; left in place, it is counted as busy. */
static __always_inline int live_insert_settle(__u64 ptr, const struct st_object *obj, int err)
{
  if (err == ST_INSERT_RACE)
    err = live_try_insert(ptr, obj);
  /* Counted in objects: a whole sk_buff's slot is two. */
  if (err)
    stat_add(err == ST_INSERT_FULL ? ST_STAT_MAP_FULL : ST_STAT_BUSY,
             (obj->packed & ST_OBJ_SKB_BOTH) == ST_OBJ_SKB_BOTH ? 2 : 1);
  return err;
}

#endif
