// gfp flag values from kmem tracepoint formats of real kernels.
#include <catch2/catch.hpp>

#include <fstream>
#include <sstream>

#include "slabtrace/procfs.hpp"

using slabtrace::procfs::gfp_flag_from_format;

namespace {

std::string fixture(const std::string& name) {
  std::ifstream in(std::string(SLABTRACE_FIXTURES) + "/tracefs/" + name);
  REQUIRE(in);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace

TEST_CASE("gfp flags: 6.18 lists them as bit shifts", "[gfp]") {
  std::string f = fixture("kmalloc-format-6.18");
  CHECK(gfp_flag_from_format(f, "__GFP_ACCOUNT") == (1ull << 22));
  CHECK(gfp_flag_from_format(f, "__GFP_RECLAIMABLE") == (1ull << 4));
  CHECK(gfp_flag_from_format(f, "__GFP_DMA") == 1ull);
  // A flag the format does not list.
  CHECK_FALSE(gfp_flag_from_format(f, "__GFP_NOSUCH"));
}

TEST_CASE("gfp flags: 5.10 lists them as masks", "[gfp]") {
  std::string f = fixture("kmalloc-format-5.10");
  CHECK(gfp_flag_from_format(f, "__GFP_ACCOUNT") == 0x400000ull);
  CHECK(gfp_flag_from_format(f, "__GFP_RECLAIMABLE") == 0x10ull);
  CHECK_FALSE(gfp_flag_from_format(f, "__GFP_DMA"));
  CHECK(gfp_flag_from_format(f, "GFP_DMA") == 0x01ull);  // the zone mask, listed under this name
}

TEST_CASE("gfp flags: malformed formats give nothing, never a crash", "[gfp]") {
  CHECK_FALSE(gfp_flag_from_format("", "__GFP_ACCOUNT"));
  CHECK_FALSE(gfp_flag_from_format("\"__GFP_ACCOUNT\"", "__GFP_ACCOUNT"));
  CHECK_FALSE(gfp_flag_from_format("{(unsigned long)x, \"__GFP_ACCOUNT\"}", "__GFP_ACCOUNT"));
  CHECK_FALSE(gfp_flag_from_format("{(( gfp_t)((((1UL))) << (99))), \"__GFP_ACCOUNT\"}", "__GFP_ACCOUNT"));
  CHECK_FALSE(gfp_flag_from_format("{0x11111111111111111111u, \"__GFP_ACCOUNT\"}", "__GFP_ACCOUNT"));
}
