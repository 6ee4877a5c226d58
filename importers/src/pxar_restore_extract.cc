// Restoring a pxar archive into a directory with the rules of PBS's extract_archive (the code
// behind `proxmox-backup-client restore`): match-list state per directory, lazily created
// directories, metadata in PBS's order, directory metadata applied when a directory is left.
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <tuple>

#include "pbskit/importers/pxar_restore.h"
#include "pxar_fs_internal.h"

namespace pbskit::importers {
namespace {

using pxar::Entry;
using pxar::EntryKind;
using pxar::Metadata;

constexpr uint32_t kUndefinedId = 0xffffffffu;

std::string ProcPath(int fd) { return "/proc/self/fd/" + std::to_string(fd); }

// Kernel POSIX ACL xattr value; entries must already be in the kernel's order.
std::string AclXattr(const std::vector<std::tuple<uint16_t, uint16_t, uint32_t>>& entries) {
  std::string v;
  auto put = [&v](uint64_t x, int bytes) {
    for (int i = 0; i < bytes; ++i) v.push_back(static_cast<char>((x >> (8 * i)) & 0xff));
  };
  put(2, 4);  // POSIX_ACL_XATTR_VERSION
  for (const auto& [tag, perm, id] : entries) {
    put(tag, 2);
    put(perm, 2);
    put(id, 4);
  }
  return v;
}

// Orders ACL entries the way the kernel requires: by tag, named entries by id.
void SortAcl(std::vector<std::tuple<uint16_t, uint16_t, uint32_t>>* e) {
  std::stable_sort(e->begin(), e->end(), [](const auto& a, const auto& b) {
    return std::tie(std::get<0>(a), std::get<2>(a)) < std::tie(std::get<0>(b), std::get<2>(b));
  });
}

bool Unsupported(int err) {
  return err == ENOTTY || err == ENOSYS || err == EBADF || err == EOPNOTSUPP || err == EINVAL;
}

class Restorer {
 public:
  Restorer(pxar::Decoder* dec, const PxarRestoreOptions& opts, PxarRestoreStats* stats)
      : dec_(dec), opts_(opts), stats_(stats) {}
  ~Restorer() {
    for (Frame& f : stack_)
      if (f.fd >= 0) ::close(f.fd);
  }
  Status Run(const std::string& target);

 private:
  struct Frame {
    std::string name;  // "" for the root
    std::string path;  // archive path, "/" for the root
    Metadata meta;
    int fd = -1;
  };

  void Warn(const std::string& m) {
    stats_->warnings.push_back(m);
    if (opts_.warn) opts_.warn(m);
  }
  static Status Fs(int err, const std::string& what, const std::string& path) {
    return Status::FromErrno(err, what + " " + path);
  }
  Status Begin(const std::string& target);
  Status CreateDir(size_t i);
  Result<int> ParentFd();
  Status LeaveDirectory();
  Status RestoreEntry(const Entry& e, const std::string& name);
  Status RestoreFile(int parent, const std::string& name, const Entry& e);
  Status RestoreHardlink(int parent, const std::string& name, const Entry& e);
  Status ApplyMetadata(int fd, bool opath, int parent, const std::string& name, const Metadata& m,
                       const std::string& path);
  Status ApplyAcls(int fd, bool opath, const Metadata& m, const std::string& path);
  Result<int> ResolveDir(const std::string& rel_dir, const std::string& link);

  pxar::Decoder* dec_;
  const PxarRestoreOptions& opts_;
  PxarRestoreStats* stats_;
  std::vector<Frame> stack_;
  size_t created_ = 0;  // stack_[0, created_) have an open fd
  bool current_match_ = true;
  std::vector<bool> match_stack_;
  std::vector<uint8_t> buf_ = std::vector<uint8_t>(1 << 20);
};

Status Restorer::CreateDir(size_t i) {
  Frame& f = stack_[i];
  int parent = stack_[i - 1].fd;
  if (::mkdirat(parent, f.name.c_str(), static_cast<mode_t>(f.meta.stat.mode & 07777)) != 0 &&
      !(errno == EEXIST && opts_.allow_existing_dirs))
    return Fs(errno, "failed to create directory", f.path);
  f.fd = ::openat(parent, f.name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (f.fd < 0) return Fs(errno, "failed to open directory", f.path);
  ++stats_->entries;
  return Status::OK();
}

Result<int> Restorer::ParentFd() {
  while (created_ < stack_.size()) {
    PBSKIT_RETURN_IF_ERROR(CreateDir(created_));
    ++created_;
  }
  return stack_.back().fd;
}

Status Restorer::LeaveDirectory() {
  if (stack_.empty()) return Status::Corruption("broken pxar archive (directory stack underrun)");
  Frame f = std::move(stack_.back());
  stack_.pop_back();
  created_ = std::min(created_, stack_.size());
  if (f.fd < 0) return Status::OK();
  Status st = ApplyMetadata(f.fd, false, -1, f.name, f.meta, f.path);
  ::close(f.fd);
  if (!st.ok()) return st.WithContext("failed to apply directory metadata");
  return Status::OK();
}

Status Restorer::ApplyAcls(int fd, bool opath, const Metadata& m, const std::string& path) {
  const pxar::Acl& a = m.acl;
  const uint64_t mode = m.stat.mode;
  using E = std::vector<std::tuple<uint16_t, uint16_t, uint32_t>>;
  auto perm = [](uint64_t p) { return static_cast<uint16_t>(p & 7); };
  E access;
  access.emplace_back(kAclTagUserObj, perm(mode >> 6), kUndefinedId);
  access.emplace_back(kAclTagOther, perm(mode), kUndefinedId);
  if (a.group_obj) {
    access.emplace_back(kAclTagMask, perm(mode >> 3), kUndefinedId);
    access.emplace_back(kAclTagGroupObj, perm(*a.group_obj), kUndefinedId);
  } else {
    access.emplace_back(kAclTagGroupObj, perm(mode >> 3), kUndefinedId);
    if (!a.users.empty() || !a.groups.empty()) {
      Warn("Warning: \"" + path + "\": Missing GROUP_OBJ entry in ACL, resetting to value of MASK");
      access.emplace_back(kAclTagMask, perm(mode >> 3), kUndefinedId);
    }
  }
  for (const auto& u : a.users)
    access.emplace_back(kAclTagUser, perm(u.permissions), static_cast<uint32_t>(u.id));
  for (const auto& g : a.groups)
    access.emplace_back(kAclTagGroup, perm(g.permissions), static_cast<uint32_t>(g.id));
  SortAcl(&access);

  auto set = [&](const char* key, const E& e) -> Status {
    std::string v = AclXattr(e);
    int r = opath ? ::setxattr(ProcPath(fd).c_str(), key, v.data(), v.size(), 0)
                  : ::fsetxattr(fd, key, v.data(), v.size(), 0);
    if (r == 0) return Status::OK();
    if (errno == EOPNOTSUPP) {
      Warn("failed to apply acls to " + path + ": not supported by the target file system");
      return Status::OK();
    }
    return Fs(errno, "failed to apply acls to", path);
  };
  PBSKIT_RETURN_IF_ERROR(set("system.posix_acl_access", access));
  if (a.default_acl) {
    const pxar::AclDefault& d = *a.default_acl;
    E def;
    def.emplace_back(kAclTagUserObj, perm(d.user_obj_permissions), kUndefinedId);
    def.emplace_back(kAclTagGroupObj, perm(d.group_obj_permissions), kUndefinedId);
    def.emplace_back(kAclTagOther, perm(d.other_permissions), kUndefinedId);
    if (d.mask_permissions != pxar::kAclNoMask)
      def.emplace_back(kAclTagMask, perm(d.mask_permissions), kUndefinedId);
    for (const auto& u : a.default_users)
      def.emplace_back(kAclTagUser, perm(u.permissions), static_cast<uint32_t>(u.id));
    for (const auto& g : a.default_groups)
      def.emplace_back(kAclTagGroup, perm(g.permissions), static_cast<uint32_t>(g.id));
    SortAcl(&def);
    PBSKIT_RETURN_IF_ERROR(set("system.posix_acl_default", def));
  }
  return Status::OK();
}

Status Restorer::ApplyMetadata(int fd, bool opath, int parent, const std::string& name,
                               const Metadata& m, const std::string& path) {
  const pxar::Stat& st = m.stat;
  const PxarFeatures& f = opts_.features;
  if (opts_.owner && ::fchownat(fd, "", st.uid, st.gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) != 0 &&
      errno != EOPNOTSUPP)
    return Fs(errno, "failed to set ownership of", path);
  const std::string proc = ProcPath(fd);
  bool skip_xattrs = st.is_symlink();
  auto set_xattr = [&](const std::string& key, const std::string& value,
                       const char* what) -> Status {
    if (skip_xattrs) return Status::OK();
    int r = opath ? ::setxattr(proc.c_str(), key.c_str(), value.data(), value.size(), 0)
                  : ::fsetxattr(fd, key.c_str(), value.data(), value.size(), 0);
    if (r == 0) return Status::OK();
    if (errno == EOPNOTSUPP) {
      skip_xattrs = true;  // the file system has no xattrs at all: skip the rest, like PBS
      Warn(std::string(what) + " of " + path + " skipped: not supported by the target file system");
      return Status::OK();
    }
    return Fs(errno, std::string("failed to apply ") + what + " to", path);
  };
  if (f.xattrs)
    for (const pxar::XAttr& x : m.xattrs)
      PBSKIT_RETURN_IF_ERROR(set_xattr(x.name, x.value, "extended attributes"));
  if (f.fcaps && m.fcaps)
    PBSKIT_RETURN_IF_ERROR(set_xattr("security.capability", *m.fcaps, "file capabilities"));
  if (f.acls && !m.acl.empty() && !st.is_symlink())
    PBSKIT_RETURN_IF_ERROR(ApplyAcls(fd, opath, m, path));
  if (f.quota_projid && m.quota_project_id) {
    struct fsxattr fsx;
    std::memset(&fsx, 0, sizeof fsx);
    if (::ioctl(fd, FS_IOC_FSGETXATTR, &fsx) != 0 ||
        (fsx.fsx_projid = static_cast<uint32_t>(*m.quota_project_id),
         ::ioctl(fd, FS_IOC_FSSETXATTR, &fsx) != 0)) {
      if (!Unsupported(errno)) return Fs(errno, "failed to set quota project id of", path);
      Warn("quota project id of " + path + " not restored: " + std::strerror(errno));
    }
  }
  if (opts_.permissions && !st.is_symlink()) {
    int r = opath ? ::chmod(proc.c_str(), static_cast<mode_t>(st.mode & 07777))
                  : ::fchmod(fd, static_cast<mode_t>(st.mode & 07777));
    if (r != 0 && errno != EOPNOTSUPP) return Fs(errno, "failed to change file mode of", path);
  }
  struct timespec times[2];
  times[0].tv_sec = 0;
  times[0].tv_nsec = UTIME_OMIT;
  times[1].tv_sec = st.mtime_secs;
  times[1].tv_nsec = st.mtime_nanos;
  int r =
      opath ? ::utimensat(parent, name.c_str(), times, AT_SYMLINK_NOFOLLOW) : ::futimens(fd, times);
  if (r != 0 && errno != EOPNOTSUPP) return Fs(errno, "failed to restore mtime attribute on", path);
  if (f.chattr && !opath && st.flags != 0) {
    long mask = 0, want = PxarFlagsToChattr(st.flags);
    for (const auto& [flag, bit] : kChattrMap) mask |= bit;
    long attr = 0;
    if (::ioctl(fd, FS_IOC_GETFLAGS, &attr) == 0) {
      long next = (want & mask) | (attr & ~mask);
      if (next != attr && ::ioctl(fd, FS_IOC_SETFLAGS, &next) != 0 && !Unsupported(errno))
        return Fs(errno, "failed to set file attributes of", path);
    } else if (!Unsupported(errno)) {
      return Fs(errno, "failed to read file attributes of", path);
    }
  }
  return Status::OK();
}

Status Restorer::RestoreFile(int parent, const std::string& name, const Entry& e) {
  int flags = O_CREAT | O_WRONLY | O_CLOEXEC | O_NOFOLLOW;
  flags |= opts_.overwrite_files ? O_TRUNC : O_EXCL;
  int fd = ::openat(parent, name.c_str(), flags, 0600);
  if (fd < 0) return Fs(errno, "failed to create file", e.path);
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  if (opts_.features.chattr && (e.metadata.stat.flags & pxar::kFlagNocow)) {
    // NOCOW only takes effect on an empty file, so it goes first (PBS's initial flags).
    long attr = 0;
    if (::ioctl(fd, FS_IOC_GETFLAGS, &attr) == 0) {
      attr |= 0x00800000;  // FS_NOCOW_FL
      ::ioctl(fd, FS_IOC_SETFLAGS, &attr);
    }
  }
  uint64_t total = 0;
  for (;;) {
    PBSKIT_ASSIGN_OR_RETURN(size_t n, dec_->ReadContent(buf_));
    if (n == 0) break;
    size_t done = 0;
    while (done < n) {
      ssize_t w = ::write(fd, buf_.data() + done, n - done);
      if (w < 0) {
        if (errno == EINTR) continue;
        return Fs(errno, "failed to write", e.path);
      }
      done += static_cast<size_t>(w);
    }
    total += n;
  }
  if (total != e.file_size)
    return Status::Corruption(e.path + ": extracted " + std::to_string(total) +
                              " bytes of a file of " + std::to_string(e.file_size) + " bytes");
  ++stats_->files;
  stats_->file_bytes += total;
  return ApplyMetadata(fd, false, parent, name, e.metadata, e.path);
}

// Opens `rel_dir` below the target without following symlinks.
Result<int> Restorer::ResolveDir(const std::string& rel_dir, const std::string& link) {
  int fd = ::dup(stack_[0].fd);
  if (fd < 0) return Status::FromErrno(errno, "dup");
  size_t pos = 0;
  while (pos < rel_dir.size()) {
    size_t end = std::min(rel_dir.find('/', pos), rel_dir.size());
    std::string comp = rel_dir.substr(pos, end - pos);
    pos = end + 1;
    if (comp.empty() || comp == "." || comp == "..") {
      ::close(fd);
      return Status::Corruption("hardlink target '" + link + "' leaves the archive");
    }
    int next = ::openat(fd, comp.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    int err = errno;
    ::close(fd);
    if (next < 0) return Status::FromErrno(err, "failed to open directory /" + rel_dir);
    fd = next;
  }
  return fd;
}

Status Restorer::RestoreHardlink(int parent, const std::string& name, const Entry& e) {
  const std::string& link = e.link_target;
  if (link.empty() || link[0] == '/')
    return Status::Corruption(e.path + ": hardlink target '" + link + "' is not a relative path");
  size_t slash = link.rfind('/');
  std::string dir = slash == std::string::npos ? "" : link.substr(0, slash);
  std::string base = slash == std::string::npos ? link : link.substr(slash + 1);
  if (base.empty() || base == "." || base == "..")
    return Status::Corruption(e.path + ": hardlink target '" + link + "' is not a file name");
  auto tfd = ResolveDir(dir, link);
  if (!tfd.ok()) {
    if (tfd.status().IsNotFound() && opts_.match_list && !opts_.match_list->empty()) {
      Warn("skipping hardlink " + e.path + ": target /" + link + " was not restored");
      return Status::OK();
    }
    return tfd.status().WithContext(e.path);
  }
  int r = ::linkat(*tfd, base.c_str(), parent, name.c_str(), 0);
  if (r != 0 && errno == EEXIST && opts_.overwrite_hardlinks &&
      ::unlinkat(parent, name.c_str(), 0) == 0)
    r = ::linkat(*tfd, base.c_str(), parent, name.c_str(), 0);
  int err = errno;
  ::close(*tfd);
  if (r != 0 && err == ENOENT && opts_.match_list && !opts_.match_list->empty()) {
    Warn("skipping hardlink " + e.path + ": target /" + link + " was not restored");
    return Status::OK();
  }
  if (r != 0) return Fs(err, "failed to extract hardlink", e.path);
  return Status::OK();
}

Status Restorer::RestoreEntry(const Entry& e, const std::string& name) {
  const pxar::Stat& st = e.metadata.stat;
  const PxarFeatures& f = opts_.features;
  if ((e.kind == EntryKind::kDevice && !f.device_nodes) ||
      (e.kind == EntryKind::kFifo && !f.fifos) || (e.kind == EntryKind::kSocket && !f.sockets))
    return Status::OK();
  PBSKIT_ASSIGN_OR_RETURN(int parent, ParentFd());
  ++stats_->entries;
  if (opts_.on_entry) opts_.on_entry(e.path);
  switch (e.kind) {
    case EntryKind::kFile:
      return RestoreFile(parent, name, e);
    case EntryKind::kHardlink:
      return RestoreHardlink(parent, name, e);
    case EntryKind::kSymlink: {
      int r = ::symlinkat(e.link_target.c_str(), parent, name.c_str());
      if (r != 0 && errno == EEXIST && opts_.overwrite_symlinks &&
          ::unlinkat(parent, name.c_str(), 0) == 0)
        r = ::symlinkat(e.link_target.c_str(), parent, name.c_str());
      if (r != 0) return Fs(errno, "failed to extract symlink", e.path);
      break;
    }
    case EntryKind::kDevice:
    case EntryKind::kFifo:
    case EntryKind::kSocket: {
      dev_t dev = e.kind == EntryKind::kDevice ? makedev(e.device.major, e.device.minor) : 0;
      if (::mknodat(parent, name.c_str(), static_cast<mode_t>(st.mode), dev) != 0)
        return Fs(errno,
                  e.kind == EntryKind::kDevice ? "failed to create device node"
                  : e.kind == EntryKind::kFifo ? "failed to create named pipe"
                                               : "failed to create unix socket",
                  e.path);
      break;
    }
    default:
      return Status::OK();
  }
  int fd = ::openat(parent, name.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return Fs(errno, "failed to open", e.path);
  Status s = ApplyMetadata(fd, true, parent, name, e.metadata, e.path);
  ::close(fd);
  return s;
}

Status Restorer::Begin(const std::string& target) {
  std::error_code ec;
  std::filesystem::create_directories(target, ec);
  if (ec) return Status::IoError("error creating directory \"" + target + "\": " + ec.message());
  int fd = ::open(target.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Fs(errno, "unable to open target directory", target);
  stack_.push_back(Frame{"", "/", {}, fd});
  created_ = 1;
  return Status::OK();
}

Status Restorer::Run(const std::string& target) {
  const bool have_patterns = opts_.match_list && !opts_.match_list->empty();
  current_match_ = !have_patterns;
  Entry e;
  bool root_seen = false, finished = false;
  for (;;) {
    PBSKIT_ASSIGN_OR_RETURN(bool more, dec_->Next(&e));
    if (!more) break;
    if (finished) return Status::Corruption("pxar archive continues after its root directory");
    if (e.kind == EntryKind::kVersion) continue;
    if (e.kind == EntryKind::kPrelude) {
      if (!opts_.prelude_target.empty()) {
        int fd = ::open(opts_.prelude_target.c_str(),
                        O_WRONLY | O_CREAT | O_CLOEXEC | (opts_.overwrite_files ? O_TRUNC : O_EXCL),
                        0644);
        if (fd < 0) return Fs(errno, "error creating prelude file", opts_.prelude_target);
        ssize_t w = ::write(fd, e.prelude.data(), e.prelude.size());
        int err = errno;
        ::close(fd);
        if (w != static_cast<ssize_t>(e.prelude.size()))
          return Fs(w < 0 ? err : EIO, "error writing prelude file", opts_.prelude_target);
      }
      continue;
    }
    if (!root_seen) {
      if (e.kind != EntryKind::kDirectory)
        return Status::Corruption("pxar archive does not start with a directory entry!");
      root_seen = true;
      PBSKIT_RETURN_IF_ERROR(Begin(target));
      stack_[0].meta = e.metadata;
      continue;
    }
    if (e.kind == EntryKind::kDirectoryEnd) {
      PBSKIT_RETURN_IF_ERROR(LeaveDirectory());
      if (match_stack_.empty()) {
        current_match_ = true;
        finished = stack_.empty();
      } else {
        current_match_ = match_stack_.back();
        match_stack_.pop_back();
      }
      continue;
    }
    const std::string name = e.path.substr(e.path.rfind('/') + 1);
    std::optional<bool> m;
    if (have_patterns) m = opts_.match_list->Matches(e.path, e.metadata.stat.mode);
    const bool did_match = m.value_or(current_match_);
    if (e.kind == EntryKind::kDirectory) {
      const bool create = current_match_ && m != std::optional<bool>(false);
      stack_.push_back(Frame{name, e.path, e.metadata, -1});
      if (create) {
        PBSKIT_RETURN_IF_ERROR(ParentFd().status());
        if (opts_.on_entry) opts_.on_entry(e.path);
      }
      match_stack_.push_back(current_match_);
      current_match_ = did_match;
      continue;
    }
    if (did_match) PBSKIT_RETURN_IF_ERROR(RestoreEntry(e, name));
  }
  if (!root_seen) return Status::Corruption("pxar archive is empty");
  if (!stack_.empty())
    return Status::InvalidArgument(
        "unexpected eof while decoding pxar archive (directory ends not reported)");
  return Status::OK();
}

}  // namespace

Result<PxarRestoreStats> RestorePxar(pxar::Decoder* decoder, const std::string& target,
                                     const PxarRestoreOptions& options) {
  PxarRestoreStats stats;
  Restorer r(decoder, options, &stats);
  PBSKIT_RETURN_IF_ERROR(r.Run(target));
  return stats;
}

}  // namespace pbskit::importers
