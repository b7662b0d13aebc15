/* Buckets: one per (cache, cgroup) pair, with per-CPU counters. The cache key
 * is a struct kmem_cache address or an ST_KEY_* encoding (see bpf_shared.h). */
#ifndef SLABTRACE_BUCKETS_BPF_H
#define SLABTRACE_BUCKETS_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

#include "slabtrace/bpf_shared.h"
#include "config.bpf.h"
#include "percpu.bpf.h"

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

/* Indexes user space retired (Tracer::retire_buckets: the bucket's cgroup is
 * gone and nothing it counted is outstanding). New buckets take these before
 * fresh ones, so that a long run on a node whose pods come and go never runs
 * out of buckets. A queue map (4.20+), popped without a lock by any CPU. */
struct {
  __uint(type, BPF_MAP_TYPE_QUEUE);
  __uint(max_entries, ST_MAX_BUCKETS);
  __type(value, __u32);
} st_free_buckets SEC(".maps");

/* Next never-used bucket index (retired ones are in st_free_buckets). */
__u32 st_next_bucket = 0;

/* Finds or creates the bucket of (cache, cgroup). Creation is rare (once per
 * pair per run) and is where the cache name is copied, off the common path. */
/* What an event says about its cache: a name (typed or classic events), or
 * only the struct kmem_cache address (raw_tp events, or found from the object's
 * slab page), whose name and size are read once, when the bucket is made. */
struct st_cache_ref {
  const char *name;  /* kernel string, or NULL */
  __u64 cache;       /* struct kmem_cache address to read name/size from, or 0 */
  __u32 size;        /* object size, or 0: the bucket's */
};

static __always_inline struct st_bucket *bucket_create(struct st_cpu_state *cpu, struct st_bucket_key *key,
                                                       const struct st_cache_ref *ref, __u32 *idx_out);

/* Index, flags and object size of the bucket of (cache, cgroup); 0 when found
 * or made. The per-CPU cache of recent buckets answers most calls without a map. */
static __always_inline int bucket_for(struct st_cpu_state *cpu, struct st_bucket_key *key,
                                      const struct st_cache_ref *ref, __u32 *idx_out, __u32 *flags_out,
                                      __u32 *size_out)
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
      *size_out = ref->size ? ref->size : recent->object_size;
      return 0;
    }
  }
  struct st_bucket *b = NULL;
  __u32 *idx = bpf_map_lookup_elem(&st_bucket_ids, key);
  if (idx) {
    *idx_out = *idx;
    b = bpf_map_lookup_elem(&st_buckets, idx);
  } else {
    b = bucket_create(cpu, key, ref, idx_out);
  }
  if (!b)
    return -1;
  *flags_out = b->flags;
  *size_out = ref->size ? ref->size : b->object_size;
  if (recent) {
    recent->cache = key->cache;
    recent->cgroup = key->cgroup;
    recent->flags = b->flags;
    recent->object_size = b->object_size;
    recent->idx = *idx_out + 1;
  }
  return 0;
}

/* Creation is rare (once per pair per run) and is where the cache name is
 * copied, off the common path. */
static __always_inline struct st_bucket *bucket_create(struct st_cpu_state *cpu, struct st_bucket_key *key,
                                                       const struct st_cache_ref *ref, __u32 *idx_out)
{
  __u32 *idx = NULL;
  __u32 fresh;
  if (bpf_map_pop_elem(&st_free_buckets, &fresh) != 0) {
#ifdef ST_LEGACY
    /* No atomic fetch-and-add before 5.12: each CPU numbers its own buckets
     * (cpu, cpu + ncpus, ...), and user space reads every index. */
    if (!cpu)
      return NULL;
    fresh = bpf_get_smp_processor_id() + nr_cpus * cpu->buckets_made++;
#else
    fresh = __sync_fetch_and_add(&st_next_bucket, 1);
#endif
  }
  if (fresh >= bucket_limit) {
    stat_add(ST_STAT_BUCKETS_FULL, 1);
    return NULL;
  }
  struct st_bucket *b = bpf_map_lookup_elem(&st_buckets, &fresh);
  if (!b)
    return NULL;
  b->cache = key->cache;
  b->cgroup = key->cgroup;
  const char *name = ref->name;
  __u32 object_size = ref->size;
  if (ref->cache) {
    const struct kmem_cache *s = (const struct kmem_cache *)ref->cache;
    if (!name)
      name = BPF_CORE_READ(s, name);
    if (!object_size)
      object_size = BPF_CORE_READ(s, object_size);
  }
  b->object_size = object_size;
  if (name)
    bpf_probe_read_kernel_str(b->name, sizeof(b->name), name);
  b->flags = cache_wanted(key->cache, b->name) ? 0 : ST_BUCKET_IGNORED;
  /* Another CPU may have created the same pair meanwhile: its index wins and
   * ours goes back to the free queue, emptied (user space skips empty slots). */
  if (bpf_map_update_elem(&st_bucket_ids, key, &fresh, BPF_NOEXIST) != 0) {
    b->cache = 0;
    b->cgroup = 0;
    bpf_map_push_elem(&st_free_buckets, &fresh, 0);
    idx = bpf_map_lookup_elem(&st_bucket_ids, key);
    if (!idx)
      return NULL;
    *idx_out = *idx;
    return bpf_map_lookup_elem(&st_buckets, idx);
  }
  *idx_out = fresh;
  return b;
}

/* kmalloc objects have no cache pointer: name the cache from the slab size and
 * the gfp bits that choose the kmalloc type, in the kernel's order of precedence. */
static __always_inline __u64 kmalloc_key(__u64 bytes_alloc, __u64 gfp)
{
  __u64 kind = ST_KEY_KMALLOC;
  /* One bucket per page order: a bucket has one object size. */
  if (bytes_alloc > kmalloc_max_cache_size)
    return ((__u64)ST_KEY_KMALLOC_LARGE << ST_KEY_KIND_SHIFT) | (bytes_alloc & ST_KEY_SIZE_MASK);
  if (gfp & gfp_dma)
    kind = ST_KEY_KMALLOC_DMA;
  else if (gfp & gfp_reclaimable)
    kind = ST_KEY_KMALLOC_RCL;
  else if (gfp & gfp_account)
    kind = ST_KEY_KMALLOC_CG;
  return (kind << ST_KEY_KIND_SHIFT) | (bytes_alloc & ST_KEY_SIZE_MASK);
}

#endif
