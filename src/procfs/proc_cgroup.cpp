// /proc/PID/cgroup: "hierarchy-ID:controller-list:path", one line per hierarchy;
// the cgroup-v2 line is "0::/path".
#include <algorithm>

#include "slabtrace/procfs.hpp"
#include "text_parsing.hpp"

namespace slabtrace::procfs {
namespace {

using detail::LineReader;

// Appended by the kernel when the process's v2 cgroup has been removed.
constexpr std::string_view kDeletedSuffix = " (deleted)";

ProcCgroupEntry parse_entry(std::string_view line, const LineReader& reader) {
  // Only the first two colons separate fields: a cgroup path may contain colons.
  auto first = line.find(':');
  auto second = first == std::string_view::npos ? first : line.find(':', first + 1);
  if (second == std::string_view::npos) reader.fail("expected 'hierarchy:controllers:path'");
  ProcCgroupEntry entry;
  entry.hierarchy = reader.number<int>(line.substr(0, first), "hierarchy id");
  entry.controllers = line.substr(first + 1, second - first - 1);
  auto path = line.substr(second + 1);
  if (path.size() >= kDeletedSuffix.size() && path.substr(path.size() - kDeletedSuffix.size()) == kDeletedSuffix) {
    path.remove_suffix(kDeletedSuffix.size());
    entry.deleted = true;
  }
  entry.path = path;
  return entry;
}

std::vector<ProcCgroupEntry> parse(std::istream& in, const std::string& source) {
  return detail::parse_lines(in, source, parse_entry);
}

}  // namespace

std::vector<ProcCgroupEntry> parse_proc_cgroup(std::istream& in) { return parse(in, "cgroup"); }

std::vector<ProcCgroupEntry> read_proc_cgroup(const std::string& path) { return detail::parse_file(path, parse); }

std::optional<std::string> cgroup2_path(const std::vector<ProcCgroupEntry>& entries) {
  auto it = std::find_if(entries.begin(), entries.end(),
                         [](const ProcCgroupEntry& e) { return e.hierarchy == 0 && e.controllers.empty(); });
  if (it == entries.end()) return std::nullopt;
  return it->path;
}

}  // namespace slabtrace::procfs
