// The host the checker looks at: the live system ("/") or a host tree given with --root, a copy
// of a host's files at their real paths (etc/apt/..., var/lib/dpkg/status,
// proc/sys/kernel/osrelease, proc/mounts, sys/firmware/efi/, run/proxmox-backup/...).
//
// Every path passed in is a host-absolute path ("/etc/apt/sources.list"); the Host maps it
// below its root. Messages always name the host-absolute path, so output does not depend on
// where a tree lives. Commands (systemctl, dkms, proxmox-boot-tool, debconf-show) run only on
// the live system; for a tree, checks read the files those commands would consult.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "pbskit/formats/status.h"

namespace pbskit::checker {

struct MountEntry {
  std::string device;
  std::string mount_point;  // octal escapes (\040) decoded
  std::string fstype;
  std::vector<std::string> options;
  bool HasOption(std::string_view o) const;
};

struct CommandOutput {
  int exit_status = 0;
  std::string out;  // stdout
};

struct FsSpace {
  uint64_t total = 0;
  uint64_t available = 0;  // for unprivileged users, like df
};

class Host {
 public:
  // `root` empty or "/" means the live system. The root is not checked here.
  explicit Host(std::string root);

  bool live() const { return live_; }
  // The root as given ("/" for live).
  const std::string& root() const { return root_; }
  // Local filesystem path of host path `abs` (abs must start with '/').
  std::string Local(std::string_view abs) const;

  // Whole file. NotFound when missing, IoError on read errors ("<abs>: <strerror>").
  Result<std::string> ReadFile(std::string_view abs) const;
  bool Exists(std::string_view abs) const;   // lstat succeeds
  bool IsFile(std::string_view abs) const;   // regular file (symlinks followed)
  bool IsDir(std::string_view abs) const;    // directory (symlinks followed)
  // Entry names (no "." / ".."), sorted so output is reproducible. NotFound/IoError.
  Result<std::vector<std::string>> ListDir(std::string_view abs) const;
  // mtime in nanoseconds since the epoch, or nullopt when stat fails.
  std::optional<int64_t> MtimeNs(std::string_view abs) const;

  // Parsed /proc/mounts of the host. NotFound when the tree has none.
  Result<std::vector<MountEntry>> Mounts() const;
  // The mount holding host path `abs` (longest mount-point prefix), or nullopt.
  static std::optional<MountEntry> MountFor(const std::vector<MountEntry>& mounts,
                                            std::string_view abs);

  // Live system only: runs argv[0] (PATH search) with stdin from /dev/null and captures
  // stdout. NotFound when the program cannot be executed; Unsupported for a host tree.
  Result<CommandOutput> Run(const std::vector<std::string>& argv) const;

  // statvfs of host path `abs`. Unsupported for a host tree (its free space is not the
  // host's), IoError otherwise.
  Result<FsSpace> Space(std::string_view abs) const;

 private:
  std::string root_;
  bool live_;
};

// Parses /proc/mounts text.
std::vector<MountEntry> ParseMounts(std::string_view text);

}  // namespace pbskit::checker
