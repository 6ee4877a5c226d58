// Walking a directory tree into the pxar encoder (what `pxar create` does).
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <memory>
#include <vector>

#include "pbskit/importers/pxar_fs.h"
#include "pxar_fs_internal.h"

namespace pbskit::importers {

using pxar::Encoder;
using pxar::LinkOffset;
using pxar::Metadata;

namespace {

class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

bool IsVirtualFs(int64_t magic) {
  static const int64_t kMagics[] = {0x42494e4d, 0x63677270, 0x0027e0eb, 0x62656570, 0x64626720,
                                    0x00001cd1, static_cast<int64_t>(0xde5e81e4), 0x65735543,
                                    static_cast<int64_t>(0x958458f6), 0x19800202, 0x6e667364,
                                    0x00009fa0, 0x6165676C, 0x67596969, 0x73636673,
                                    static_cast<int64_t>(0xf97cff8c), 0x43415d53, 0x62656572};
  return std::find(std::begin(kMagics), std::end(kMagics), magic) != std::end(kMagics);
}

struct Child {
  std::string name;
  struct stat st;
};

class Archiver {
 public:
  Archiver(Encoder* enc, const PxarCreateOptions& opts, PxarCreateStats* stats)
      : enc_(enc), opts_(opts), stats_(stats) {}

  Status Walk(int dirfd, bool is_root);
  int64_t fs_magic_ = 0;
  PxarFeatures features_;
  dev_t current_dev_ = 0;

 private:
  void Warn(const std::string& msg) {
    stats_->warnings.push_back(msg);
    if (opts_.warn) opts_.warn(msg);
  }
  std::string Shown(const std::string& rel) const { return "\"" + rel + "\""; }
  Status AddEntry(int dirfd, const Child& c);
  Status AddRegular(int fd, const Child& c, const Metadata& m);

  Encoder* enc_;
  const PxarCreateOptions& opts_;
  PxarCreateStats* stats_;
  std::string path_;  // relative to the root, no leading '/'
  uint64_t entry_counter_ = 0;
  std::map<std::pair<dev_t, ino_t>, std::pair<std::string, LinkOffset>> hardlinks_;
  std::vector<uint8_t> buf_ = std::vector<uint8_t>(4 << 20);
};

Status Archiver::Walk(int dirfd, bool is_root) {
  int dup_fd = dup(dirfd);
  if (dup_fd < 0) return Status::FromErrno(errno, "dup");
  DIR* dir = fdopendir(dup_fd);
  if (dir == nullptr) {
    close(dup_fd);
    return Status::FromErrno(errno, "opendir " + Shown(path_));
  }
  std::unique_ptr<DIR, int (*)(DIR*)> guard(dir, closedir);
  uint64_t counter_at_start = entry_counter_;
  std::vector<Child> children;
  errno = 0;
  while (struct dirent* de = readdir(dir)) {
    std::string name = de->d_name;
    if (name == "." || name == "..") continue;
    if (is_root && name == ".pxarexclude-cli") continue;
    Child c;
    c.name = name;
    std::string full = path_.empty() ? name : path_ + "/" + name;
    if (fstatat(dirfd, name.c_str(), &c.st, AT_SYMLINK_NOFOLLOW) != 0) {
      if (errno == ENOENT) {
        Warn("warning: file vanished while reading directory: " + Shown(full));
        continue;
      }
      if (errno == EACCES) {
        Warn("warning: failed to stat file: " + Shown(full) + ": access denied");
        continue;
      }
      return Status::FromErrno(errno, "stat failed on " + Shown(full));
    }
    ++stats_->entries;
    if (++entry_counter_ > opts_.entries_max)
      return Status::InvalidArgument("exceeded allowed number of file entries (> " +
                                     std::to_string(opts_.entries_max) + ")");
    children.push_back(std::move(c));
    errno = 0;
  }
  if (errno != 0) return Status::FromErrno(errno, "readdir " + Shown(path_));
  std::sort(children.begin(), children.end(),
            [](const Child& a, const Child& b) { return a.name < b.name; });
  // Like PBS, the limit counts the directory listings held along the current path.
  std::string old_path = path_;
  for (const Child& c : children) {
    path_ = old_path.empty() ? c.name : old_path + "/" + c.name;
    Status st = AddEntry(dirfd, c);
    if (!st.ok()) return st.WithContext("error at " + Shown(path_));
  }
  path_ = old_path;
  entry_counter_ = counter_at_start;
  return Status::OK();
}

Status Archiver::AddEntry(int dirfd, const Child& c) {
  mode_t type = c.st.st_mode & S_IFMT;
  int flags = (type == S_IFREG || type == S_IFDIR) ? O_RDONLY : (O_PATH | O_RDONLY);
  flags |= O_NOFOLLOW | O_CLOEXEC | O_NOCTTY;
  int fd = openat(dirfd, c.name.c_str(), flags | O_NOATIME);
  if (fd < 0 && errno == EPERM) fd = openat(dirfd, c.name.c_str(), flags);
  if (fd < 0) {
    if (errno == ENOENT) {
      Warn("warning: file vanished while reading: " + Shown(path_));
      return Status::OK();
    }
    if (errno == EACCES) {
      Warn("failed to open file: " + Shown(c.name) + ": access denied");
      return Status::OK();
    }
    return Status::FromErrno(errno, "open");
  }
  Fd guard(fd);
  PBSKIT_ASSIGN_OR_RETURN(Metadata m, ReadPxarMetadata(fd, c.st, fs_magic_, features_));
  PxarCreateObserver* obs = opts_.observer;
  switch (type) {
    case S_IFREG:
      return AddRegular(fd, c, m);
    case S_IFDIR: {
      int64_t old_magic = fs_magic_;
      PxarFeatures old_features = features_;
      dev_t old_dev = current_dev_;
      bool skip = false;
      if (c.st.st_dev != current_dev_) {
        struct statfs sfs;
        if (fstatfs(fd, &sfs) != 0) return Status::FromErrno(errno, "statfs");
        fs_magic_ = static_cast<int64_t>(sfs.f_type);
        features_ = FeaturesForFsMagic(fs_magic_, opts_.features);
        current_dev_ = c.st.st_dev;
        skip = IsVirtualFs(fs_magic_);
      }
      if (obs) PBSKIT_RETURN_IF_ERROR(obs->StartDirectory(c.name));
      PBSKIT_RETURN_IF_ERROR(enc_->CreateDirectory(c.name, m));
      Status st = Status::OK();
      if (skip) {
        Warn("skipping mount point: " + Shown(path_));
      } else {
        st = Walk(fd, false);
      }
      fs_magic_ = old_magic;
      features_ = old_features;
      current_dev_ = old_dev;
      PBSKIT_RETURN_IF_ERROR(st);
      PBSKIT_RETURN_IF_ERROR(enc_->FinishDirectory());
      if (obs) PBSKIT_RETURN_IF_ERROR(obs->EndDirectory());
      return Status::OK();
    }
    case S_IFLNK: {
      std::string target(4096 + 1, '\0');
      ssize_t n = readlinkat(fd, "", target.data(), target.size());
      if (n < 0) return Status::FromErrno(errno, "readlink");
      target.resize(static_cast<size_t>(n));
      if (obs) PBSKIT_RETURN_IF_ERROR(obs->AddSymlink(c.name));
      return enc_->AddSymlink(m, c.name, target);
    }
    case S_IFBLK:
    case S_IFCHR:
      if (obs) {
        PBSKIT_RETURN_IF_ERROR(type == S_IFBLK ? obs->AddBlockDevice(c.name)
                                               : obs->AddCharDevice(c.name));
      }
      return enc_->AddDevice(m, c.name, pxar::Device::FromDevT(c.st.st_rdev));
    case S_IFIFO:
      if (obs) PBSKIT_RETURN_IF_ERROR(obs->AddFifo(c.name));
      return enc_->AddFifo(m, c.name);
    case S_IFSOCK:
      if (obs) PBSKIT_RETURN_IF_ERROR(obs->AddSocket(c.name));
      return enc_->AddSocket(m, c.name);
    default:
      return Status::InvalidArgument("encountered unknown file type");
  }
}

Status Archiver::AddRegular(int fd, const Child& c, const Metadata& m) {
  PxarCreateObserver* obs = opts_.observer;
  auto key = std::make_pair(c.st.st_dev, c.st.st_ino);
  if (c.st.st_nlink > 1) {
    auto it = hardlinks_.find(key);
    if (it != hardlinks_.end()) {
      if (obs) PBSKIT_RETURN_IF_ERROR(obs->AddHardlink(c.name));
      ++stats_->hardlinks;
      return enc_->AddHardlink(c.name, it->second.first, it->second.second);
    }
  }
  uint64_t size = static_cast<uint64_t>(c.st.st_size);
  if (obs) {
    PBSKIT_RETURN_IF_ERROR(obs->AddFile(c.name, size, c.st.st_mtim.tv_sec));
    if (enc_->split()) obs->SuggestPayloadBoundary(enc_->payload_position());
  }
  PBSKIT_ASSIGN_OR_RETURN(LinkOffset off, enc_->BeginFile(m, c.name, size));
  uint64_t remaining = size;
  while (remaining > 0) {
    ssize_t got = read(fd, buf_.data(), buf_.size());
    if (got < 0) {
      if (errno == EINTR) continue;
      return Status::FromErrno(errno, "read");
    }
    if (got == 0) break;
    uint64_t n = static_cast<uint64_t>(got);
    if (n > remaining) {
      Warn("warning: file size increased while reading: " + Shown(path_) +
           ", file will be truncated!");
      n = remaining;
    }
    PBSKIT_RETURN_IF_ERROR(enc_->WriteFileData({buf_.data(), static_cast<size_t>(n)}));
    remaining -= n;
  }
  if (remaining > 0) {
    Warn("warning: file size shrunk while reading: " + Shown(path_) +
         ", file will be padded with zeros!");
    std::fill(buf_.begin(), buf_.end(), 0);
    while (remaining > 0) {
      size_t n = static_cast<size_t>(std::min<uint64_t>(remaining, buf_.size()));
      PBSKIT_RETURN_IF_ERROR(enc_->WriteFileData({buf_.data(), n}));
      remaining -= n;
    }
  }
  PBSKIT_RETURN_IF_ERROR(enc_->EndFile());
  ++stats_->files;
  stats_->file_bytes += size;
  if (c.st.st_nlink > 1) hardlinks_[key] = {path_, off};
  return Status::OK();
}

}  // namespace

Result<PxarCreateStats> CreatePxarArchive(const std::string& source_dir, pxar::PxarSink* archive,
                                          pxar::PxarSink* payload,
                                          const PxarCreateOptions& options,
                                          const std::string* prelude) {
  int fd = open(source_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    Status st = Status::FromErrno(errno, "unable to open directory '" + source_dir + "'");
    if (errno == ENOENT) return Status::NotFound(st.message());
    if (errno == EACCES) return Status::PermissionDenied(st.message());
    return st;
  }
  Fd guard(fd);
  struct statfs sfs;
  if (fstatfs(fd, &sfs) != 0) return Status::FromErrno(errno, "statfs '" + source_dir + "'");
  int64_t magic = static_cast<int64_t>(sfs.f_type);
  if (IsVirtualFs(magic)) return Status::InvalidArgument("refusing to backup a virtual file system");
  struct stat st;
  if (fstat(fd, &st) != 0) return Status::FromErrno(errno, "stat '" + source_dir + "'");
  PxarFeatures features = FeaturesForFsMagic(magic, options.features);
  auto meta = ReadPxarMetadata(fd, st, magic, features);
  if (!meta.ok())
    return meta.status().WithContext("failed to get metadata for source directory");
  PBSKIT_ASSIGN_OR_RETURN(std::unique_ptr<Encoder> enc,
                          Encoder::Create(archive, payload, *meta, prelude));
  PxarCreateStats stats;
  Archiver a(enc.get(), options, &stats);
  a.fs_magic_ = magic;
  a.features_ = features;
  a.current_dev_ = st.st_dev;
  PBSKIT_RETURN_IF_ERROR(a.Walk(fd, true));
  PBSKIT_RETURN_IF_ERROR(enc->Finish());
  return stats;
}

}  // namespace pbskit::importers
