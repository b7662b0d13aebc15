// Merged slab caches, from the symlinks in /sys/kernel/slab.
#include "slabtrace/slab_aliases.hpp"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <system_error>

namespace slabtrace::slab {

namespace fs = std::filesystem;

std::vector<std::string> CacheAliases::aliases_of(const std::string& name) const {
  auto target = target_of.find(name);
  if (target == target_of.end()) return {name};
  return names_by_target.at(target->second);
}

std::string CacheAliases::slabinfo_name(const std::string& name, const procfs::Slabinfo& info) const {
  if (procfs::find_cache(info, name)) return name;
  for (const auto& alias : aliases_of(name)) {
    if (procfs::find_cache(info, alias)) return alias;
  }
  return name;
}

CacheAliases read_slab_aliases(const std::string& sys_slab_dir) {
  CacheAliases aliases;
  std::error_code list_error;
  for (fs::directory_iterator it(sys_slab_dir, list_error), end; !list_error && it != end; it.increment(list_error)) {
    std::error_code link_error;
    if (!it->is_symlink(link_error)) continue;
    auto target = fs::read_symlink(it->path(), link_error);
    if (link_error) continue;
    auto name = it->path().filename().string();
    // sysfs links are relative (":0000512"); the last component names the group either way.
    auto group = target.filename().string();
    aliases.target_of.emplace(name, group);
    aliases.names_by_target[group].push_back(std::move(name));
  }
  for (auto& [group, names] : aliases.names_by_target) std::sort(names.begin(), names.end());
  return aliases;
}

bool is_reclaimable(const std::string& name, const std::string& sys_slab_dir) {
  // Names come from slabinfo and our own cache naming; never a path.
  if (name.empty() || name.find('/') != std::string::npos || name == "." || name == "..") return false;
  std::ifstream in(sys_slab_dir + "/" + name + "/reclaim_account");
  int flag = 0;
  return in >> flag && flag == 1;
}

}  // namespace slabtrace::slab
