// cgroup-v2 ids and paths, and what a cgroup path says about the container in it.
#include "slabtrace/cgroups.hpp"

#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <system_error>

namespace slabtrace::cgroups {
namespace {

namespace fs = std::filesystem;

bool consume_prefix(std::string_view& text, std::string_view prefix) {
  if (text.substr(0, prefix.size()) != prefix) return false;
  text.remove_prefix(prefix.size());
  return true;
}

bool consume_suffix(std::string_view& text, std::string_view suffix) {
  if (text.size() < suffix.size() || text.substr(text.size() - suffix.size()) != suffix) return false;
  text.remove_suffix(suffix.size());
  return true;
}

bool is_lower_hex(char c) { return std::isdigit(static_cast<unsigned char>(c)) || (c >= 'a' && c <= 'f'); }

// Docker, containerd and CRI-O ids are 64 lowercase hex digits.
bool is_container_id(std::string_view text) {
  return text.size() == 64 && std::all_of(text.begin(), text.end(), is_lower_hex);
}

// A pod UID is a dashed UUID, except for static pods, whose UID is a 32-digit hash.
bool is_pod_uid(std::string_view text) {
  return (text.size() == 36 || text.size() == 32) &&
         std::all_of(text.begin(), text.end(), [](char c) { return is_lower_hex(c) || c == '-'; });
}

struct RuntimeScope {
  std::string_view prefix;
  std::string_view runtime;
  bool monitor;  // the runtime's per-container monitor (conmon), not the container
};
// The id check keeps "crio-" from taking "crio-conmon-<id>", so the order is free.
constexpr std::array<RuntimeScope, 6> kRuntimeScopes = {{
    {"cri-containerd-", "containerd", false},
    {"crio-conmon-", "crio", true},
    {"crio-", "crio", false},
    {"docker-", "docker", false},
    {"libpod-conmon-", "podman", true},
    {"libpod-", "podman", false},
}};

// "cri-containerd-<id>.scope" and the like. With the cgroupfs driver the runtimes
// leave off ".scope" ("crio-<id>", "libpod-<id>").
bool match_runtime_scope(std::string_view component, ContainerInfo& info) {
  consume_suffix(component, ".scope");
  for (const auto& scope : kRuntimeScopes) {
    std::string_view id = component;
    if (!consume_prefix(id, scope.prefix) || !is_container_id(id)) continue;
    info.runtime = scope.runtime;
    info.container_id = scope.monitor ? std::nullopt : std::optional<std::string>(id);
    return true;
  }
  return false;
}

// The cgroupfs driver names a container's cgroup by its bare id: under its pod
// ("/kubepods/burstable/pod<uid>/<id>", runtime unknown) or under "/docker/<id>".
bool match_bare_id(std::string_view component, std::string_view parent, ContainerInfo& info) {
  if (!is_container_id(component)) return false;
  info.container_id = std::string(component);
  info.runtime = parent == "docker" ? "docker" : "";
  return true;
}

// "pod<uid>" (cgroupfs driver) or "kubepods-burstable-pod<uid>.slice" (systemd driver,
// also "kubepods-pod<uid>.slice" for guaranteed pods, and with a kubelet cgroup root
// prefixed: "kubelet-kubepods-...").
std::optional<std::string> match_pod(std::string_view component) {
  std::string_view rest = component;
  if (consume_prefix(rest, "pod")) return is_pod_uid(rest) ? std::optional<std::string>(rest) : std::nullopt;
  if (!consume_suffix(rest, ".slice")) return std::nullopt;
  auto pod = rest.rfind("-pod");
  if (pod == std::string_view::npos || rest.substr(0, pod).find("kubepods") == std::string_view::npos) {
    return std::nullopt;
  }
  // systemd spells the slice hierarchy with '-', so kubelet wrote the UID's dashes as '_'.
  std::string uid(rest.substr(pod + 4));
  std::replace(uid.begin(), uid.end(), '_', '-');
  return is_pod_uid(uid) ? std::optional<std::string>(uid) : std::nullopt;
}

// "burstable" (cgroupfs driver) or "kubepods-burstable.slice" (systemd driver).
std::string_view match_qos(std::string_view component) {
  for (std::string_view qos : {"burstable", "besteffort"}) {
    std::string_view rest = component;
    if (rest == qos || (consume_suffix(rest, ".slice") && consume_suffix(rest, qos) && consume_suffix(rest, "-"))) {
      return qos;
    }
  }
  return {};
}

std::int64_t steady_now_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(steady_clock::now().time_since_epoch()).count();
}

// Events from a cgroup we do not know yet tend to come in bursts; one walk answers all.
constexpr std::int64_t kMinRewalkIntervalMs = 1000;

// Records `dir` and every cgroup below it. cgroups come and go during the walk: one
// that vanishes is skipped. Symlinks are not followed (cgroupfs has none; a tree that
// did could loop).
void walk(const fs::path& dir, const std::string& relative, std::unordered_map<std::uint64_t, std::string>& paths) {
  auto id = cgroup_id_of(dir.string());
  if (!id) return;
  paths[*id] = relative.empty() ? "/" : relative;
  std::error_code walk_error;
  for (fs::directory_iterator it(dir, walk_error), end; !walk_error && it != end; it.increment(walk_error)) {
    std::error_code type_error;
    // Most entries are control files (cgroup.procs, memory.stat); only directories are cgroups.
    if (it->symlink_status(type_error).type() != fs::file_type::directory) continue;
    walk(it->path(), relative + "/" + it->path().filename().string(), paths);
  }
}

}  // namespace

ContainerInfo parse_container(std::string_view cgroup_path) {
  ContainerInfo info;
  bool under_kubepods = false;
  std::string_view parent;
  // Scan every component and let the deepest match win: runtimes nest cgroups inside
  // a container's ("crio-<id>.scope/container", "libpod-<id>.scope/init.scope").
  while (!cgroup_path.empty()) {
    auto slash = cgroup_path.find('/');
    auto component = cgroup_path.substr(0, slash);
    cgroup_path.remove_prefix(slash == std::string_view::npos ? cgroup_path.size() : slash + 1);
    if (component.empty()) continue;

    under_kubepods = under_kubepods || component.find("kubepods") != std::string_view::npos;
    bool is_container = match_runtime_scope(component, info) || match_bare_id(component, parent, info);
    if (!is_container && under_kubepods) {
      if (auto uid = match_pod(component)) info.pod_uid = std::move(uid);
      if (auto qos = match_qos(component); !qos.empty()) info.qos = qos;
    }
    parent = component;
  }
  // A QoS class belongs to a pod; guaranteed pods sit directly under kubepods.
  if (!info.pod_uid) {
    info.qos.clear();
  } else if (info.qos.empty()) {
    info.qos = "guaranteed";
  }
  return info;
}

CgroupResolver::CgroupResolver(std::string mount_point) : mount_(std::move(mount_point)) {
  // Walk now, so that cgroups which vanish before their first event still resolve.
  refresh();
}

std::optional<std::string> CgroupResolver::path_of(std::uint64_t id) {
  auto known = [&]() -> std::optional<std::string> {
    auto it = paths_.find(id);
    if (it == paths_.end()) return std::nullopt;
    return it->second;
  };
  if (auto path = known()) return path;
  if (last_walk_ms_ >= 0 && steady_now_ms() - last_walk_ms_ < kMinRewalkIntervalMs) return std::nullopt;
  refresh();
  return known();
}

void CgroupResolver::refresh() {
  // Entries are only added or overwritten, never removed: a vanished cgroup keeps its
  // path, and a reused inode number takes the new cgroup's.
  walk(mount_, "", paths_);
  last_walk_ms_ = steady_now_ms();
}

std::optional<bool> CgroupResolver::exists(std::uint64_t id) {
  if (!handles_usable_) return std::nullopt;
  // A cgroup's handle is its 8-byte id (kernfs, 5.5+); learn the handle type
  // from the mount's own root, and check that the root's handle is its id.
  struct Handle {
    alignas(file_handle) unsigned char storage[sizeof(file_handle) + sizeof(std::uint64_t)] = {};
    file_handle* get() { return reinterpret_cast<file_handle*>(storage); }
  };
  if (!mount_fd_) {
    Handle root;
    root.get()->handle_bytes = sizeof(std::uint64_t);
    int mount_id = 0;
    std::uint64_t root_id = 0;
    if (::name_to_handle_at(AT_FDCWD, mount_.c_str(), root.get(), &mount_id, 0) != 0 ||
        root.get()->handle_bytes != sizeof root_id) {
      handles_usable_ = false;
      return std::nullopt;
    }
    std::memcpy(&root_id, root.get()->f_handle, sizeof root_id);
    if (root_id != cgroup_id_of(mount_).value_or(0)) {
      handles_usable_ = false;
      return std::nullopt;
    }
    handle_type_ = root.get()->handle_type;
    mount_fd_ = UniqueFd(::open(mount_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!mount_fd_) {
      handles_usable_ = false;
      return std::nullopt;
    }
  }
  Handle h;
  h.get()->handle_bytes = sizeof id;
  h.get()->handle_type = handle_type_;
  std::memcpy(h.get()->f_handle, &id, sizeof id);
  UniqueFd fd(::open_by_handle_at(mount_fd_.get(), h.get(), O_RDONLY | O_CLOEXEC));
  if (fd) return true;
  if (errno == ESTALE || errno == ENOENT) return false;
  if (errno == EPERM || errno == EOPNOTSUPP || errno == EINVAL) handles_usable_ = false;
  return std::nullopt;
}

std::optional<std::uint64_t> cgroup_id_of(const std::string& dir) {
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) return std::nullopt;
  return static_cast<std::uint64_t>(st.st_ino);
}

}  // namespace slabtrace::cgroups
