#pragma once
// Where a report goes: a file (--output, --svg) or stdout. Reports are built in
// memory and written at the end with every write, flush, fsync and close
// checked, so a full disk or a broken pipe is one clear error and a non-zero
// exit, never an empty file and exit 0.
#include <cerrno>
#include <sstream>
#include <string>
#include <string_view>

namespace slabtrace::output {

class ReportSink {
 public:
  // Opens (creates or truncates) `path` at once, so a bad path fails before
  // any tracing; "" or "-" is stdout. Throws UserError when it cannot.
  explicit ReportSink(const std::string& path);
  ~ReportSink();
  ReportSink(const ReportSink&) = delete;
  ReportSink& operator=(const ReportSink&) = delete;

  std::ostream& stream() { return buffer_; }
  // Writes what the stream holds and closes the file; throws OutputError
  // ("cannot write FILE: No space left on device") when any step fails.
  void commit();

 private:
  std::string name_;
  int fd_ = -1;
  bool owned_ = false;
  std::ostringstream buffer_;
};

// Writes all of `data` to `fd`; 0 or the errno of the write that failed.
int write_all(int fd, std::string_view data);

}  // namespace slabtrace::output
