#pragma once
// One run of an attached BPF iterator, read to its end: the census's socket
// iterators (census_iter.hpp) and the tracer's queue walkers share it.
#include <bpf/bpf.h>
#include <unistd.h>

#include <cerrno>
#include <string>
#include <vector>

#include "slabtrace/unique_fd.hpp"

namespace slabtrace {

// Runs one instance of the iterator behind `link_fd` (it sees the calling
// thread's namespaces), appending what it writes to *out, or dropping it when
// out is null. Returns 0, or the errno that stopped it.
inline int run_bpf_iterator(int link_fd, std::string* out) {
  UniqueFd fd(bpf_iter_create(link_fd));
  if (!fd) return errno;
  std::vector<char> buffer(out ? 64 * 1024 : 256);
  while (true) {
    ssize_t n = ::read(fd.get(), buffer.data(), buffer.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno;
    if (n == 0) return 0;
    if (out) out->append(buffer.data(), std::size_t(n));
  }
}

}  // namespace slabtrace
