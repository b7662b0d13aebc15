#pragma once
// cgroup-v2 ids (as bpf_get_current_cgroup_id() returns them: the inode number of
// the cgroup's directory) to paths, and container / pod identities from paths.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

namespace slabtrace::cgroups {

struct ContainerInfo {
  std::string runtime;                      // "containerd", "crio", "docker", "podman" or ""
  std::optional<std::string> container_id;  // full hex id
  std::optional<std::string> pod_uid;       // dashed form: 1f0c...-...-...
  std::string qos;                          // "guaranteed", "burstable", "besteffort" or ""
};
// Recognises cri-containerd-<id>.scope, crio-<id>.scope, docker-<id>.scope,
// libpod-<id>.scope, /kubepods/<qos>/pod<uid>/<id> (cgroupfs driver) and
// kubepods-<qos>-pod<uid_with_underscores>.slice (systemd driver); also /docker/<id>
// and the conmon monitors crio-conmon-<id>.scope / libpod-conmon-<id>.scope (runtime
// set, container_id empty: conmon is not the container).
ContainerInfo parse_container(std::string_view cgroup_path);

// Walks the cgroup2 mount to map ids to paths relative to it ("/" for the root).
// Paths of cgroups that disappear stay known for the rest of the run. Walks once
// when constructed; never throws on a tree that changes under it.
class CgroupResolver {
 public:
  explicit CgroupResolver(std::string mount_point);
  // Path for an id; on a miss re-walks the tree at most once per second.
  std::optional<std::string> path_of(std::uint64_t id);
  void refresh();
  const std::string& mount_point() const { return mount_; }

 private:
  std::string mount_;
  std::unordered_map<std::uint64_t, std::string> paths_;
  std::int64_t last_walk_ms_ = -1;
};

// The id of the cgroup at an absolute directory path (its inode number).
std::optional<std::uint64_t> cgroup_id_of(const std::string& dir);

}  // namespace slabtrace::cgroups
