#pragma once
// Move-only owners of a file descriptor and of an open directory stream: the
// one pair every reader of /proc and every netlink user shares.
#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <utility>

namespace slabtrace {

class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) {
      reset();
      fd_ = std::exchange(other.fd_, -1);
    }
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { reset(); }

  int get() const { return fd_; }
  explicit operator bool() const { return fd_ >= 0; }
  int release() { return std::exchange(fd_, -1); }
  void reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
};

class UniqueDir {
 public:
  UniqueDir() = default;
  explicit UniqueDir(DIR* dir) : dir_(dir) {}
  // Opens `name` relative to `dir_fd` (so /proc/PID is resolved once, and a
  // PID reused by a new process half-way through is not mixed in).
  static UniqueDir open_at(int dir_fd, const char* name) {
    int fd = ::openat(dir_fd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return {};
    DIR* dir = ::fdopendir(fd);
    if (!dir) ::close(fd);
    return UniqueDir(dir);
  }
  static UniqueDir open(const char* path) { return UniqueDir(::opendir(path)); }
  UniqueDir(UniqueDir&& other) noexcept : dir_(std::exchange(other.dir_, nullptr)) {}
  UniqueDir& operator=(UniqueDir&& other) noexcept {
    if (this != &other) {
      if (dir_) ::closedir(dir_);
      dir_ = std::exchange(other.dir_, nullptr);
    }
    return *this;
  }
  UniqueDir(const UniqueDir&) = delete;
  UniqueDir& operator=(const UniqueDir&) = delete;
  ~UniqueDir() {
    if (dir_) ::closedir(dir_);
  }

  DIR* get() const { return dir_; }
  int fd() const { return ::dirfd(dir_); }
  explicit operator bool() const { return dir_ != nullptr; }
  dirent* next() const { return ::readdir(dir_); }

 private:
  DIR* dir_ = nullptr;
};

}  // namespace slabtrace
