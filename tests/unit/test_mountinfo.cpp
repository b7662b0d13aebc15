#include <catch2/catch.hpp>

#include <sstream>

#include "slabtrace/procfs.hpp"

using namespace slabtrace;
using namespace slabtrace::procfs;

namespace {

std::vector<MountEntry> parse_text(const std::string& text) {
  std::istringstream in(text);
  return parse_mountinfo(in);
}

MountEntry mount(std::string mount_point, std::string fs_type, std::string root = "/") {
  MountEntry entry;
  entry.mount_point = std::move(mount_point);
  entry.fs_type = std::move(fs_type);
  entry.root = std::move(root);
  return entry;
}

}  // namespace

TEST_CASE("mountinfo of a cgroup v1/v2 hybrid host (this build machine)", "[unit][mountinfo]") {
  auto mounts = read_mountinfo(SLABTRACE_FIXTURES "/procfs/mountinfo");
  REQUIRE(mounts.size() == 21);
  CHECK(mounts[0].mount_id == 22);
  CHECK(mounts[0].parent_id == 27);
  CHECK(mounts[0].root == "/");
  CHECK(mounts[0].mount_point == "/proc");
  CHECK(mounts[0].fs_type == "proc");
  CHECK(mounts[0].source == "proc");
  CHECK(mounts[0].super_options == "rw");

  const auto& root_fs = mounts[5];
  CHECK(root_fs.mount_id == 27);
  CHECK(root_fs.parent_id == 1);
  CHECK(root_fs.mount_point == "/");
  CHECK(root_fs.fs_type == "ext4");
  CHECK(root_fs.source == "/dev/vda");
  CHECK(root_fs.super_options == "rw,discard,resv_strict,resuid=65534,resgid=65534");

  CHECK(find_cgroup2_mount(mounts) == "/sys/fs/cgroup/unified");
  CHECK(find_mount(mounts, "tracefs") == "/sys/kernel/tracing");
  CHECK(find_mount(mounts, "cgroup") == "/sys/fs/cgroup/cpu");  // the first of several
  CHECK_FALSE(find_mount(mounts, "bpf"));
}

TEST_CASE("mountinfo of a Kubernetes node with cgroup v2", "[unit][mountinfo]") {
  auto mounts = read_mountinfo(SLABTRACE_FIXTURES "/cgroups/k8s-node-mountinfo");
  REQUIRE(mounts.size() == 27);
  CHECK(find_cgroup2_mount(mounts) == "/sys/fs/cgroup");
  CHECK(find_mount(mounts, "bpf") == "/sys/fs/bpf");
  CHECK(find_mount(mounts, "debugfs") == "/sys/kernel/debug");

  const auto& ssd = mounts[21];
  CHECK(ssd.mount_point == "/mnt/local ssd");  // \040 in the file
  CHECK(ssd.source == "/dev/nvme1n1");

  const auto& netns = mounts.back();
  CHECK(netns.root == "net:[4026532713]");
  CHECK(netns.fs_type == "nsfs");
  CHECK(netns.mount_point == "/run/netns/cni-9e38ddb7-5fda-485f-bf8d-3cb6130460d7");
}

TEST_CASE("mountinfo decodes octal escapes and keeps empty fields", "[unit][mountinfo]") {
  auto mounts = parse_text(
      "61 22 0:40 /a\\134b /mnt/with\\040space\\011tab\\012newline rw shared:30 master:2 - tmpfs  rw\n"
      "62 22 0:41 / /mnt/odd\\04 rw - tmpfs none\\x rw\n");
  REQUIRE(mounts.size() == 2);
  CHECK(mounts[0].root == "/a\\b");
  CHECK(mounts[0].mount_point == "/mnt/with space\ttab\nnewline");
  CHECK(mounts[0].fs_type == "tmpfs");
  CHECK(mounts[0].source == "");  // "mount -t tmpfs '' /mnt" leaves two spaces
  CHECK(mounts[0].super_options == "rw");
  // Not a complete escape: left as it is.
  CHECK(mounts[1].mount_point == "/mnt/odd\\04");
  CHECK(mounts[1].source == "none\\x");
}

TEST_CASE("find_cgroup2_mount prefers the whole hierarchy at the usual place", "[unit][mountinfo]") {
  CHECK_FALSE(find_cgroup2_mount({}));
  CHECK_FALSE(find_cgroup2_mount({mount("/sys/fs/cgroup", "tmpfs"), mount("/sys/fs/cgroup/cpu", "cgroup")}));
  CHECK(find_cgroup2_mount({mount("/run/other", "cgroup2"), mount("/sys/fs/cgroup/unified", "cgroup2"),
                            mount("/sys/fs/cgroup", "cgroup2")}) == "/sys/fs/cgroup");
  CHECK(find_cgroup2_mount({mount("/run/b", "cgroup2"), mount("/run/a", "cgroup2")}) == "/run/b");
  // A container without a cgroup namespace sees only its own sub-tree at /sys/fs/cgroup.
  CHECK(find_cgroup2_mount({mount("/sys/fs/cgroup", "cgroup2", "/kubepods.slice/pod.slice"),
                            mount("/host/sys/fs/cgroup", "cgroup2")}) == "/host/sys/fs/cgroup");
  CHECK(find_cgroup2_mount({mount("/sys/fs/cgroup", "cgroup2", "/kubepods.slice/pod.slice")}) == "/sys/fs/cgroup");
}

TEST_CASE("mountinfo rejects malformed lines with the line number", "[unit][mountinfo]") {
  CHECK(parse_text("").empty());
  CHECK_THROWS_WITH(parse_text("22 27 0:21 / /proc rw,relatime proc proc rw\n"),
                    "mountinfo line 1: expected ' - ' after the mount options");
  CHECK_THROWS_WITH(parse_text("22 27 0:21 / /proc\n"), "mountinfo line 1: expected ' - ' after the mount options");
  CHECK_THROWS_WITH(parse_text("22 27 0:21 / /proc rw - proc proc\n"),
                    "mountinfo line 1: expected filesystem type, source and super options after ' - '");
  CHECK_THROWS_WITH(parse_text("22 27 0:21 / /proc rw - proc proc rw\nx 27 0:21 / /proc rw - proc proc rw\n"),
                    "mountinfo line 2: mount id 'x' is not a number");
  CHECK_THROWS_WITH(parse_text("22 99999999999 0:21 / /proc rw - proc proc rw\n"),
                    "mountinfo line 1: parent id '99999999999' is out of range");
  CHECK_THROWS_WITH(read_mountinfo(SLABTRACE_FIXTURES "/procfs/kallsyms-modules"),
                    SLABTRACE_FIXTURES "/procfs/kallsyms-modules line 1: expected ' - ' after the mount options");
}

TEST_CASE("this process's cgroup2 mount is the one its mountinfo names", "[unit][mountinfo]") {
  std::string error;
  auto own = own_cgroup2_mount(&error);
  CHECK(error.empty());
  CHECK(own == find_cgroup2_mount(read_mountinfo()));
}
