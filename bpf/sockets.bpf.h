/* Sockets that hold sk_buffs, and drops by reason and socket. */
#ifndef SLABTRACE_SOCKETS_BPF_H
#define SLABTRACE_SOCKETS_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

#include "slabtrace/bpf_shared.h"
#include "config.bpf.h"
#include "percpu.bpf.h"
#include "socket_inode.bpf.h"

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

/* A head queued on a socket leaves it when it ends. */
static __always_inline void unqueue(__u64 sk)
{
  struct st_sock *so = bpf_map_lookup_elem(&st_socks, &sk);
  if (so)
    __sync_fetch_and_add(&so->queued, -1);
}

/* socket_inode with direct loads where the kernel allows them: this runs for
 * every queued skb, and the two probe_reads cost ~70 ns of it. */
static __always_inline __u64 socket_inode_now(const struct sock *sk)
{
#ifndef ST_LEGACY
  if (have_rdonly_cast) {
    const struct sock *s = bpf_rdonly_cast((void *)sk, bpf_core_type_id_kernel(struct sock));
    const struct socket *sock = s->sk_socket;
    if (!sock)
      return 0;
    const struct socket_alloc *sa = bpf_rdonly_cast((void *)sock, bpf_core_type_id_kernel(struct socket_alloc));
    return sa->vfs_inode.i_ino;
  }
#endif
  return socket_inode(sk);
}

static __always_inline struct st_sock *socket_entry(const struct sock *sk)
{
  __u64 key = (__u64)sk;
  __u64 inode = socket_inode_now(sk);
  struct st_sock *known = bpf_map_lookup_elem(&st_socks, &key);
  /* A freed sock's address is soon another socket's (the slab hands it out
   * again): the entry is that socket's only while the inode matches. An
   * orphaned sock (no inode any more) keeps the one it had. */
  if (known && (!inode || known->inode == inode))
    return known;
  struct st_sock info = {};
  struct socket *sock = BPF_CORE_READ(sk, sk_socket);
  info.inode = inode;
  if (sock)
    info.type = BPF_CORE_READ(sock, type);
  info.netns = BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum);
  info.family = BPF_CORE_READ(sk, __sk_common.skc_family);
  info.protocol = BPF_CORE_READ_BITFIELD_PROBED(sk, sk_protocol);
  info.cgroup = sock_cgroup_id(sk);
  if (bpf_map_update_elem(&st_socks, &key, &info, known ? BPF_EXIST : BPF_NOEXIST) != 0 &&
      !bpf_map_lookup_elem(&st_socks, &key)) {
    stat_add(ST_STAT_SOCKS_FULL, 1);
    return NULL;
  }
  return bpf_map_lookup_elem(&st_socks, &key);
}

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

#endif
