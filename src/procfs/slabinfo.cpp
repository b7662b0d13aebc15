// /proc/slabinfo, version 2.1: the same layout for SLAB and SLUB since 2.6.
#include <algorithm>

#include "slabtrace/procfs.hpp"
#include "text_parsing.hpp"

namespace slabtrace::procfs {
namespace {

using detail::LineReader;

constexpr std::string_view kHeaderPrefix = "slabinfo - version: ";
constexpr std::string_view kSupportedVersion = "2.1";
// name, 5 counts, ": tunables" and 3 values, ": slabdata" and 3 values. Kernels with
// CONFIG_DEBUG_SLAB append ": globalstat ..." and ": cpustat ...", which we ignore.
constexpr std::size_t kMinFields = 16;

void check_header(LineReader& reader) {
  std::string line;
  if (!reader.next(line)) reader.fail_input("empty input");
  std::string_view header = line;
  header = header.substr(0, header.find_last_not_of(" \t") + 1);
  if (header.substr(0, kHeaderPrefix.size()) != kHeaderPrefix) {
    reader.fail(fmt::format("expected '{}{}' header", kHeaderPrefix, kSupportedVersion));
  }
  auto version = header.substr(kHeaderPrefix.size());
  if (version != kSupportedVersion) {
    reader.fail(fmt::format("unsupported version '{}' (expected {})", version, kSupportedVersion));
  }
}

SlabinfoEntry parse_entry(const std::vector<std::string_view>& fields, const LineReader& reader) {
  if (fields.size() < kMinFields) {
    reader.fail(fmt::format("expected at least {} fields, got {}", kMinFields, fields.size()));
  }
  if (fields[6] != ":" || fields[7] != "tunables" || fields[11] != ":" || fields[12] != "slabdata") {
    reader.fail("expected ': tunables ... : slabdata ...' after the object counts");
  }
  SlabinfoEntry entry;
  entry.name = fields[0];
  entry.active_objs = reader.number<std::uint64_t>(fields[1], "active_objs");
  entry.num_objs = reader.number<std::uint64_t>(fields[2], "num_objs");
  entry.object_size = reader.number<std::uint32_t>(fields[3], "objsize");
  entry.objs_per_slab = reader.number<std::uint32_t>(fields[4], "objperslab");
  entry.pages_per_slab = reader.number<std::uint32_t>(fields[5], "pagesperslab");
  entry.active_slabs = reader.number<std::uint64_t>(fields[13], "active_slabs");
  entry.num_slabs = reader.number<std::uint64_t>(fields[14], "num_slabs");
  return entry;
}

Slabinfo parse(std::istream& in, const std::string& source) {
  LineReader reader(in, source);
  check_header(reader);
  Slabinfo info;
  std::string line;
  while (reader.next(line)) {
    auto fields = detail::split_fields(line);
    // The "# name <active_objs> ..." line is a column legend, not a cache.
    if (fields.empty() || fields[0].front() == '#') continue;
    info.push_back(parse_entry(fields, reader));
  }
  return info;
}

}  // namespace

Slabinfo parse_slabinfo(std::istream& in) { return parse(in, "slabinfo"); }

Slabinfo read_slabinfo(const std::string& path) { return detail::parse_file(path, parse); }

const SlabinfoEntry* find_cache(const Slabinfo& info, const std::string& name) {
  auto it = std::find_if(info.begin(), info.end(), [&](const SlabinfoEntry& e) { return e.name == name; });
  return it == info.end() ? nullptr : &*it;
}

}  // namespace slabtrace::procfs
