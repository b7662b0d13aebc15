// Container ids to pod, namespace and container names, from the kubelet's log
// directories.
#include "slabtrace/k8s_names.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <filesystem>
#include <system_error>

namespace slabtrace::k8s {

namespace fs = std::filesystem;

namespace {

constexpr std::size_t kContainerIdLength = 64;

bool is_lower_hex(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

// Exactly three non-empty parts separated by '_'.
std::optional<std::array<std::string, 3>> split_three(std::string_view s) {
  std::array<std::string, 3> parts;
  for (std::size_t i = 0; i < parts.size(); ++i) {
    auto sep = s.find('_');
    bool last = i + 1 == parts.size();
    if (last != (sep == std::string_view::npos)) return std::nullopt;
    parts[i] = std::string(s.substr(0, sep));
    if (parts[i].empty()) return std::nullopt;
    if (!last) s.remove_prefix(sep + 1);
  }
  return parts;
}

}  // namespace

std::optional<ContainerLog> parse_container_log(std::string_view name) {
  constexpr std::string_view suffix = ".log";
  if (name.size() <= suffix.size() || name.substr(name.size() - suffix.size()) != suffix) return std::nullopt;
  name.remove_suffix(suffix.size());
  auto dash = name.rfind('-');
  if (dash == std::string_view::npos) return std::nullopt;
  std::string_view id = name.substr(dash + 1);
  if (id.size() != kContainerIdLength || !is_lower_hex(id)) return std::nullopt;
  auto parts = split_three(name.substr(0, dash));
  if (!parts) return std::nullopt;
  return ContainerLog{(*parts)[0], (*parts)[1], (*parts)[2], std::string(id)};
}

std::optional<PodDir> parse_pod_dir(std::string_view name) {
  auto parts = split_three(name);
  if (!parts) return std::nullopt;
  return PodDir{(*parts)[0], (*parts)[1], (*parts)[2]};
}

void NameIndex::add(const ContainerLog& log, std::optional<std::string> pod_uid) {
  Workload w{log.pod_namespace, log.pod, pod_uid.value_or(""), log.container};
  by_container_[log.container_id] = std::move(w);
}

void NameIndex::add(const PodDir& pod) { by_uid_[pod.uid] = pod; }

Workload NameIndex::find(const cgroups::ContainerInfo& c) const {
  Workload w;
  if (c.container_id) {
    auto it = by_container_.find(*c.container_id);
    if (it != by_container_.end()) w = it->second;
  }
  // The cgroup path names the pod uid even when the log's symlink did not.
  if (w.pod_uid.empty() && c.pod_uid) w.pod_uid = *c.pod_uid;
  if (!w.known() && !w.pod_uid.empty()) {
    auto it = by_uid_.find(w.pod_uid);
    if (it != by_uid_.end()) {
      w.pod_namespace = it->second.pod_namespace;
      w.pod = it->second.pod;
    }
  }
  return w;
}

namespace {

// The pod uid from a container log's symlink target:
// ".../<namespace>_<pod>_<uid>/<container>/<restart>.log".
std::optional<std::string> pod_uid_of_target(const fs::path& target, const ContainerLog& log) {
  fs::path pod_dir = target.parent_path().parent_path().filename();
  auto pod = parse_pod_dir(pod_dir.string());
  if (!pod || pod->pod != log.pod || pod->pod_namespace != log.pod_namespace) return std::nullopt;
  return pod->uid;
}

// Calls fn(entry) for each entry; a missing or unreadable directory has none.
template <typename Fn>
void for_each_entry(const std::string& dir, Fn&& fn) {
  std::error_code ec;
  fs::directory_iterator it(dir, ec), end;
  if (ec) {
    spdlog::debug("pod names: cannot list {}: {}", dir, ec.message());
    return;
  }
  for (; it != end; it.increment(ec)) {
    if (ec) break;
    fn(*it);
  }
}

}  // namespace

NameIndex scan(const LogDirs& dirs) {
  NameIndex index;
  for_each_entry(dirs.pods, [&](const fs::directory_entry& e) {
    if (auto pod = parse_pod_dir(e.path().filename().string())) index.add(*pod);
  });
  for_each_entry(dirs.containers, [&](const fs::directory_entry& e) {
    auto log = parse_container_log(e.path().filename().string());
    if (!log) return;
    std::error_code ec;
    std::optional<std::string> uid;
    if (e.is_symlink(ec)) {
      fs::path target = fs::read_symlink(e.path(), ec);
      if (!ec) uid = pod_uid_of_target(target, *log);
    }
    index.add(*log, uid);
  });
  spdlog::debug("pod names: {} containers, {} pods", index.containers(), index.pods());
  return index;
}

PodNames::PodNames(LogDirs dirs, Clock::duration rescan_after)
    : dirs_(std::move(dirs)), rescan_after_(rescan_after) {}

Workload PodNames::lookup(const cgroups::ContainerInfo& container, Clock::time_point now) {
  if (!container.container_id && !container.pod_uid) return {};
  if (!last_scan_) {
    index_ = scan(dirs_);
    last_scan_ = now;
  }
  Workload w = index_.find(container);
  // A miss is a container started since the last scan, or one that is not a
  // pod's at all (docker run); rescan only once per period for either.
  bool miss = !w.known() || (container.container_id && w.container.empty());
  if (miss && now - *last_scan_ >= rescan_after_) {
    index_ = scan(dirs_);
    last_scan_ = now;
    w = index_.find(container);
  }
  return w;
}

}  // namespace slabtrace::k8s
