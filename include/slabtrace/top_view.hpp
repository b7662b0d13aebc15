#pragma once
// slabtrace top's screen as text: the node's kernel memory, then caches and
// cgroups with their rates and a sparkline of the last intervals, fitted to a
// terminal of a given size. No terminal I/O here: src/commands/top.cpp reads
// keys and draws these lines, the tests read them.
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "slabtrace/model.hpp"
#include "slabtrace/nodemem.hpp"

namespace slabtrace::output {

// What the rows are ordered by, largest first; the sparkline shows the same
// figure (outstanding bytes, growth per second or allocations per second).
enum class TopSort { outstanding, growth, allocs };
// "outstanding", "growth", "allocs"; UserError for anything else.
TopSort parse_top_sort(std::string_view name);
std::string_view to_string(TopSort sort);

// Which tables the screen gives its rows to; the `c` key cycles through them.
enum class TopFocus { both, caches, cgroups };
TopFocus next_focus(TopFocus focus);

// Intervals a sparkline covers.
inline constexpr std::size_t kSparklineIntervals = 10;

// The socket census in one line: what sits in socket queues now.
struct TopSockets {
  std::uint64_t queued_bytes = 0;
  std::size_t queues = 0;       // sockets holding anything
  std::string largest;          // census::describe of the largest, "" if none
  std::uint64_t largest_bytes = 0;
};

struct TopFrame {
  std::vector<model::Rates> history;                  // oldest first; back() is the latest interval
  std::map<std::uint64_t, std::string> cgroup_paths;  // a cgroup missing here shows its id
  node::Meminfo meminfo;                              // now; empty when /proc/meminfo could not be read
  node::Meminfo meminfo_start;                        // when top started: SUnreclaim's change
  double elapsed_s = 0;
  double interval_s = 0;
  std::optional<TopSockets> sockets;  // absent until the first census
};

struct TopLayout {
  std::size_t width = 80;
  std::size_t height = 24;   // 0: no limit (output piped; max_rows caps the tables)
  std::size_t max_rows = 0;  // rows per table at most; 0: as many as the height allows
  TopSort sort = TopSort::growth;
  TopFocus focus = TopFocus::both;
  bool keys_line = true;  // a last line naming the keys (interactive only)
};

// Every line is at most layout.width columns, and there are at most
// layout.height lines (when it is not 0). Lines carry no escape codes.
std::vector<std::string> render_top(const TopFrame& frame, const TopLayout& layout);

// ▁ to █ per value, scaled from min(0, lowest) to max(0, highest) so that zero
// stays at the bottom unless something fell below it; a value not yet known
// is a space; all zero is a flat ▁ line.
std::string sparkline(const std::vector<std::optional<double>>& values);

// Columns a UTF-8 string takes on a terminal (one per code point: the text
// top draws has no wide or combining characters once names are sanitised).
std::size_t display_width(std::string_view text);
// Fits text into `width` columns: keep_end keeps the tail ("…/cri-containerd-ab12",
// the specific end of a cgroup path), otherwise the head ("kmalloc-c…").
// Control characters become '?' so that a name cannot move the cursor.
std::string fit_text(std::string_view text, std::size_t width, bool keep_end);

}  // namespace slabtrace::output
