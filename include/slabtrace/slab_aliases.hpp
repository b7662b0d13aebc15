#pragma once
// Slab caches the kernel merged into one. SLUB merges caches of compatible size and
// flags; /sys/kernel/slab then shows each merged name as a symlink to one shared
// directory (":0000512", ":A-0000192"), while /proc/slabinfo lists the merged cache
// under only one of the names. Unmerged caches are plain directories.
#include <map>
#include <string>
#include <vector>

#include "slabtrace/procfs.hpp"

namespace slabtrace::slab {

struct CacheAliases {
  // Shared directory (":0000512") -> the cache names linked to it, sorted.
  std::map<std::string, std::vector<std::string>> names_by_target;
  // Cache name -> its shared directory; unmerged caches are not in it.
  std::map<std::string, std::string> target_of;

  // Every name sharing name's cache, itself included, sorted; {name} if not merged.
  std::vector<std::string> aliases_of(const std::string& name) const;
  // The name among the aliases that /proc/slabinfo lists; name itself if it is
  // listed, not merged, or unknown.
  std::string slabinfo_name(const std::string& name, const procfs::Slabinfo& info) const;
  bool empty() const { return target_of.empty(); }
};

// Reads the symlinks of a /sys/kernel/slab-like directory. A missing or unreadable
// directory (no SLUB, no sysfs in a container) gives an empty CacheAliases.
CacheAliases read_slab_aliases(const std::string& sys_slab_dir = "/sys/kernel/slab");

// SLAB_RECLAIM_ACCOUNT, from NAME/reclaim_account: the kernel frees these
// caches' objects under memory pressure (dentries, inodes, buffer heads).
// False when the file is missing or unreadable.
bool is_reclaimable(const std::string& name, const std::string& sys_slab_dir = "/sys/kernel/slab");

}  // namespace slabtrace::slab
