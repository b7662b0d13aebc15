/* Kernel errno values the BPF side tests or returns. vmlinux.h carries types,
 * not the uapi macros, and <errno.h> is user space's. */
#ifndef SLABTRACE_ERRNO_BPF_H
#define SLABTRACE_ERRNO_BPF_H

#define ST_E2BIG 7
#define ST_EAGAIN 11
#define ST_ENOMEM 12
#define ST_EEXIST 17
#define ST_ENOSPC 28

#endif
