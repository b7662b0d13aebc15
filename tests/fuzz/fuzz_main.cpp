// One libFuzzer binary per target: FUZZ_TARGET names it (tests/fuzz/CMakeLists.txt).
#include <cstdio>
#include <cstdlib>

#include "fuzz_targets.hpp"

namespace {
const slabtrace::fuzz::Target& target() {
  static const slabtrace::fuzz::Target* t = [] {
    auto* found = slabtrace::fuzz::find_target(FUZZ_TARGET);
    if (!found) {
      std::fprintf(stderr, "fuzz: no target %s\n", FUZZ_TARGET);
      std::abort();
    }
    return found;
  }();
  return *t;
}
}  // namespace

// FUZZ_PRINT_SEEDS=1: print the seed paths and exit (scripts/test-fuzz.sh
// copies them into the corpus); FUZZ_LIST_TARGETS=1: print every target's name.
extern "C" int LLVMFuzzerInitialize(int*, char***) {
  if (std::getenv("FUZZ_PRINT_SEEDS")) {
    for (const char* seed : target().seeds) std::printf("%s/%s\n", SLABTRACE_FIXTURES, seed);
    std::printf("%s/fuzz/%s\n", SLABTRACE_FIXTURES, FUZZ_TARGET);
    std::exit(0);
  }
  if (std::getenv("FUZZ_LIST_TARGETS")) {
    for (const auto& t : slabtrace::fuzz::targets()) std::printf("%s\n", t.name);
    std::exit(0);
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  slabtrace::fuzz::run_one(target(), std::string_view(reinterpret_cast<const char*>(data), size));
  return 0;
}
