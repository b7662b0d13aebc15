// The command line under libFuzzer: src/cli/main.cpp as it is, with the
// commands replaced by stubs that only turn the options into a session's
// options (where --sample and friends are checked). Input: arguments
// separated by NUL bytes. CLI11's own answer to bad arguments (a message and
// exit code) is the expected outcome; a crash, a sanitizer report or an
// exception that escapes is a bug.
#include <CLI/CLI.hpp>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <cstdint>
#include <iostream>
#include <string>
#include <vector>

#include "slabtrace/commands.hpp"
#include "slabtrace/error.hpp"

#define main slabtrace_cli_main
#include "../../src/cli/main.cpp"
#undef main

namespace slabtrace::commands {
int record(const RecordOptions& o) { return session_options(o.common, o.top).top == o.top ? 0 : 1; }
int stacks(const RecordOptions& o) { return record(o); }
int stream(const StreamOptions& o) { return session_options(o.common).caches.size() == o.common.caches.size() ? 0 : 1; }
int top(const TopOptions& o) { return session_options(o.common).min_age_s == o.common.min_age_s ? 0 : 1; }
int check(const CheckOptions& o) { return session_options(o.common).cgroup_filter == o.common.cgroup ? 0 : 1; }
int serve(const ServeOptions& o) { return session_options(o.common).tracer.max_objects == o.common.max_objects ? 0 : 1; }
int doctor(const DoctorOptions&) { return 0; }
}  // namespace slabtrace::commands

// FUZZ_PRINT_SEEDS=1: where the seeds are (scripts/test-fuzz.sh).
extern "C" int LLVMFuzzerInitialize(int*, char***) {
  if (std::getenv("FUZZ_PRINT_SEEDS")) {
    std::printf("%s/fuzz/cli\n", SLABTRACE_FIXTURES);
    std::exit(0);
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::vector<std::string> args{"slabtrace"};
  std::string current;
  for (std::size_t i = 0; i < size && args.size() < 64; ++i) {
    if (data[i] == 0) {
      args.push_back(current);
      current.clear();
    } else {
      current += char(data[i]);
    }
  }
  if (!current.empty()) args.push_back(current);
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  slabtrace_cli_main(int(args.size()), argv.data());
  spdlog::drop_all();  // main registers its logger by name each time
  return 0;
}
