#pragma once
// Names a person recognises for a container: its name, its pod and the pod's
// namespace, read from the node's own log directories (no API server needed).
// The kubelet keeps two trees whose file names carry everything:
//
//   /var/log/containers/<pod>_<namespace>_<container>-<64 hex container id>.log
//       (a symlink into the tree below)
//   /var/log/pods/<namespace>_<pod>_<pod uid>/<container>/<restart>.log
//
// Kubernetes names never contain '_' (pod names are DNS subdomains, namespaces
// and container names DNS labels), so '_' splits them without ambiguity.
//
// Usage (serve, once per interval):
//   k8s::PodNames names({"/var/log/pods", "/var/log/containers"});
//   k8s::Workload w = names.lookup(cgroups::parse_container(path));
//   // w.pod_namespace, w.pod, w.container; empty when the node's files do not say
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "slabtrace/cgroups.hpp"

namespace slabtrace::k8s {

// A file name in /var/log/containers.
struct ContainerLog {
  std::string pod;
  std::string pod_namespace;
  std::string container;
  std::string container_id;  // 64 lowercase hex digits
};
// "coredns-5d78c9869d-7xk2p_kube-system_coredns-<64 hex>.log"; nullopt for any
// other name (rotated files, editors' leftovers, hand-made files).
std::optional<ContainerLog> parse_container_log(std::string_view file_name);

// A directory name in /var/log/pods.
struct PodDir {
  std::string pod_namespace;
  std::string pod;
  std::string uid;  // dashed UUID; the config hash (32 hex) for static pods
};
// "kube-system_coredns-5d78c9869d-7xk2p_8c1f4d2a-..."; nullopt for other names.
std::optional<PodDir> parse_pod_dir(std::string_view dir_name);

// What the names are for one cgroup. Fields the node's files do not give stay
// empty (a systemd service, a pod sandbox whose pause container logs nothing).
struct Workload {
  std::string pod_namespace;
  std::string pod;
  std::string pod_uid;
  std::string container;

  bool known() const { return !pod.empty(); }
};

// The names found in one scan, indexed by container id and by pod uid. Pure:
// tests and scan() fill it through add().
class NameIndex {
 public:
  // The pod uid of a container log comes from its symlink target
  // (".../pods/<namespace>_<pod>_<uid>/<container>/0.log") when there is one.
  void add(const ContainerLog& log, std::optional<std::string> pod_uid = std::nullopt);
  void add(const PodDir& pod);

  // By container id first (it names the container), then by pod uid (a pod-level
  // cgroup, or a container the kubelet keeps no log for).
  Workload find(const cgroups::ContainerInfo& container) const;
  std::size_t containers() const { return by_container_.size(); }
  std::size_t pods() const { return by_uid_.size(); }

 private:
  std::unordered_map<std::string, Workload> by_container_;
  std::unordered_map<std::string, PodDir> by_uid_;
};

struct LogDirs {
  std::string pods = "/var/log/pods";
  std::string containers = "/var/log/containers";
};

// Lists both directories (names and symlink targets only; no file is opened).
// A missing or unreadable directory gives an empty part: a node without
// Kubernetes is not an error.
NameIndex scan(const LogDirs& dirs);

// The index, rescanned when a lookup misses and the last scan is at least
// `rescan_after` old: new pods appear within that time, and a node whose
// cgroups mostly are not pods costs one directory listing per period.
class PodNames {
 public:
  using Clock = std::chrono::steady_clock;
  explicit PodNames(LogDirs dirs, Clock::duration rescan_after = std::chrono::seconds(10));

  Workload lookup(const cgroups::ContainerInfo& container, Clock::time_point now = Clock::now());
  const NameIndex& index() const { return index_; }

 private:
  LogDirs dirs_;
  Clock::duration rescan_after_;
  NameIndex index_;
  std::optional<Clock::time_point> last_scan_;
};

}  // namespace slabtrace::k8s
