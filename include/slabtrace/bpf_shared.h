/* The only contract between the BPF programs and user space: map keys and
 * values, limits and flag bits. Fixed-width types only, no bool; compiles in
 * both worlds (C++ checks the sizes with static_assert in src/bpf/loader.cpp). */
#ifndef SLABTRACE_BPF_SHARED_H
#define SLABTRACE_BPF_SHARED_H

#ifndef __bpf__
#include <linux/types.h>
#endif

#define ST_CACHE_NAME_LEN 32
#define ST_MAX_BUCKETS 8192      /* distinct (cache, cgroup) pairs */
#define ST_MAX_STACK_DEPTH 48
#define ST_MAX_CACHE_FILTERS 8
#define ST_MAX_DROP_REASONS 256
#define ST_MAX_SKB_RANGES 4
#define ST_MAX_IGNORE_RANGES 4
#define ST_STACK_ALL 0       /* stack_shift: a stack for every tracked object */
#define ST_STACK_NONE 255
/* Past the stack budget (stack_budget captures per CPU per
 * ST_STACK_WINDOW_NS), stacks are drawn 2^ST_STACK_THROTTLE_SHIFT times more
 * rarely, and the objects that get one say so (ST_OBJ_STACK_THROTTLED): each
 * stands for that many more in the report. */
#define ST_STACK_THROTTLE_SHIFT 4
#define ST_STACK_WINDOW_NS 100000000ull

/* kmalloc objects carry no cache pointer: their "cache key" encodes the kind
 * and the slab size (kind << ST_KEY_KIND_SHIFT | size). Named keys (classic
 * tracepoints) put their kind in the top four bits above a 60-bit name hash.
 * A struct kmem_cache address is in the kernel half of the address space, bit
 * 63 set with 4- and 5-level paging alike (0xffff8880... / 0xff11...), which
 * no encoding has. */
#define ST_KEY_KIND_SHIFT 32
#define ST_KEY_NAMED_SHIFT 60
#define ST_KEY_SIZE_MASK 0xffffffffull
#define ST_KEY_IS_POINTER(key) (((key) >> 63) != 0)
enum st_key_kind {
  ST_KEY_KMALLOC = 1,      /* kmalloc-N */
  ST_KEY_KMALLOC_CG = 2,   /* kmalloc-cg-N (__GFP_ACCOUNT) */
  ST_KEY_KMALLOC_RCL = 3,  /* kmalloc-rcl-N (__GFP_RECLAIMABLE) */
  ST_KEY_KMALLOC_DMA = 4,  /* dma-kmalloc-N */
  ST_KEY_KMALLOC_LARGE = 5,/* above the largest kmalloc cache: pages */
  ST_KEY_NAMED = 6,        /* classic tracepoint mode: hash of the cache name,
                              << ST_KEY_NAMED_SHIFT */
  ST_KEY_UNNAMED = 7,      /* classic mode on kernels whose event has no name */
};

/* Pseudo cgroup ids for allocations in interrupt context, where the current
 * task is whoever was interrupted and must not be blamed. */
#define ST_CGROUP_SOFTIRQ 0xfffffffffffffffeULL
#define ST_CGROUP_HARDIRQ 0xfffffffffffffffdULL

struct st_bucket_key {
  __u64 cache;   /* struct kmem_cache address, or an ST_KEY_* encoding */
  __u64 cgroup;  /* cgroup-v2 id of the allocating task, or ST_CGROUP_* */
};

/* Written once by BPF when a bucket is created; read by user space. */
#define ST_BUCKET_IGNORED 1u  /* excluded by --cache: counted, not tracked */
struct st_bucket {
  __u64 cache;
  __u64 cgroup;
  __u32 object_size;
  __u32 flags;
  char name[ST_CACHE_NAME_LEN];
};

/* Why a tracked object left the live set. */
enum st_end_reason {
  ST_END_FREE = 0,      /* kmem_cache_free / kfree on its address */
  ST_END_SKB_EVENT = 1, /* skb:consume_skb or skb:kfree_skb on an skb head */
  ST_END_REUSED = 2,    /* a new allocation at its address: a free we missed */
  ST_END_SKB_DATA = 3,  /* skb head whose data buffer was freed */
  ST_END_REASONS = 4,
};

/* Per-CPU, per bucket. outstanding = tracked - sum(ended). */
struct st_counters {
  /* Counts only: a bucket has one object size, and its bytes are its
   * counts times that size (user space), which spares every event two
   * read-modify-writes. */
  __u64 allocs;         /* every successful allocation seen */
  __u64 tracked;        /* allocations entered into the live set (sampled) */
  __u64 ended[ST_END_REASONS];
};

/* A live object, in 16 bytes: with millions of them every byte is megabytes
 * of kernel memory. Its size is its bucket's (every bucket has one object
 * size: a kmem_cache, a kmalloc-N, or a kmalloc-large page order). The skb
 * relations live here too, so that an sk_buff costs no extra map entries.
 * `packed` = bucket (13 bits) | stack id (15 bits) << 13 |
 * ST_OBJ_STACK_THROTTLED | ST_OBJ_SKB_*. */
#define ST_OBJ_SKB_HEAD (1u << 31)
#define ST_OBJ_SKB_DATA (1u << 30)
/* An skb head first seen on a receive path, not allocated (NAPI skb cache):
 * adopted into the skb head cache's bucket (bpf/napi.bpf.h). */
#define ST_OBJ_SKB_ADOPTED (1u << 29)
#define ST_OBJ_FLAGS (ST_OBJ_SKB_HEAD | ST_OBJ_SKB_DATA | ST_OBJ_SKB_ADOPTED)
/* Both: one slot for a whole sk_buff from __alloc_skb (skb_one_slot), under
 * its data buffer's address and in the data's bucket; its head is in the skb
 * head cache's bucket of the same cgroup, st_head_bucket_of[bucket] - 1, and
 * `link` is the socket holding it. The data's free ends both. */
#define ST_OBJ_SKB_BOTH (ST_OBJ_SKB_HEAD | ST_OBJ_SKB_DATA)
/* Its stack was drawn at the throttled rate (see ST_STACK_THROTTLE_SHIFT). */
#define ST_OBJ_STACK_THROTTLED (1u << 28)
#define ST_OBJ_BUCKET_MASK (ST_MAX_BUCKETS - 1)
#define ST_OBJ_STACK_SHIFT 13
#define ST_OBJ_NO_STACK 0x7fffu /* not sampled, or the capture failed */
#define ST_MAX_STACKS 16384     /* stack ids fit below ST_OBJ_NO_STACK */
/* Heads adopted per receiving device (bpf/napi.bpf.h). */
struct st_adopt_key {
  __u32 ifindex;
  __u32 netns; /* the device's network namespace (inode number) */
};
struct st_adopt_dev {
  __u64 heads;
  char name[16]; /* IFNAMSIZ */
};

struct st_object {
  __u32 packed;
  __u32 alloc_tick; /* low 32 bits of jiffies at allocation (see now_tick) */
  __u64 link;     /* skb data: its head; skb head or whole sk_buff: the socket holding it; else 0 */
};
#define ST_OBJ_BUCKET(packed) ((packed) & ST_OBJ_BUCKET_MASK)
#define ST_OBJ_STACK(packed) (((packed) >> ST_OBJ_STACK_SHIFT) & ST_OBJ_NO_STACK)

/* The live-object table: an open-addressing hash table of slots in a BPF
 * array (linear probing, at most ST_LIVE_PROBES slots from an address's home
 * slot). A hash map element costs ~88 bytes and a trip through the BPF memory
 * allocator on every allocation and free; a slot costs 24 bytes, the table
 * has two per object it is sized for, and user space reads it through mmap. */
#define ST_SLOT_EMPTY 0ull /* never used: a probe for an address stops here */
#define ST_SLOT_DEAD 1ull  /* freed: reusable, but probes go on past it */
#define ST_LIVE_PROBES 256
struct st_slot {
  __u64 addr; /* object address, or ST_SLOT_EMPTY / ST_SLOT_DEAD */
  struct st_object obj;
};

/* Home slot of an address (the BPF side and user space's lookups agree on
 * it). Sampling decides on the top bits of another hash of the same address,
 * so a sampled population still spreads over the table. */
static inline __u32 st_home_slot(__u64 ptr, __u32 mask)
{
  __u64 x = ptr >> 3;
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  return (__u32)x & mask;
}

/* A socket that had sk_buffs queued while we watched. */
struct st_sock {
  __u64 inode;       /* socket inode, as in /proc/PID/fd "socket:[N]" */
  __u64 netns;       /* network namespace inode */
  __u64 cgroup;      /* sk_cgrp_data cgroup-v2 id: the socket's creator */
  __s64 queued;      /* tracked skb heads on its queue now (atomic) */
  __u16 family;
  __u16 protocol;
  __u16 type;
  __u16 pad;
  __u32 last_truesize; /* truesize of the last skb queued: estimates bytes */
  __u32 pad2;
};

/* Global health counters, per CPU. Nothing here is counted per event: event totals come from the buckets, and
 * a per-CPU map update on every kfree showed in the cost. */
enum st_stat {
  ST_STAT_FAILED_ALLOCS = 0,     /* ptr NULL: ignored */
  ST_STAT_MAP_FULL,          /* live table had no free slot on the address's path: not tracked */
  ST_STAT_BUCKETS_FULL,      /* more (cache, cgroup) pairs than ST_MAX_BUCKETS */
  ST_STAT_STACK_ERRORS,      /* bpf_get_stackid failed (stack map full, ...) */
  ST_STAT_MISSED_FREES,      /* = ended[ST_END_REUSED] summed */
  ST_STAT_SOCKS_FULL,        /* no room to remember a socket */
  ST_STAT_BUSY,              /* live-table slot lost to another CPU (or, legacy hash map, to the
                                program this one interrupted) even on retry: not tracked */
  ST_STAT_BPF_ALLOCS,        /* allocations by the BPF map allocator: not traced */
  ST_STAT_IRQ_CONTEXT_UNKNOWN, /* preempt count unreadable or not this CPU's */
  ST_STAT_ADOPT_NO_CACHE,    /* heads seen before any skb head allocation named the cache: not adopted */
  ST_STAT_STACKS_THROTTLED,  /* stacks drawn at the throttled rate (the CPU was past its stack budget) */
  ST_STAT_COUNT,
};

struct st_stats {
  __u64 v[ST_STAT_COUNT];
};

/* Drops (skb:kfree_skb) by reason and the socket they were meant for. */
struct st_drop_key {
  __u32 reason;
  __u32 pad;
  __u64 inode;   /* socket inode, 0 when no socket is known */
  __u64 cgroup;  /* the socket's cgroup-v2 id, 0 when unknown */
};

struct st_addr_range {
  __u64 start;
  __u64 end;
};

#endif /* SLABTRACE_BPF_SHARED_H */
