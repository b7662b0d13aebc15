// The running kernel's release, for report and metrics headers.
#include <sys/utsname.h>

#include "slabtrace/procfs.hpp"

namespace slabtrace::procfs {

std::string kernel_release() {
  utsname u{};
  return uname(&u) == 0 ? u.release : "unknown";
}

}  // namespace slabtrace::procfs
