#include <catch2/catch.hpp>

#include <sys/stat.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "slabtrace/cgroups.hpp"
#include "slabtrace/procfs.hpp"
#include "temp_dir.hpp"

using namespace slabtrace::cgroups;
namespace fs = std::filesystem;

namespace {

const std::string kId = "954b15f0cf5bd23b9f0e84753f4bfe4855bf04d3ca82ee73ac929931ca24e39d";
const std::string kPodUid = "b47edbfb-5e13-4dc1-8dcb-cfe89e625385";
const std::string kPodUidUnderscored = "b47edbfb_5e13_4dc1_8dcb_cfe89e625385";

// Compares all four fields at once, so a failure shows which one differs.
std::string describe(const ContainerInfo& info) {
  return "runtime=" + info.runtime + " id=" + info.container_id.value_or("-") + " pod=" + info.pod_uid.value_or("-") +
         " qos=" + info.qos;
}

// The description of the expected ContainerInfo; "-" stands for no value.
std::string expect(const std::string& runtime, const std::string& id, const std::string& pod, const std::string& qos) {
  auto optional = [](const std::string& text) { return text == "-" ? std::nullopt : std::optional(text); };
  return describe({runtime, optional(id), optional(pod), qos});
}

std::uint64_t inode(const slabtrace::testing::TempDir& root, const std::string& relative) {
  struct stat st {};
  REQUIRE(::lstat((root.path() / relative.substr(1)).c_str(), &st) == 0);
  return st.st_ino;
}

// Creates a directory (and its parents) below `root`; returns its inode number.
std::uint64_t make_dir(const slabtrace::testing::TempDir& root, const std::string& relative) {
  fs::create_directories(root.path() / relative.substr(1));
  return inode(root, relative);
}

}  // namespace

TEST_CASE("parse_container: Kubernetes with the systemd cgroup driver", "[unit][cgroups]") {
  const std::string burstable = "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + kPodUidUnderscored +
                                ".slice/";
  CHECK(describe(parse_container(burstable + "cri-containerd-" + kId + ".scope")) ==
        expect("containerd", kId, kPodUid, "burstable"));
  CHECK(describe(parse_container(burstable + "crio-" + kId + ".scope")) == expect("crio", kId, kPodUid, "burstable"));
  CHECK(describe(parse_container(burstable + "crio-conmon-" + kId + ".scope")) ==
        expect("crio", "-", kPodUid, "burstable"));
  CHECK(describe(parse_container(burstable + "docker-" + kId + ".scope")) ==
        expect("docker", kId, kPodUid, "burstable"));
  CHECK(describe(parse_container("/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" +
                                 kPodUidUnderscored + ".slice/cri-containerd-" + kId + ".scope")) ==
        expect("containerd", kId, kPodUid, "besteffort"));
  CHECK(describe(parse_container("/kubepods.slice/kubepods-pod" + kPodUidUnderscored + ".slice/cri-containerd-" + kId +
                                 ".scope")) == expect("containerd", kId, kPodUid, "guaranteed"));
  // A kind node: kubelet's cgroup root is /kubelet.slice.
  CHECK(describe(parse_container("/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/"
                                 "kubelet-kubepods-besteffort-pod" +
                                 kPodUidUnderscored + ".slice/cri-containerd-" + kId + ".scope")) ==
        expect("containerd", kId, kPodUid, "besteffort"));
  // CRI-O on cgroup v2 moves the container's processes one level down.
  CHECK(describe(parse_container(burstable + "crio-" + kId + ".scope/container")) ==
        expect("crio", kId, kPodUid, "burstable"));
  // The pod's own cgroup: no container.
  CHECK(describe(parse_container(burstable)) == expect("", "-", kPodUid, "burstable"));
  // A static pod's UID is a hash without dashes.
  CHECK(describe(parse_container("/kubepods.slice/kubepods-burstable.slice/"
                                 "kubepods-burstable-pod3b3d7c1f2e9a4c5d8e7f6a5b4c3d2e1f.slice/crio-" +
                                 kId + ".scope")) ==
        expect("crio", kId, "3b3d7c1f2e9a4c5d8e7f6a5b4c3d2e1f", "burstable"));
}

TEST_CASE("parse_container: Kubernetes with the cgroupfs cgroup driver", "[unit][cgroups]") {
  CHECK(describe(parse_container("/kubepods/burstable/pod" + kPodUid + "/" + kId)) ==
        expect("", kId, kPodUid, "burstable"));
  CHECK(describe(parse_container("/kubepods/besteffort/pod" + kPodUid + "/" + kId)) ==
        expect("", kId, kPodUid, "besteffort"));
  CHECK(describe(parse_container("/kubepods/pod" + kPodUid + "/" + kId)) == expect("", kId, kPodUid, "guaranteed"));
  CHECK(describe(parse_container("/kubepods/burstable/pod" + kPodUid + "/crio-" + kId)) ==
        expect("crio", kId, kPodUid, "burstable"));
  CHECK(describe(parse_container("/kubepods/burstable/pod" + kPodUid)) == expect("", "-", kPodUid, "burstable"));
}

TEST_CASE("parse_container: the fixture pods", "[unit][cgroups]") {
  for (const char* fixture : {"/cgroups/k8s-pod-cgroup", "/cgroups/k8s-pod-cgroup-v1"}) {
    auto entries = slabtrace::procfs::read_proc_cgroup(std::string(SLABTRACE_FIXTURES) + fixture);
    // On v1 the pod is in the controllers' hierarchies; on v2 in the "0::" line.
    auto info = parse_container(entries.front().path);
    CHECK(info.container_id == kId);
    CHECK(info.pod_uid == kPodUid);
  }
}

TEST_CASE("parse_container: containers outside Kubernetes", "[unit][cgroups]") {
  CHECK(describe(parse_container("/system.slice/docker-" + kId + ".scope")) == expect("docker", kId, "-", ""));
  CHECK(describe(parse_container("/docker/" + kId)) == expect("docker", kId, "-", ""));
  CHECK(describe(parse_container("/machine.slice/libpod-" + kId + ".scope")) == expect("podman", kId, "-", ""));
  CHECK(describe(parse_container("/machine.slice/libpod-conmon-" + kId + ".scope")) == expect("podman", "-", "-", ""));
  // Rootless podman, with systemd inside the container.
  CHECK(describe(parse_container("/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-" + kId +
                                 ".scope/init.scope")) == expect("podman", kId, "-", ""));
  CHECK(describe(parse_container("/system.slice/containerd.service")) == expect("", "-", "-", ""));
}

TEST_CASE("parse_container: no container", "[unit][cgroups]") {
  for (const std::string& path : {
           std::string(""),
           std::string("/"),
           std::string("/user.slice/user-1000.slice/session-3.scope"),
           std::string("/system.slice/docker.service"),
           std::string("/system.slice/docker-" + kId.substr(1) + ".scope"),  // 63 digits
           std::string("/system.slice/docker-" + kId + "0.scope"),           // 65 digits
           std::string("/system.slice/docker-954B15F0" + kId.substr(8) + ".scope"),
           std::string("/kubepods/burstable/podnot-a-uid"),
           std::string("/pod" + kPodUid),  // a pod-like name outside kubepods
           std::string("//docker-//" + kId.substr(0, 12)),
       }) {
    CAPTURE(path);
    CHECK(describe(parse_container(path)) == expect("", "-", "-", ""));
  }
}

TEST_CASE("CgroupResolver maps directory inodes to paths below the mount", "[unit][cgroups]") {
  slabtrace::testing::TempDir tree("slabtrace-cgroups");
  auto root_id = inode(tree, "/");
  auto pod_id = make_dir(tree, "/kubepods.slice/kubepods-pod1.slice");
  auto container_id = make_dir(tree, "/kubepods.slice/kubepods-pod1.slice/cri-containerd-1.scope");
  auto system_id = make_dir(tree, "/system.slice");
  std::ofstream(tree.path() / "system.slice" / "cgroup.procs") << "1\n";  // control files are not cgroups
  fs::create_directory_symlink(tree.path() / "kubepods.slice", tree.path() / "system.slice" / "loop");

  CgroupResolver resolver(tree.path().string());
  CHECK(resolver.mount_point() == tree.path().string());
  CHECK(resolver.path_of(root_id) == "/");
  CHECK(resolver.path_of(pod_id) == "/kubepods.slice/kubepods-pod1.slice");
  CHECK(resolver.path_of(container_id) == "/kubepods.slice/kubepods-pod1.slice/cri-containerd-1.scope");
  CHECK(resolver.path_of(system_id) == "/system.slice");
  CHECK_FALSE(resolver.path_of(inode(tree, "/system.slice/cgroup.procs")));
  CHECK_FALSE(resolver.path_of(inode(tree, "/system.slice/loop")));

  SECTION("a vanished cgroup keeps its path") {
    fs::remove(tree.path() / "kubepods.slice/kubepods-pod1.slice/cri-containerd-1.scope");
    resolver.refresh();
    CHECK(resolver.path_of(container_id) == "/kubepods.slice/kubepods-pod1.slice/cri-containerd-1.scope");
  }

  SECTION("a new cgroup is found by an explicit refresh") {
    auto new_id = make_dir(tree, "/system.slice/new.service");
    CHECK_FALSE(resolver.path_of(new_id));  // walked less than a second ago
    resolver.refresh();
    CHECK(resolver.path_of(new_id) == "/system.slice/new.service");
  }

  SECTION("a miss re-walks the tree once a second has passed") {
    auto new_id = make_dir(tree, "/system.slice/later.service");
    CHECK_FALSE(resolver.path_of(new_id));
    std::this_thread::sleep_for(std::chrono::milliseconds(1100));
    CHECK(resolver.path_of(new_id) == "/system.slice/later.service");
  }
}

TEST_CASE("CgroupResolver on a missing mount finds nothing and does not throw", "[unit][cgroups]") {
  CgroupResolver resolver("/nonexistent/slabtrace/cgroup");
  CHECK_FALSE(resolver.path_of(1));
  CHECK_NOTHROW(resolver.refresh());
}

TEST_CASE("CgroupResolver survives cgroups vanishing during the walk", "[unit][cgroups]") {
  slabtrace::testing::TempDir tree("slabtrace-cgroups");
  for (int i = 0; i < 50; ++i) make_dir(tree, "/churn/c" + std::to_string(i) + "/a/b");
  std::atomic<bool> done{false};
  std::thread churn([&] {
    for (int round = 0; !done; ++round) {
      std::error_code ignored;
      auto dir = tree.path() / "churn" / ("c" + std::to_string(round % 50));
      fs::remove_all(dir, ignored);
      fs::create_directories(dir / "a" / "b", ignored);
    }
  });
  CgroupResolver resolver(tree.path().string());
  for (int i = 0; i < 50; ++i) CHECK_NOTHROW(resolver.refresh());
  done = true;
  churn.join();
  CHECK(resolver.path_of(inode(tree, "/churn")) == "/churn");
}

TEST_CASE("cgroup_id_of is the directory's inode number", "[unit][cgroups]") {
  slabtrace::testing::TempDir tree("slabtrace-cgroups");
  auto id = make_dir(tree, "/a");
  CHECK(cgroup_id_of((tree.path() / "a").string()) == id);
  std::ofstream(tree.path() / "file") << "x";
  CHECK_FALSE(cgroup_id_of((tree.path() / "file").string()));
  CHECK_FALSE(cgroup_id_of((tree.path() / "missing").string()));
}

TEST_CASE("CgroupResolver on the cgroup2 mount of this machine if present", "[unit][cgroups]") {
  auto mount = slabtrace::procfs::find_cgroup2_mount(slabtrace::procfs::read_mountinfo());
  if (!mount) {
    WARN("no cgroup2 mount on this machine");
    return;
  }
  CgroupResolver resolver(*mount);
  auto root_id = cgroup_id_of(*mount);
  REQUIRE(root_id);
  CHECK(resolver.path_of(*root_id) == "/");
  // Whether a cgroup still exists, from its file handle (needs
  // CAP_DAC_READ_SEARCH: unknown without it, never a wrong answer).
  if (auto alive = resolver.exists(*root_id)) {
    CHECK(*alive);
    CHECK(resolver.exists(*root_id + (1ull << 40)) == false);  // an id no cgroup has
  } else {
    WARN("cgroup file handles unusable here (not root?)");
  }
}
