#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>

#include "slabtrace/procfs.hpp"
#include "slabtrace/slab_aliases.hpp"

using namespace slabtrace;
using slabtrace::slab::read_slab_aliases;
using Names = std::vector<std::string>;

TEST_CASE("slab aliases from a /sys/kernel/slab fixture tree", "[unit][slab_aliases]") {
  auto aliases = read_slab_aliases(SLABTRACE_FIXTURES "/sysfs/kernel/slab");
  REQUIRE_FALSE(aliases.empty());
  CHECK(aliases.names_by_target.size() == 5);
  CHECK(aliases.target_of.size() == 13);
  CHECK(aliases.target_of.at("skbuff_fclone_cache") == ":0000512");
  CHECK(aliases.target_of.at("cred") == ":A-0000192");

  CHECK(aliases.aliases_of("skbuff_fclone_cache") ==
        Names{"mem_cgroup_per_node", "pool_workqueue", "sgpool-16", "skbuff_fclone_cache"});
  CHECK(aliases.aliases_of("UDP") == Names{"PINGv6", "UDP", "UDP-Lite"});
  CHECK(aliases.aliases_of("skbuff_head_cache") == Names{"skbuff_head_cache"});  // a plain directory
  CHECK(aliases.aliases_of("no_such_cache") == Names{"no_such_cache"});

  // /proc/slabinfo, read at the same moment, lists each merged cache under one name.
  auto info = procfs::read_slabinfo(SLABTRACE_FIXTURES "/procfs/slabinfo");
  CHECK(aliases.slabinfo_name("skbuff_fclone_cache", info) == "pool_workqueue");
  CHECK(aliases.slabinfo_name("pool_workqueue", info) == "pool_workqueue");
  CHECK(aliases.slabinfo_name("UDP-Lite", info) == "UDP");
  CHECK(aliases.slabinfo_name("cred", info) == "pid");
  CHECK(aliases.slabinfo_name("sgpool-8", info) == "key_jar");
  CHECK(aliases.slabinfo_name("skbuff_head_cache", info) == "skbuff_head_cache");
  CHECK(aliases.slabinfo_name("no_such_cache", info) == "no_such_cache");
  CHECK(aliases.slabinfo_name("skbuff_fclone_cache", {}) == "skbuff_fclone_cache");
}

TEST_CASE("slab aliases of a missing directory are empty", "[unit][slab_aliases]") {
  auto aliases = read_slab_aliases("/nonexistent/slabtrace/slab");
  CHECK(aliases.empty());
  CHECK(aliases.names_by_target.empty());
  CHECK(aliases.aliases_of("kmalloc-512") == Names{"kmalloc-512"});
}

TEST_CASE("slab aliases of this machine agree with its /proc/slabinfo", "[unit][slab_aliases]") {
  if (!std::filesystem::exists("/sys/kernel/slab")) {
    WARN("no /sys/kernel/slab on this machine (not SLUB, or no sysfs)");
    return;
  }
  auto aliases = read_slab_aliases();
  procfs::Slabinfo info;
  try {
    info = procfs::read_slabinfo();
  } catch (const UserError& e) {
    WARN("not checked against /proc/slabinfo: " << e.what());
    return;
  }
  // Each merged cache is one kmem_cache, so exactly one of its names is listed.
  for (const auto& [target, names] : aliases.names_by_target) {
    CAPTURE(target);
    auto listed = std::count_if(names.begin(), names.end(), [&](const std::string& name) {
      return procfs::find_cache(info, name) != nullptr;
    });
    CHECK(listed == 1);
    for (const auto& name : names) CHECK(procfs::find_cache(info, aliases.slabinfo_name(name, info)));
  }
}

TEST_CASE("reclaimable caches are told by reclaim_account, merged ones through their link", "[unit][slab_aliases]") {
  const std::string dir = std::string(SLABTRACE_FIXTURES) + "/sysfs/kernel/slab";
  CHECK(slab::is_reclaimable("ext4_inode_cache", dir));
  CHECK(slab::is_reclaimable("dentry", dir));
  CHECK(slab::is_reclaimable("buffer_head", dir));  // -> :a-0000104
  CHECK_FALSE(slab::is_reclaimable("skbuff_head_cache", dir));
  CHECK_FALSE(slab::is_reclaimable("UDP", dir));       // -> :A-0001344, accounted but not reclaimable
  CHECK_FALSE(slab::is_reclaimable("no_such_cache", dir));
  CHECK_FALSE(slab::is_reclaimable("../slab", dir));
}
