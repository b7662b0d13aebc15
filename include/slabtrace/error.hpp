#pragma once
// Errors that reach the user as one line.
#include <stdexcept>
#include <string>

namespace slabtrace {

// A kernel text file did not look the way its parser expects. The message names
// the file (or "input") and the line: "/proc/slabinfo line 7: expected 16 fields".
struct ParseError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Something the user can fix (not root, no BTF, bad argument, missing tracepoint).
struct UserError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// A report (or a stream line) could not be written: full disk, closed pipe,
// I/O error. The message names the destination and the system's reason.
struct OutputError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

}  // namespace slabtrace
