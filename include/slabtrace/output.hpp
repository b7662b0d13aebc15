#pragma once
// Report formats: text for people, JSON / NDJSON for scripts (see
// shared/output-contract.md: field names are a public API), folded stacks for
// flame graph tools.
#include <nlohmann/json.hpp>
#include <ostream>
#include <string>

#include "slabtrace/cgroups.hpp"
#include "slabtrace/k8s_names.hpp"
#include "slabtrace/model.hpp"

namespace slabtrace::output {

inline constexpr const char* kReportSchema = "slabtrace.report/v1";
inline constexpr const char* kStreamSchema = "slabtrace.stream/v1";

nlohmann::json report_json(const model::Report& report);
void write_report_text(const model::Report& report, std::ostream& out);

nlohmann::json stacks_json(const model::Report& report);
void write_stacks_text(const model::Report& report, std::ostream& out);
// "cgroup;outermost;...;innermost <bytes>" one line per stack.
void write_stacks_folded(const model::Report& report, std::ostream& out);

// One NDJSON line of `slabtrace stream` for one cgroup.
struct StreamContext {
  std::string timestamp;  // RFC 3339 UTC
  double interval_s = 0;
  std::string path;
  cgroups::ContainerInfo container;
  k8s::Workload workload;
};
// "namespace", "pod", "container" fields (null where unknown) added to `into`.
void add_workload_fields(nlohmann::json& into, const k8s::Workload& workload);
// "payments/udp-sink-7f9c (container sink)" or "" when not a pod.
std::string workload_label(const k8s::Workload& workload);
// skb.holders[] entries and their owners[] (also in doctor's JSON).
nlohmann::json holder_json(const model::SkbHolder& holder);
nlohmann::json owner_json(const census::Owner& owner);
nlohmann::json census_json(const model::SocketCensusSummary& census);
// The processes a socket is open in, for record's and doctor's text: one line,
// `indent` spaces in, "open in: pid 7 (a) in /x, pid 8 (b) in /y" (at most 8,
// then "and N more"); "" when it is open in one process or none.
std::string open_in_line(const std::vector<census::Owner>& owners, std::size_t indent);

// The stream's census line ("slabtrace.sockets/v1"): every socket holding at
// least `min_bytes`, largest first, at most `top`, as skb.holders[] entries;
// nullopt when none does.
std::optional<nlohmann::json> sockets_line(const census::Census& census, const std::string& timestamp,
                                           double interval_s, std::uint64_t min_bytes = 64 * 1024, std::size_t top = 10);

nlohmann::json stream_line(const model::GroupRate& cgroup, const StreamContext& ctx);

std::string utc_timestamp();  // now, "2026-11-22T10:00:01Z"

}  // namespace slabtrace::output
