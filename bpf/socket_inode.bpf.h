/* The inode that names a socket (sock_i_ino): the key user space finds it by
 * in /proc/PID/fd and sock_diag. Shared by the tracer and the census iterators. */
#ifndef SLABTRACE_SOCKET_INODE_BPF_H
#define SLABTRACE_SOCKET_INODE_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_core_read.h>

static __always_inline __u64 socket_inode(const struct sock *sk)
{
  struct socket *sock = BPF_CORE_READ(sk, sk_socket);
  if (!sock)
    return 0;
  /* A socket's inode sits right after it in struct socket_alloc. */
  struct inode *ino = (void *)sock + bpf_core_field_offset(struct socket_alloc, vfs_inode);
  return BPF_CORE_READ(ino, i_ino);
}

/* TCP states in which an iterator's sock_common is no full socket (struct
 * inet_timewait_sock, request_sock): nothing queued to read. */
#define ST_TCP_TIME_WAIT 6
#define ST_TCP_NEW_SYN_RECV 12

static __always_inline int full_tcp_socket(unsigned char state)
{
  return state != ST_TCP_TIME_WAIT && state != ST_TCP_NEW_SYN_RECV;
}

#endif
