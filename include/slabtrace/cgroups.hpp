#pragma once
// cgroup-v2 ids (as bpf_get_current_cgroup_id() returns them: the inode number of
// the cgroup's directory) to paths, and container / pod identities from paths.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "slabtrace/unique_fd.hpp"

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
  // Whether the cgroup of this id still exists, asked of the kernel by its
  // file handle (kernfs exports a cgroup's id as its handle: removal makes it
  // stale). nullopt when the kernel cannot say (no handle support, no
  // CAP_DAC_READ_SEARCH): callers then assume it exists.
  std::optional<bool> exists(std::uint64_t id);
  // Drops what is known of a cgroup that is gone (long runs on nodes whose
  // pods come and go would otherwise keep every path ever seen).
  void forget(std::uint64_t id) { paths_.erase(id); }
  const std::string& mount_point() const { return mount_; }

 private:
  std::string mount_;
  std::unordered_map<std::uint64_t, std::string> paths_;
  std::int64_t last_walk_ms_ = -1;
  // For exists(): the mount, opened on first use, and the kernel's handle
  // type for cgroup ids; handles_usable_ false once the kernel said it has none.
  UniqueFd mount_fd_;
  int handle_type_ = 0;
  bool handles_usable_ = true;
};

// The id of the cgroup at an absolute directory path (its inode number).
std::optional<std::uint64_t> cgroup_id_of(const std::string& dir);

}  // namespace slabtrace::cgroups
