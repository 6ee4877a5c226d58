// Extracting a pxar archive into a directory (what `pxar extract` does).
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cstring>
#include <map>
#include <vector>

#include "pbskit/importers/pxar_fs.h"
#include "pxar_fs_internal.h"

namespace pbskit::importers {

using pxar::Entry;
using pxar::EntryKind;
using pxar::Metadata;

PxarExtractOptions::PxarExtractOptions() : restore_owner(geteuid() == 0) {}

namespace {

std::string ProcPath(int fd) { return "/proc/self/fd/" + std::to_string(fd); }

std::string BaseName(const std::string& path) { return path.substr(path.rfind('/') + 1); }

// POSIX ACL xattr value from the pxar ACL items and the entry's mode.
std::string AclBlob(const std::vector<std::tuple<uint16_t, uint16_t, uint32_t>>& entries) {
  std::string v;
  auto put16 = [&v](uint16_t x) {
    v.push_back(static_cast<char>(x & 0xff));
    v.push_back(static_cast<char>(x >> 8));
  };
  auto put32 = [&v](uint32_t x) {
    for (int i = 0; i < 4; ++i) v.push_back(static_cast<char>(x >> (8 * i)));
  };
  put32(2);
  for (const auto& [tag, perm, id] : entries) {
    put16(tag);
    put16(perm);
    put32(id);
  }
  return v;
}

constexpr uint32_t kUndefinedId = 0xffffffffu;

class Extractor {
 public:
  Extractor(pxar::Decoder* dec, const PxarExtractOptions& opts, PxarExtractStats* stats)
      : dec_(dec), opts_(opts), stats_(stats) {}
  ~Extractor() {
    for (Frame& f : stack_)
      if (f.fd >= 0 && f.fd != root_fd_) close(f.fd);
    if (root_fd_ >= 0) close(root_fd_);
  }

  Status Run(const std::string& target);

 private:
  struct Frame {
    std::string rel;  // path relative to the target, "" for the root
    int fd = -1;
    Metadata meta;
    bool selected = false;
  };

  void Warn(const std::string& m) {
    stats_->warnings.push_back(m);
    if (opts_.warn) opts_.warn(m);
  }
  bool Matches(const std::string& rel) const;
  Status EnsureDirs();
  Status Extract(const Entry& e);
  Status WriteFile(int parent, const std::string& name, const std::string& rel, const Entry& e);
  Status ApplyMetadata(int parent, const std::string& name, int fd, bool opath,
                       const Metadata& m, const std::string& rel);
  Status Fs(int err, const std::string& what, const std::string& rel) {
    Status st = Status::FromErrno(err, what + " " + (rel.empty() ? "." : rel));
    if (err == EACCES || err == EPERM) return Status::PermissionDenied(st.message());
    if (err == EEXIST) return Status::AlreadyExists(st.message());
    return st;
  }
  Result<int> ResolveDir(const std::string& rel_dir);

  pxar::Decoder* dec_;
  const PxarExtractOptions& opts_;
  PxarExtractStats* stats_;
  int root_fd_ = -1;
  std::vector<Frame> stack_;
  std::vector<uint8_t> buf_ = std::vector<uint8_t>(1 << 20);
};

bool Extractor::Matches(const std::string& rel) const {
  if (opts_.patterns.empty()) return true;
  for (const std::string& p : opts_.patterns) {
    const std::string& subject = (!p.empty() && p[0] == '/') ? "/" + rel : rel;
    if (fnmatch(p.c_str(), subject.c_str(), 0) == 0) return true;
  }
  return false;
}

Status Extractor::EnsureDirs() {
  for (size_t i = 1; i < stack_.size(); ++i) {
    Frame& f = stack_[i];
    if (f.fd >= 0) continue;
    int parent = stack_[i - 1].fd;
    std::string name = BaseName(f.rel);
    if (mkdirat(parent, name.c_str(), 0700) != 0 && errno != EEXIST)
      return Fs(errno, "failed to create directory", f.rel);
    int fd = openat(parent, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return Fs(errno, "failed to open directory", f.rel);
    f.fd = fd;
  }
  return Status::OK();
}

// Opens the directory `rel_dir` (relative to the target) without following symlinks.
Result<int> Extractor::ResolveDir(const std::string& rel_dir) {
  int fd = dup(root_fd_);
  if (fd < 0) return Status::FromErrno(errno, "dup");
  size_t pos = 0;
  while (pos < rel_dir.size()) {
    size_t end = rel_dir.find('/', pos);
    if (end == std::string::npos) end = rel_dir.size();
    std::string comp = rel_dir.substr(pos, end - pos);
    pos = end + 1;
    if (comp.empty() || comp == "." || comp == "..") {
      close(fd);
      return Status::Corruption("hardlink target '" + rel_dir + "' leaves the archive");
    }
    int next = openat(fd, comp.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    int err = errno;
    close(fd);
    if (next < 0) return Fs(err, "failed to open directory", rel_dir);
    fd = next;
  }
  return fd;
}

Status Extractor::ApplyMetadata(int parent, const std::string& name, int fd, bool opath,
                                const Metadata& m, const std::string& rel) {
  const pxar::Stat& st = m.stat;
  bool symlink = st.is_symlink();
  if (opts_.restore_owner &&
      fchownat(fd, "", st.uid, st.gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) != 0)
    return Fs(errno, "failed to set ownership of", rel);
  std::string proc = ProcPath(fd);
  auto set_xattr = [&](const std::string& key, const std::string& value) {
    int r = opath ? setxattr(proc.c_str(), key.c_str(), value.data(), value.size(), 0)
                  : fsetxattr(fd, key.c_str(), value.data(), value.size(), 0);
    if (r != 0) Warn("failed to apply " + key + " to " + rel + ": " + std::strerror(errno));
  };
  if (!symlink) {
    if (opts_.features.xattrs)
      for (const pxar::XAttr& x : m.xattrs) set_xattr(x.name, x.value);
    if (opts_.features.fcaps && m.fcaps) set_xattr("security.capability", *m.fcaps);
    if (opts_.features.acls) {
      const pxar::Acl& a = m.acl;
      if (!a.users.empty() || !a.groups.empty() || a.group_obj) {
        std::vector<std::tuple<uint16_t, uint16_t, uint32_t>> e;
        e.emplace_back(kAclTagUserObj, (st.mode >> 6) & 7, kUndefinedId);
        for (const auto& u : a.users)
          e.emplace_back(kAclTagUser, u.permissions & 7, static_cast<uint32_t>(u.id));
        uint16_t group_bits = (st.mode >> 3) & 7;
        e.emplace_back(kAclTagGroupObj, a.group_obj ? (*a.group_obj & 7) : group_bits,
                       kUndefinedId);
        for (const auto& g : a.groups)
          e.emplace_back(kAclTagGroup, g.permissions & 7, static_cast<uint32_t>(g.id));
        e.emplace_back(kAclTagMask, group_bits, kUndefinedId);
        e.emplace_back(kAclTagOther, st.mode & 7, kUndefinedId);
        set_xattr("system.posix_acl_access", AclBlob(e));
      }
      if (st.is_dir() && (a.default_acl || !a.default_users.empty() ||
                          !a.default_groups.empty())) {
        std::vector<std::tuple<uint16_t, uint16_t, uint32_t>> e;
        pxar::AclDefault d = a.default_acl.value_or(pxar::AclDefault{});
        auto obj = [&e](uint16_t tag, uint64_t perm) {
          if (perm != pxar::kAclNoMask) e.emplace_back(tag, perm & 7, kUndefinedId);
        };
        obj(kAclTagUserObj, d.user_obj_permissions);
        for (const auto& u : a.default_users)
          e.emplace_back(kAclTagUser, u.permissions & 7, static_cast<uint32_t>(u.id));
        obj(kAclTagGroupObj, d.group_obj_permissions);
        for (const auto& g : a.default_groups)
          e.emplace_back(kAclTagGroup, g.permissions & 7, static_cast<uint32_t>(g.id));
        obj(kAclTagMask, d.mask_permissions);
        obj(kAclTagOther, d.other_permissions);
        set_xattr("system.posix_acl_default", AclBlob(e));
      }
    }
    int r = opath ? chmod(proc.c_str(), st.mode & 07777) : fchmod(fd, st.mode & 07777);
    if (r != 0) return Fs(errno, "failed to change file mode of", rel);
    if (opts_.features.quota_projid && m.quota_project_id && !opath) {
      struct fsxattr fsx;
      std::memset(&fsx, 0, sizeof(fsx));
      if (ioctl(fd, FS_IOC_FSGETXATTR, &fsx) == 0) {
        fsx.fsx_projid = static_cast<uint32_t>(*m.quota_project_id);
        if (ioctl(fd, FS_IOC_FSSETXATTR, &fsx) != 0)
          Warn("failed to set quota project id of " + rel + ": " + std::strerror(errno));
      }
    }
  }
  struct timespec times[2];
  times[0].tv_sec = times[1].tv_sec = st.mtime_secs;
  times[0].tv_nsec = times[1].tv_nsec = st.mtime_nanos;
  int r = (parent >= 0) ? utimensat(parent, name.c_str(), times, AT_SYMLINK_NOFOLLOW)
                        : futimens(fd, times);
  if (r != 0) return Fs(errno, "failed to set times of", rel);
  if (opts_.features.chattr && !opath && st.flags != 0) {
    int attr = 0;
    if (ioctl(fd, FS_IOC_GETFLAGS, &attr) == 0) {
      attr |= static_cast<int>(PxarFlagsToChattr(st.flags));
      if (ioctl(fd, FS_IOC_SETFLAGS, &attr) != 0)
        Warn("failed to set file attributes of " + rel + ": " + std::strerror(errno));
    }
  }
  return Status::OK();
}

Status Extractor::WriteFile(int parent, const std::string& name, const std::string& rel,
                            const Entry& e) {
  if (opts_.overwrite) unlinkat(parent, name.c_str(), 0);
  int fd = openat(parent, name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                  0600);
  if (fd < 0) return Fs(errno, "failed to create file", rel);
  struct Closer {
    int fd;
    ~Closer() { close(fd); }
  } closer{fd};
  uint64_t total = 0;
  for (;;) {
    PBSKIT_ASSIGN_OR_RETURN(size_t n, dec_->ReadContent(buf_));
    if (n == 0) break;
    size_t done = 0;
    while (done < n) {
      ssize_t w = write(fd, buf_.data() + done, n - done);
      if (w < 0) {
        if (errno == EINTR) continue;
        return Fs(errno, "failed to write", rel);
      }
      done += static_cast<size_t>(w);
    }
    total += n;
  }
  stats_->file_bytes += total;
  ++stats_->files;
  return ApplyMetadata(parent, name, fd, false, e.metadata, rel);
}

Status Extractor::Extract(const Entry& e) {
  std::string rel = e.path.size() > 1 ? e.path.substr(1) : "";
  std::string name = BaseName(rel);
  if (e.kind == EntryKind::kDirectory) {
    bool selected = stack_.back().selected || Matches(rel);
    stack_.push_back(Frame{rel, -1, e.metadata, selected});
    if (selected) {
      PBSKIT_RETURN_IF_ERROR(EnsureDirs());
      ++stats_->entries;
      if (opts_.on_entry) opts_.on_entry(e.path);
    }
    return Status::OK();
  }
  if (!stack_.back().selected && !Matches(rel)) return Status::OK();
  PBSKIT_RETURN_IF_ERROR(EnsureDirs());
  int parent = stack_.back().fd;
  ++stats_->entries;
  if (opts_.on_entry) opts_.on_entry(e.path);
  const pxar::Stat& st = e.metadata.stat;
  switch (e.kind) {
    case EntryKind::kFile:
      return WriteFile(parent, name, rel, e);
    case EntryKind::kHardlink: {
      const std::string& target = e.link_target;
      if (!target.empty() && target[0] == '/')
        return Status::Corruption("hardlink target '" + target + "' is absolute");
      size_t slash = target.rfind('/');
      std::string tdir = slash == std::string::npos ? "" : target.substr(0, slash);
      std::string tname = target.substr(slash == std::string::npos ? 0 : slash + 1);
      if (tname.empty() || tname == "." || tname == "..")
        return Status::Corruption("hardlink target '" + target + "' is not a file name");
      PBSKIT_ASSIGN_OR_RETURN(int tfd, ResolveDir(tdir));
      if (opts_.overwrite) unlinkat(parent, name.c_str(), 0);
      int r = linkat(tfd, tname.c_str(), parent, name.c_str(), 0);
      int err = errno;
      close(tfd);
      if (r != 0 && err == ENOENT && !opts_.patterns.empty()) {
        Warn("skipping hardlink " + rel + ": target " + target + " was not extracted");
        return Status::OK();
      }
      if (r != 0) return Fs(err, "failed to create hardlink", rel);
      return Status::OK();
    }
    case EntryKind::kSymlink:
    case EntryKind::kDevice:
    case EntryKind::kFifo:
    case EntryKind::kSocket: {
      if (opts_.overwrite) unlinkat(parent, name.c_str(), 0);
      int r = 0;
      if (e.kind == EntryKind::kSymlink) {
        r = symlinkat(e.link_target.c_str(), parent, name.c_str());
      } else if (e.kind == EntryKind::kDevice) {
        if (!opts_.features.device_nodes) return Status::OK();
        r = mknodat(parent, name.c_str(), static_cast<mode_t>((st.mode & S_IFMT) | 0600),
                    makedev(e.device.major, e.device.minor));
      } else if (e.kind == EntryKind::kFifo) {
        if (!opts_.features.fifos) return Status::OK();
        r = mkfifoat(parent, name.c_str(), 0600);
      } else {
        if (!opts_.features.sockets) return Status::OK();
        r = mknodat(parent, name.c_str(), S_IFSOCK | 0600, 0);
      }
      if (r != 0) return Fs(errno, "failed to create", rel);
      int fd = openat(parent, name.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC);
      if (fd < 0) return Fs(errno, "failed to open", rel);
      Status s = ApplyMetadata(parent, name, fd, true, e.metadata, rel);
      close(fd);
      return s;
    }
    default:
      return Status::OK();
  }
}

Status Extractor::Run(const std::string& target) {
  if (mkdir(target.c_str(), 0700) != 0 && errno != EEXIST)
    return Fs(errno, "failed to create target directory", target);
  root_fd_ = open(target.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (root_fd_ < 0) return Fs(errno, "failed to open target directory", target);
  Entry e;
  for (;;) {
    PBSKIT_ASSIGN_OR_RETURN(bool more, dec_->Next(&e));
    if (!more) break;
    switch (e.kind) {
      case EntryKind::kVersion:
      case EntryKind::kPrelude:
        continue;
      case EntryKind::kDirectoryEnd: {
        if (stack_.empty()) return Status::InvalidArgument("unbalanced directory end");
        Frame f = std::move(stack_.back());
        stack_.pop_back();
        if (f.fd >= 0) {
          bool is_root = stack_.empty();
          std::string name = BaseName(f.rel);
          Status st = ApplyMetadata(is_root ? -1 : stack_.back().fd, name, f.fd, false, f.meta,
                                    f.rel);
          if (!is_root) close(f.fd);
          PBSKIT_RETURN_IF_ERROR(st);
        }
        continue;
      }
      default:
        break;
    }
    if (stack_.empty()) {
      if (e.kind != EntryKind::kDirectory)
        return Status::Corruption("archive root is not a directory");
      stack_.push_back(Frame{"", root_fd_, e.metadata, opts_.patterns.empty()});
      continue;
    }
    PBSKIT_RETURN_IF_ERROR(Extract(e));
  }
  return Status::OK();
}

}  // namespace

Result<PxarExtractStats> ExtractPxarArchive(pxar::Decoder* decoder, const std::string& target_dir,
                                            const PxarExtractOptions& options) {
  PxarExtractStats stats;
  Extractor x(decoder, options, &stats);
  PBSKIT_RETURN_IF_ERROR(x.Run(target_dir));
  return stats;
}

}  // namespace pbskit::importers
