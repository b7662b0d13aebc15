// Report destinations whose every failure is seen (see report_file.hpp).
#include "slabtrace/report_file.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <cstring>

#include "slabtrace/error.hpp"

namespace slabtrace::output {

int write_all(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    data.remove_prefix(std::size_t(n));
  }
  return 0;
}

ReportSink::ReportSink(const std::string& path) {
  if (path.empty() || path == "-") {
    name_ = "stdout";
    fd_ = STDOUT_FILENO;
    return;
  }
  name_ = path;
  fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd_ < 0) throw UserError(fmt::format("cannot write {}: {}", path, std::strerror(errno)));
  owned_ = true;
}

ReportSink::~ReportSink() {
  if (owned_ && fd_ >= 0) ::close(fd_);
}

void ReportSink::commit() {
  // A partial file must not pass for a report: it goes, and the error says so.
  auto fail = [&](int err) {
    if (owned_) ::unlink(name_.c_str());
    return OutputError(fmt::format("cannot write {}: {}; the report is lost", name_, std::strerror(err)));
  };
  const std::string text = buffer_.str();
  if (int err = write_all(fd_, text)) throw fail(err);
  // A file system may take the bytes and fail only when they reach the disk.
  // fsync of a pipe or a terminal is EINVAL/ENOTSUP: nothing to flush there.
  if (::fsync(fd_) != 0 && errno != EINVAL && errno != ENOTSUP && errno != EROFS) throw fail(errno);
  if (owned_) {
    int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0) throw fail(errno);
  }
}

}  // namespace slabtrace::output
