/* bench_floor: attaches the empty programs of floor.bpf.c, prints "ready" once
 * they are attached, and detaches when stdin closes or on SIGTERM/SIGINT
 * (the same contract as st_workload's holding modes, so the harness,
 * bench/harness, drives both alike). -v shows libbpf's debug log. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <bpf/libbpf.h>

#include "floor.skel.h"

static volatile sig_atomic_t stopping;
static int verbose;

static void on_stop(int sig)
{
  (void)sig;
  stopping = 1;
}

static int print_libbpf(enum libbpf_print_level level, const char *fmt, va_list args)
{
  if (level == LIBBPF_DEBUG && !verbose)
    return 0;
  return vfprintf(stderr, fmt, args);
}

static void wait_for_stop(void)
{
  struct pollfd in = {.fd = 0, .events = POLLIN};
  char buf[64];
  while (!stopping) {
    if (poll(&in, 1, -1) < 0)
      continue; /* EINTR: the signal handler set stopping */
    ssize_t n = read(0, buf, sizeof buf);
    if (n == 0 || (n < 0 && errno != EINTR))
      return;
  }
}

int main(int argc, char **argv)
{
  verbose = argc > 1 && strcmp(argv[1], "-v") == 0;
  libbpf_set_print(print_libbpf);

  /* No SA_RESTART: poll must return so the loop sees stopping. */
  struct sigaction sa = {.sa_handler = on_stop};
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);

  struct floor_bpf *skel = floor_bpf__open_and_load();
  if (!skel) {
    fprintf(stderr, "bench_floor: loading the empty kmem programs failed: %s\n", strerror(errno));
    return 1;
  }
  int err = floor_bpf__attach(skel);
  if (err) {
    fprintf(stderr, "bench_floor: attaching to the kmem tracepoints failed: %s\n", strerror(-err));
    floor_bpf__destroy(skel);
    return 1;
  }
  printf("ready\n");
  fflush(stdout);

  wait_for_stop();
  floor_bpf__destroy(skel);
  return 0;
}
