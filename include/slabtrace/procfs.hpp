#pragma once
// Pure parsers for the kernel's text files. Each takes an std::istream so it can
// be tested on fixture files; read_* helpers open the real file and add its path
// to any ParseError.
#include <cstdint>
#include <istream>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "slabtrace/error.hpp"

namespace slabtrace::procfs {

// One line of /proc/slabinfo (version 2.1).
struct SlabinfoEntry {
  std::string name;
  std::uint64_t active_objs = 0;
  std::uint64_t num_objs = 0;
  std::uint32_t object_size = 0;
  std::uint32_t objs_per_slab = 0;
  std::uint32_t pages_per_slab = 0;
  std::uint64_t active_slabs = 0;
  std::uint64_t num_slabs = 0;
};
using Slabinfo = std::vector<SlabinfoEntry>;

Slabinfo parse_slabinfo(std::istream& in);
Slabinfo read_slabinfo(const std::string& path = "/proc/slabinfo");
const SlabinfoEntry* find_cache(const Slabinfo& info, const std::string& name);

// One line of /proc/PID/mountinfo, octal escapes (\040 ...) decoded.
struct MountEntry {
  std::uint32_t mount_id = 0;
  std::uint32_t parent_id = 0;
  std::string root;         // root of the mount within its filesystem
  std::string mount_point;
  std::string fs_type;      // after the " - " separator
  std::string source;
  std::string super_options;
};
std::vector<MountEntry> parse_mountinfo(std::istream& in);
std::vector<MountEntry> read_mountinfo(const std::string& path = "/proc/self/mountinfo");
// The cgroup2 mount point: /sys/fs/cgroup on v2 hosts, /sys/fs/cgroup/unified on
// v1/v2 hybrids. Prefers a mount whose root is "/" (not a container's sub-view).
std::optional<std::string> find_cgroup2_mount(const std::vector<MountEntry>& mounts);
// The cgroup2 mount this process sees (/proc/self/mountinfo); nullopt when there
// is none or mountinfo cannot be read or parsed (then `error`, if given, says why).
std::optional<std::string> own_cgroup2_mount(std::string* error = nullptr);
std::optional<std::string> find_mount(const std::vector<MountEntry>& mounts, const std::string& fs_type);

// One line of /proc/PID/cgroup: "hierarchy-ID:controller-list:path".
struct ProcCgroupEntry {
  int hierarchy = 0;
  std::string controllers;
  std::string path;
  bool deleted = false;  // the kernel marked the v2 cgroup " (deleted)"; path is without it
};
std::vector<ProcCgroupEntry> parse_proc_cgroup(std::istream& in);
std::vector<ProcCgroupEntry> read_proc_cgroup(const std::string& path = "/proc/self/cgroup");
// The cgroup-v2 path (the "0::" line), if the process has one.
std::optional<std::string> cgroup2_path(const std::vector<ProcCgroupEntry>& entries);

// The running kernel's release (uname -r), "unknown" if uname fails.
std::string kernel_release();

// A gfp flag's value (e.g. "__GFP_ACCOUNT") from a kmem tracepoint's format
// file text, as its print fmt lists it; nullopt when it is not listed.
std::optional<std::uint64_t> gfp_flag_from_format(std::string_view format, std::string_view flag);
// The same, from the running kernel's kmem:kmalloc format (nullopt without tracefs).
std::optional<std::uint64_t> read_gfp_flag(std::string_view flag);

}  // namespace slabtrace::procfs
