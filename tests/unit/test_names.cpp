// CTest registers each test case by name through catch_discover_tests, which
// keeps its list in a CMake string: a ';' in a name splits it into two tests
// that match nothing and "pass" without running. This keeps names CTest-safe.
#include <catch2/catch.hpp>

TEST_CASE("no test case name has a semicolon, which CTest would split into two that run nothing", "[unit][names]") {
  const auto& all = Catch::getAllTestCasesSorted(*Catch::getCurrentContext().getConfig());
  CHECK(all.size() > 100);
  for (const auto& test : all) {
    INFO(test.name);
    CHECK(test.name.find(';') == std::string::npos);
  }
}
