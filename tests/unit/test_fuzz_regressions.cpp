// Every fuzz target's body on its seeds and on every input that once crashed
// it (tests/fixtures/fuzz/<target>/crash-*): what the fuzzer found stays fixed.
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "fuzz_targets.hpp"

namespace fs = std::filesystem;

namespace {

std::vector<fs::path> files_under(const fs::path& p) {
  std::vector<fs::path> out;
  if (fs::is_regular_file(p)) out.push_back(p);
  if (fs::is_directory(p))
    for (const auto& e : fs::recursive_directory_iterator(p))
      if (e.is_regular_file()) out.push_back(e.path());
  return out;
}

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace

TEST_CASE("fuzz targets: seeds and kept crash inputs run clean", "[unit][fuzz]") {
  const fs::path fixtures = SLABTRACE_FIXTURES;
  std::size_t inputs = 0;
  for (const auto& target : slabtrace::fuzz::targets()) {
    std::vector<fs::path> files;
    for (const char* seed : target.seeds) {
      auto found = files_under(fixtures / seed);
      INFO(target.name << ": seed " << seed);
      CHECK_FALSE(found.empty());  // a seed that moved would silently fuzz from nothing
      files.insert(files.end(), found.begin(), found.end());
    }
    auto kept = files_under(fixtures / "fuzz" / target.name);
    files.insert(files.end(), kept.begin(), kept.end());
    for (const auto& f : files) {
      INFO(target.name << " on " << f);
      CHECK_NOTHROW(slabtrace::fuzz::run_one(target, slurp(f)));
      ++inputs;
    }
  }
  CHECK(inputs >= slabtrace::fuzz::targets().size());
}
