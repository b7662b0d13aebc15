#include <catch2/catch.hpp>

#include <sstream>

#include "slabtrace/procfs.hpp"

using namespace slabtrace;
using namespace slabtrace::procfs;

namespace {

const std::string kHeader =
    "slabinfo - version: 2.1\n"
    "# name            <active_objs> <num_objs> <objsize> <objperslab> <pagesperslab> : tunables <limit> "
    "<batchcount> <sharedfactor> : slabdata <active_slabs> <num_slabs> <sharedavail>\n";

Slabinfo parse_text(const std::string& text) {
  std::istringstream in(text);
  return parse_slabinfo(in);
}

}  // namespace

TEST_CASE("slabinfo from a 6.18 SLUB kernel", "[unit][slabinfo]") {
  auto info = read_slabinfo(SLABTRACE_FIXTURES "/procfs/slabinfo");
  REQUIRE(info.size() == 235);  // 237 lines less the header and the column legend
  CHECK(info.front().name == "btrfs_delayed_node");
  CHECK(info.back().name == "kmem_cache");

  const auto* skb = find_cache(info, "skbuff_head_cache");
  REQUIRE(skb);
  CHECK(skb->active_objs == 416);
  CHECK(skb->num_objs == 416);
  CHECK(skb->object_size == 256);
  CHECK(skb->objs_per_slab == 16);
  CHECK(skb->pages_per_slab == 1);
  CHECK(skb->active_slabs == 26);
  CHECK(skb->num_slabs == 26);

  const auto* rcl96 = find_cache(info, "kmalloc-rcl-96");
  REQUIRE(rcl96);
  CHECK(rcl96->active_objs == 12245);
  CHECK(rcl96->num_objs == 12264);
  CHECK(rcl96->num_slabs == 292);

  const auto* tcp = find_cache(info, "TCP");
  REQUIRE(tcp);
  CHECK(tcp->object_size == 2368);
  CHECK(tcp->pages_per_slab == 8);

  CHECK(find_cache(info, "skbuff_fclone_cache") == nullptr);  // merged: listed as pool_workqueue
}

TEST_CASE("slabinfo from a SLAB kernel with non-zero tunables", "[unit][slabinfo]") {
  auto info = read_slabinfo(SLABTRACE_FIXTURES "/procfs/slabinfo-slab-allocator");
  REQUIRE(info.size() == 25);
  const auto* skb = find_cache(info, "skbuff_head_cache");
  REQUIRE(skb);
  CHECK(skb->active_objs == 1764);
  CHECK(skb->num_objs == 2010);
  CHECK(skb->object_size == 256);
  CHECK(skb->objs_per_slab == 15);
  CHECK(skb->active_slabs == 134);
  const auto* task = find_cache(info, "task_struct");
  REQUIRE(task);
  CHECK(task->object_size == 5888);
  CHECK(task->pages_per_slab == 2);
}

TEST_CASE("slabinfo with CONFIG_DEBUG_SLAB statistics columns", "[unit][slabinfo]") {
  auto info = parse_text(kHeader +
                         "kmalloc-64         33452  35712     64   62    1 : tunables  120   60    8 : slabdata    576"
                         "    576     24 : globalstat  912385  36110  1001   259    0    4   0    0    0 : cpustat "
                         "89123012 1840 89124210 1701\n");
  REQUIRE(info.size() == 1);
  CHECK(info[0].name == "kmalloc-64");
  CHECK(info[0].num_slabs == 576);
}

TEST_CASE("slabinfo takes the largest numbers the kernel can print", "[unit][slabinfo]") {
  auto info = parse_text(kHeader +
                         "big 18446744073709551615 18446744073709551615 4294967295 1 1 : tunables 0 0 0 : slabdata "
                         "18446744073709551615 18446744073709551615 0\n");
  REQUIRE(info.size() == 1);
  CHECK(info[0].active_objs == UINT64_MAX);
  CHECK(info[0].object_size == UINT32_MAX);
}

TEST_CASE("slabinfo rejects malformed input with the line number", "[unit][slabinfo]") {
  CHECK_THROWS_WITH(parse_text(""), "slabinfo: empty input");
  CHECK_THROWS_WITH(parse_text("kmalloc-8 1 1 8 512 1 : tunables 0 0 0 : slabdata 1 1 0\n"),
                    "slabinfo line 1: expected 'slabinfo - version: 2.1' header");
  CHECK_THROWS_WITH(parse_text("slabinfo - version: 2.0\n"),
                    "slabinfo line 1: unsupported version '2.0' (expected 2.1)");
  CHECK_THROWS_WITH(parse_text(kHeader + "kmalloc-8 2048 2048 8 512 1 : tunables 0 0 0 : slabdata 4 4\n"),
                    "slabinfo line 3: expected at least 16 fields, got 15");
  CHECK_THROWS_WITH(parse_text(kHeader + "kmalloc-8 2048"), "slabinfo line 3: expected at least 16 fields, got 2");
  CHECK_THROWS_WITH(parse_text(kHeader + "kmalloc-8 2048 2048 8 512 1 tunables : 0 0 0 : slabdata 4 4 0\n"),
                    "slabinfo line 3: expected ': tunables ... : slabdata ...' after the object counts");
  CHECK_THROWS_WITH(parse_text(kHeader + "kmalloc-8 -1 2048 8 512 1 : tunables 0 0 0 : slabdata 4 4 0\n"),
                    "slabinfo line 3: active_objs '-1' is not a number");
  CHECK_THROWS_WITH(parse_text(kHeader + "kmalloc-8 2048 2048 8x 512 1 : tunables 0 0 0 : slabdata 4 4 0\n"),
                    "slabinfo line 3: objsize '8x' is not a number");
  CHECK_THROWS_WITH(parse_text(kHeader + "kmalloc-8 1 1 4294967296 1 1 : tunables 0 0 0 : slabdata 4 4 0\n"),
                    "slabinfo line 3: objsize '4294967296' is out of range");
  CHECK_THROWS_WITH(
      parse_text(kHeader + "kmalloc-8 99999999999999999999999 1 8 1 1 : tunables 0 0 0 : slabdata 4 4 0\n"),
      "slabinfo line 3: active_objs '99999999999999999999999' is out of range");
  CHECK_THROWS_AS(parse_text(kHeader + "kmalloc-8 1 1 8 1 1 : tunables 0 0 0 : slabdata 4 4 0\n\x01\x02\n"),
                  ParseError);
}

TEST_CASE("slabinfo errors from a file name the file", "[unit][slabinfo]") {
  CHECK_THROWS_WITH(read_slabinfo(SLABTRACE_FIXTURES "/procfs/mountinfo"),
                    SLABTRACE_FIXTURES "/procfs/mountinfo line 1: expected 'slabinfo - version: 2.1' header");
  CHECK_THROWS_AS(read_slabinfo(SLABTRACE_FIXTURES "/procfs/no-such-file"), UserError);
}

TEST_CASE("slabinfo header and legend alone give no caches", "[unit][slabinfo]") {
  CHECK(parse_text(kHeader).empty());
  CHECK(parse_text("slabinfo - version: 2.1\n").empty());
}
