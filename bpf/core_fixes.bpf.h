/* Kernel differences the BPF code must survive, in one place (CO-RE flavours). */
#ifndef SLABTRACE_CORE_FIXES_BPF_H
#define SLABTRACE_CORE_FIXES_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_core_read.h>

/* 6.18 renamed kernfs_node.parent to __parent; only the id is needed here, but
 * keep both spellings known to CO-RE for any future walk up the tree. */
struct kernfs_node___old {
  struct kernfs_node___old *parent;
} __attribute__((preserve_access_index));

/* cgroup-v2 id of the cgroup that created a socket (what cgroup BPF filters
 * and memory.stat "sock" use), or 0 when the kernel keeps none. */
static __always_inline __u64 sock_cgroup_id(const struct sock *sk)
{
  if (!bpf_core_field_exists(sk->sk_cgrp_data.cgroup))
    return 0;
  struct cgroup *cg = BPF_CORE_READ(sk, sk_cgrp_data.cgroup);
  if (!cg)
    return 0;
  return BPF_CORE_READ(cg, kn, id);
}

#endif
