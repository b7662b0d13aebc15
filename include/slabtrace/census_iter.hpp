#pragma once
// Exact sk_buff counts for the socket census, from BPF socket iterators
// (bpf/census_iter.bpf.c): iter/udp, iter/tcp, iter/netlink, and iter/unix
// where the kernel has it (5.17+). Its own BPF object, apart from the tracer.
//
//   std::string why_not;
//   auto iterators = census::SkbIterators::load(&why_not);   // root, BTF
//   sockets::ScanOptions options;
//   if (iterators) options.count_skbs = iterators->counter();  // else sock_diag's bytes only
//   census::Census now = census::take_census(owners, options);
//
// The programs run only while a census reads them; their links live as long
// as the object (nothing pinned: a killed process leaves nothing behind).
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "slabtrace/sockets.hpp"

struct census_iter_bpf;
struct bpf_link;

namespace slabtrace::census {

class SkbIterators {
 public:
  // Loads and attaches every iterator this kernel has. nullptr when none can
  // be (not root, no BTF, a kernel before 5.9): `why_not` says why in a line.
  static std::unique_ptr<SkbIterators> load(std::string* why_not = nullptr);
  ~SkbIterators();
  SkbIterators(const SkbIterators&) = delete;
  SkbIterators& operator=(const SkbIterators&) = delete;

  // The kinds attached (sockets::SkbCountKind bits), e.g. without Unix before 5.17.
  unsigned kinds() const { return kinds_; }
  // Walks every table in the calling thread's network namespace (`netns` is
  // its inode, for the records). Thread-safe; a failed read leaves its kind
  // out of the scan, with a warning.
  sockets::SkbCountScan count(std::uint64_t netns) const;
  // count() as ScanOptions::count_skbs wants it; this object must outlive it.
  sockets::SkbCounter counter() const;

 private:
  SkbIterators() = default;
  struct Iterator {
    sockets::SkbCountKind kind;
    struct bpf_link* link;
  };
  census_iter_bpf* skel_ = nullptr;
  std::vector<Iterator> iterators_;
  unsigned kinds_ = 0;
};

// The records one iterator wrote (struct st_iter_socket, back to back). A
// trailing partial record is dropped. Pure.
std::vector<sockets::SkbCount> parse_iter_records(std::string_view bytes);

}  // namespace slabtrace::census
