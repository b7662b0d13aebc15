// /proc/PID/mountinfo (Documentation/filesystems/proc.rst, "3.5 /proc/<pid>/mountinfo"):
// "36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue"
#include <algorithm>
#include <array>
#include <fstream>
#include <utility>

#include "slabtrace/procfs.hpp"
#include "text_parsing.hpp"

namespace slabtrace::procfs {
namespace {

using detail::LineReader;

// Fields before the optional "tag:value" fields, and after the " - " separator.
constexpr std::size_t kLeadingFields = 6;
constexpr std::size_t kTrailingFields = 3;

bool is_octal(char c) { return c >= '0' && c <= '7'; }

// The kernel writes space, tab, newline and backslash in paths as \040 \011 \012 \134
// so that fields stay separated by single spaces.
std::string unescape(std::string_view field) {
  std::string out;
  out.reserve(field.size());
  for (std::size_t i = 0; i < field.size(); ++i) {
    if (field[i] == '\\' && i + 3 < field.size() && is_octal(field[i + 1]) && is_octal(field[i + 2]) &&
        is_octal(field[i + 3])) {
      out += static_cast<char>((field[i + 1] - '0') * 64 + (field[i + 2] - '0') * 8 + (field[i + 3] - '0'));
      i += 3;
    } else {
      out += field[i];
    }
  }
  return out;
}

MountEntry parse_entry(std::string_view line, const LineReader& reader) {
  // Split on single spaces: a filesystem mounted with an empty source shows as two
  // spaces in a row, and collapsing them would shift every field after it.
  auto fields = detail::split_exact(line, ' ');
  auto separator = fields.size() > kLeadingFields
                       ? std::find(fields.begin() + kLeadingFields, fields.end(), "-")
                       : fields.end();
  if (separator == fields.end()) reader.fail("expected ' - ' after the mount options");
  if (static_cast<std::size_t>(fields.end() - separator) != kTrailingFields + 1) {
    reader.fail("expected filesystem type, source and super options after ' - '");
  }
  MountEntry mount;
  mount.mount_id = reader.number<std::uint32_t>(fields[0], "mount id");
  mount.parent_id = reader.number<std::uint32_t>(fields[1], "parent id");
  mount.root = unescape(fields[3]);
  mount.mount_point = unescape(fields[4]);
  mount.fs_type = unescape(separator[1]);
  mount.source = unescape(separator[2]);
  mount.super_options = unescape(separator[3]);
  return mount;
}

std::vector<MountEntry> parse(std::istream& in, const std::string& source) {
  return detail::parse_lines(in, source, parse_entry);
}

}  // namespace

std::vector<MountEntry> parse_mountinfo(std::istream& in) { return parse(in, "mountinfo"); }

std::vector<MountEntry> read_mountinfo(const std::string& path) { return detail::parse_file(path, parse); }

std::optional<std::string> own_cgroup2_mount(std::string* error) {
  std::ifstream in("/proc/self/mountinfo");
  if (!in) return std::nullopt;
  try {
    return find_cgroup2_mount(parse_mountinfo(in));
  } catch (const ParseError& e) {
    if (error) *error = e.what();
    return std::nullopt;
  }
}

std::optional<std::string> find_cgroup2_mount(const std::vector<MountEntry>& mounts) {
  // Lower is better: a mount of the whole hierarchy first (a container may see only
  // its own sub-tree), then the usual places for pure v2 and hybrid hosts.
  auto rank = [](const MountEntry& m) {
    constexpr std::array<std::string_view, 2> kUsualPlaces = {"/sys/fs/cgroup", "/sys/fs/cgroup/unified"};
    auto place = std::find(kUsualPlaces.begin(), kUsualPlaces.end(), m.mount_point) - kUsualPlaces.begin();
    return std::pair(m.root != "/", place);
  };
  const MountEntry* best = nullptr;
  for (const auto& mount : mounts) {
    if (mount.fs_type == "cgroup2" && (!best || rank(mount) < rank(*best))) best = &mount;
  }
  if (!best) return std::nullopt;
  return best->mount_point;
}

std::optional<std::string> find_mount(const std::vector<MountEntry>& mounts, const std::string& fs_type) {
  auto it = std::find_if(mounts.begin(), mounts.end(), [&](const MountEntry& m) { return m.fs_type == fs_type; });
  if (it == mounts.end()) return std::nullopt;
  return it->mount_point;
}

}  // namespace slabtrace::procfs
