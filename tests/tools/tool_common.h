/* What every workload tool needs: options, a one-line death, moving itself
 * into a cgroup the test created, and a monotonic clock. Define TOOL_NAME
 * before including. */
#ifndef SLABTRACE_TOOL_COMMON_H
#define SLABTRACE_TOOL_COMMON_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* The value after `name` on the command line, or `def`. From argv[1]: a
 * tool's mode word never starts with "--", so it is never taken for a name. */
static const char *opt(int argc, char **argv, const char *name, const char *def)
{
  for (int i = 1; i + 1 < argc; i++)
    if (strcmp(argv[i], name) == 0)
      return argv[i + 1];
  return def;
}

static void die(const char *what)
{
  fprintf(stderr, TOOL_NAME ": %s: %s\n", what, strerror(errno));
  exit(1);
}

static void join_cgroup(const char *dir)
{
  if (!dir)
    return;
  char path[4096];
  snprintf(path, sizeof path, "%s/cgroup.procs", dir);
  FILE *f = fopen(path, "w");
  if (!f || fprintf(f, "%d\n", getpid()) < 0 || fclose(f) != 0)
    die(path);
}

static inline double now_s(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

#endif
