// ChunkStore: creation, chunk insert (FORMATS §8.1), load, touch, .bad renames and the
// process locker on <base>/.lock.
#include "pbskit/datastore/chunk_store.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <map>

#include <fmt/format.h>

#include "pbskit/formats/data_blob.h"

namespace pbskit {
namespace {

bool IsLowerHex(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); }

bool MagicIs(std::span<const uint8_t> data, const std::array<uint8_t, 8>& magic) {
  return data.size() >= 8 && std::equal(magic.begin(), magic.end(), data.begin());
}

// Chunk files at least this big are written with O_DIRECT (see WriteChunkFile).
constexpr size_t kDirectMin = 64 * 1024;
constexpr size_t kDirectAlign = 4096;

// A per-thread buffer aligned for O_DIRECT, grown on demand and kept (so its pages are touched
// once per thread, not once per chunk).
uint8_t* AlignedScratch(size_t n) {
  struct Buf {
    uint8_t* p = nullptr;
    size_t cap = 0;
    ~Buf() { std::free(p); }
  };
  thread_local Buf buf;
  if (buf.cap < n) {
    std::free(buf.p);
    buf.p = nullptr;
    buf.cap = 0;
    void* q = nullptr;
    if (posix_memalign(&q, kDirectAlign, n) != 0) return nullptr;
    buf.p = static_cast<uint8_t*>(q);
    buf.cap = n;
  }
  return buf.p;
}

// Writes `blob` to the new temp file `tmp` (open as `fd`). The block-aligned bulk goes through a
// second descriptor opened with O_DIRECT, so it does not pass through the page cache: a chunk
// is written once and not read back soon, and filling fresh page-cache pages costs more CPU
// than the checks of the chunk itself. The unaligned tail is written through `fd`. When the
// direct path fails in any way (a file system without O_DIRECT answers EINVAL), the whole blob
// is written through `fd`, so a real error (ENOSPC, EIO) is reported from there.
Status WriteChunkFile(Filesystem* fs, int fd, const std::string& tmp,
                      std::span<const uint8_t> blob) {
  const size_t bulk = blob.size() / kDirectAlign * kDirectAlign;
  size_t done = 0;
  if (blob.size() >= kDirectMin) {
    uint8_t* aligned = AlignedScratch(bulk);
    auto dfd = fs->Open(tmp, O_WRONLY | O_DIRECT);
    if (aligned && dfd.ok()) {
      ScopedFd guard(fs, *dfd);
      std::memcpy(aligned, blob.data(), bulk);
      if (fs->PWriteAll(*dfd, aligned, bulk, 0).ok()) done = bulk;
    } else if (dfd.ok()) {
      (void)fs->Close(*dfd);
    }
  }
  return fs->PWriteAll(fd, blob.data() + done, blob.size() - done, done);
}

}  // namespace

// ---- process locker (one per .lock file per process) ----
namespace detail {
struct ProcessLocker {
  std::mutex mu;
  pid_t pid = 0;  // fcntl locks are not inherited by fork(): a child starts afresh
  Filesystem* fs = nullptr;
  int fd = -1;
  bool writable = false;
  bool exclusive = false;
  uint64_t next_id = 1;
  std::map<uint64_t, int64_t> shared;  // guard id -> start time
};
}  // namespace detail

namespace {
using Locker = detail::ProcessLocker;

std::mutex& LockersMutex() {
  static std::mutex mu;
  return mu;
}
// Lockers by path and by "dev:ino" of the lock file. Never destroyed: their fds must stay open
// for as long as the process may hold locks (closing any fd of the file drops fcntl locks).
std::map<std::string, std::shared_ptr<Locker>>& Lockers() {
  static auto* m = new std::map<std::string, std::shared_ptr<Locker>>();
  return *m;
}

Result<std::shared_ptr<Locker>> GetLocker(Filesystem* fs, const std::string& path) {
  std::lock_guard<std::mutex> l(LockersMutex());
  auto by_path = Lockers().find("path:" + path);
  if (by_path != Lockers().end() && by_path->second->pid == ::getpid()) return by_path->second;
  bool writable = true;
  auto r = fs->Open(path, O_RDWR | O_CREAT, 0644);
  if (!r.ok() && r.status().code() == Code::kPermissionDenied) {
    writable = false;
    r = fs->Open(path, O_RDONLY);
  }
  if (!r.ok()) return r.status().WithContext("unable to open lock file");
  int fd = *r;
  auto st = fs->FStat(fd);
  if (!st.ok()) {
    (void)fs->Close(fd);
    return st.status();
  }
  auto& slot = Lockers()[fmt::format("ino:{}:{}", st->st_dev, st->st_ino)];
  if (!slot || slot->pid != ::getpid()) {
    slot = std::make_shared<Locker>();
    slot->pid = ::getpid();
    slot->fs = fs;
    slot->fd = fd;
    slot->writable = writable;
  }
  // else: the same file reached by another path; `fd` stays open on purpose (see above).
  Lockers()["path:" + path] = slot;
  return slot;
}

class SharedGuard final : public ProcessLockGuard {
 public:
  SharedGuard(std::shared_ptr<Locker> l, uint64_t id) : locker_(std::move(l)), id_(id) {}
  ~SharedGuard() override {
    std::lock_guard<std::mutex> g(locker_->mu);
    locker_->shared.erase(id_);
    if (locker_->shared.empty() && !locker_->exclusive) (void)locker_->fs->FcntlUnlock(locker_->fd);
  }
  bool exclusive() const override { return false; }

 private:
  std::shared_ptr<Locker> locker_;
  uint64_t id_;
};

class ExclusiveGuard final : public ProcessLockGuard {
 public:
  explicit ExclusiveGuard(std::shared_ptr<Locker> l) : locker_(std::move(l)) {}
  ~ExclusiveGuard() override {
    std::lock_guard<std::mutex> g(locker_->mu);
    if (locker_->shared.empty()) {
      (void)locker_->fs->FcntlUnlock(locker_->fd);
    } else {
      (void)locker_->fs->FcntlLock(locker_->fd, LockMode::kShared);  // downgrade
    }
    locker_->exclusive = false;
  }
  bool exclusive() const override { return true; }

 private:
  std::shared_ptr<Locker> locker_;
};

}  // namespace

std::optional<ChunkFileInfo> ParseChunkFileName(const std::string& name) {
  if (name.size() != 64 && name.size() != 70) return std::nullopt;
  for (size_t i = 0; i < 64; ++i) {
    if (!IsLowerHex(name[i])) return std::nullopt;
  }
  ChunkFileInfo info;
  if (name.size() == 70) {
    if (name.compare(64, 6, ".using") == 0) {
      info.kind = ChunkFileInfo::Kind::kUsing;
    } else if (name[64] == '.' && name[65] >= '0' && name[65] <= '9' &&
               name.compare(66, 4, ".bad") == 0) {
      info.kind = ChunkFileInfo::Kind::kBad;
      info.bad_index = name[65] - '0';
    } else {
      return std::nullopt;
    }
  }
  auto d = DigestFromHex(std::string_view(name).substr(0, 64));
  if (!d.ok()) return std::nullopt;
  info.digest = *d;
  info.name = name;
  return info;
}

ChunkStore::ChunkStore(std::string base, Filesystem* fs, SyncLevel level)
    : base_(std::move(base)), fs_(fs), level_(level) {}
ChunkStore::~ChunkStore() = default;

Result<std::unique_ptr<ChunkStore>> ChunkStore::Create(const std::string& base, Filesystem* fs,
                                                       SyncLevel level,
                                                       const std::function<void(int)>& progress) {
  if (base.empty() || base[0] != '/') {
    return Status::InvalidArgument("expected absolute path - got '" + base + "'");
  }
  std::string chunk_dir = base + "/.chunks";
  PBSKIT_ASSIGN_OR_RETURN(bool exists, PathExists(fs, chunk_dir));
  if (exists) {
    return Status::AlreadyExists("unable to create chunk store at '" + base +
                                 "' - .chunks already exists");
  }
  Status st = MkdirAll(fs, base, 0755);
  if (!st.ok()) return st.WithContext("unable to create chunk store at '" + base + "'");
  st = fs->Mkdir(chunk_dir, 0750);
  if (!st.ok()) return st.WithContext("unable to create chunk store subdir");
  (void)fs->Chmod(chunk_dir, 0750);  // independent of the umask, as the reuse check wants
  st = WriteFileAtomic(fs, base + "/.lock", std::string_view(), SyncLevel::kNone, 0644);
  if (!st.ok()) return st.WithContext("unable to create chunk store lock file");
  int last_pct = 0;
  for (int i = 0; i < 65536; ++i) {
    std::string dir = fmt::format("{}/{:04x}", chunk_dir, i);
    st = fs->Mkdir(dir, 0750);
    if (!st.ok()) return st.WithContext("unable to create chunk store subdir");
    (void)fs->Chmod(dir, 0750);
    int pct = i * 100 / 65536;
    if (progress && pct != last_pct) progress(pct);
    last_pct = pct;
  }
  if (level != SyncLevel::kNone) {
    PBSKIT_RETURN_IF_ERROR(fs->FsyncDir(chunk_dir));
    PBSKIT_RETURN_IF_ERROR(fs->FsyncDir(base));
  }
  return Open(base, fs, level);
}

Result<std::unique_ptr<ChunkStore>> ChunkStore::Open(const std::string& base, Filesystem* fs,
                                                     SyncLevel level) {
  std::string b = base;
  while (b.size() > 1 && b.back() == '/') b.pop_back();
  auto st = fs->Stat(b + "/.chunks", true);
  if (!st.ok()) {
    return Status(st.status().code(), "unable to open chunk store at '" + b +
                                          "/.chunks' - " + st.status().message());
  }
  if (!S_ISDIR(st->st_mode)) {
    return Status::NotFound("unable to open chunk store at '" + b +
                            "/.chunks' - not a directory");
  }
  return std::unique_ptr<ChunkStore>(new ChunkStore(b, fs, level));
}

std::string ChunkStore::PrefixDir(const Digest& d) const {
  return fmt::format("{}/.chunks/{:02x}{:02x}", base_, d[0], d[1]);
}

std::string ChunkStore::ChunkPath(const Digest& d) const {
  return PrefixDir(d) + "/" + ToHex(d);
}

Result<ChunkStore::InsertDecision> ChunkStore::DecideInsert(const std::string& path,
                                                            const std::string& hex,
                                                            std::span<const uint8_t> blob) const {
  const uint64_t size = blob.size();
  const bool encrypted =
      MagicIs(blob, kEncryptedBlobMagic) || MagicIs(blob, kEncrCompressedBlobMagic);
  const bool compressed =
      MagicIs(blob, kCompressedBlobMagic) || MagicIs(blob, kEncrCompressedBlobMagic);
  auto st = fs_->Stat(path, true);
  if (!st.ok()) {
    if (st.status().IsNotFound()) return InsertDecision{false, 0};
    return st.status();
  }
  if (!S_ISREG(st->st_mode)) {
    return Status::IoError("got unexpected file type on store '" + base_ + "' for chunk " + hex);
  }
  const uint64_t old_size = static_cast<uint64_t>(st->st_size);
  const InsertDecision keep{true, old_size}, write{false, old_size};
  if (old_size == size) return keep;
  if (old_size == 0) return write;  // an empty file (crash or S3 cache marker)
  if (encrypted) {
    PBSKIT_ASSIGN_OR_RETURN(int fd, fs_->Open(path, O_RDONLY));
    ScopedFd guard(fs_, fd);
    uint8_t magic[8] = {};
    PBSKIT_ASSIGN_OR_RETURN(size_t n, fs_->PRead(fd, magic, 8, 0));
    std::span<const uint8_t> m(magic, n);
    if (MagicIs(m, kUncompressedBlobMagic) || MagicIs(m, kCompressedBlobMagic)) {
      return Status::InvalidArgument("Overwriting unencrypted chunk '" + hex + "' on store '" +
                                     base_ +
                                     "' with encrypted chunk with same digest not allowed!");
    }
    if (MagicIs(m, kEncryptedBlobMagic) && !compressed) {
      return Status::InvalidArgument("Overwriting existing (encrypted) chunk '" + hex +
                                     "' on store '" + base_ + "' is not allowed!");
    }
    return keep;
  }
  if (old_size < size) return keep;
  return write;  // the existing file is bigger: replace it with the new one
}

Result<ChunkStore::InsertResult> ChunkStore::InsertChunk(const Digest& d,
                                                         std::span<const uint8_t> blob) {
  if (blob.size() < kBlobHeaderSize) {
    return Status::InvalidArgument(fmt::format("chunk {}: encoded blob too small ({} bytes)",
                                               ToHex(d), blob.size()));
  }
  const std::string path = ChunkPath(d);
  const std::string hex = ToHex(d);
  auto keep = [&](const InsertDecision& d) -> Result<InsertResult> {
    PBSKIT_RETURN_IF_ERROR(TouchAtime(fs_, path));
    return InsertResult{true, d.old_size};
  };
  auto failed = [&](const Status& w) {
    return Status(w.code(), "inserting chunk on store '" + base_ + "' failed for " + hex + " - " +
                                w.message());
  };
  // A chunk already there (most chunks of an incremental backup) is decided and touched under
  // the mutex with one stat. A new one is written to its temp file outside the mutex, so the
  // writes of several threads run side by side; the decision is repeated under the mutex before
  // the rename, and a chunk another thread inserted meanwhile is kept.
  {
    std::lock_guard<std::mutex> lock(insert_mu_);
    PBSKIT_ASSIGN_OR_RETURN(InsertDecision first, DecideInsert(path, hex, blob));
    if (first.keep) return keep(first);
  }
  std::string tmp;
  Status w = WriteChunkTemp(path, blob, &tmp);
  if (!w.ok()) return failed(w);
  std::lock_guard<std::mutex> lock(insert_mu_);
  auto again = DecideInsert(path, hex, blob);
  if (!again.ok() || again->keep) {
    (void)fs_->Unlink(tmp);
    if (!again.ok()) return again.status();
    return keep(*again);
  }
  w = fs_->Rename(tmp, path);
  if (w.ok() && level_ == SyncLevel::kFile) w = fs_->FsyncDir(DirName(path));
  if (!w.ok()) {
    (void)fs_->Unlink(tmp);
    return failed(w);
  }
  return InsertResult{false, blob.size()};
}

Status ChunkStore::WriteChunkTemp(const std::string& path, std::span<const uint8_t> blob,
                                  std::string* tmp) {
  *tmp = path + ".tmp_XXXXXX";
  PBSKIT_ASSIGN_OR_RETURN(int fd, fs_->MkTemp(tmp, 0644));
  ScopedFd guard(fs_, fd);
  Status st = WriteChunkFile(fs_, fd, *tmp, blob).WithContext("write " + *tmp);
  if (st.ok() && level_ == SyncLevel::kFile) st = fs_->Fsync(fd).WithContext("fsync " + *tmp);
  if (st.ok()) st = guard.Close().WithContext("close " + *tmp);
  if (!st.ok()) {
    guard.Reset();
    (void)fs_->Unlink(*tmp);
  }
  return st;
}

Status ChunkStore::LoadChunkInto(const Digest& d, std::vector<uint8_t>* out) const {
  const std::string path = ChunkPath(d);
  PBSKIT_ASSIGN_OR_RETURN(int fd, fs_->Open(path, O_RDONLY));
  ScopedFd guard(fs_, fd);
  PBSKIT_ASSIGN_OR_RETURN(struct stat st, fs_->FStat(fd));
  size_t size = static_cast<size_t>(st.st_size);
  out->resize(size);
  PBSKIT_ASSIGN_OR_RETURN(size_t n, fs_->PRead(fd, out->data(), size, 0));
  if (n != size) {
    return Status::IoError(fmt::format("chunk {}: short read ({} of {} bytes)", ToHex(d), n, size));
  }
  return Status::OK();
}

Result<std::vector<uint8_t>> ChunkStore::LoadChunk(const Digest& d) const {
  std::vector<uint8_t> out;
  PBSKIT_RETURN_IF_ERROR(LoadChunkInto(d, &out));
  return out;
}

Status ChunkStore::TouchChunk(const Digest& d) {
  Status st = TouchAtime(fs_, ChunkPath(d));
  if (!st.ok()) return Status(st.code(), "update atime failed for chunk " + ToHex(d) + " - " + st.message());
  return st;
}

Result<bool> ChunkStore::CondTouchChunk(const Digest& d) {
  Status st = TouchChunk(d);
  if (st.ok()) return true;
  if (st.IsNotFound()) return false;
  return st;
}

Result<std::string> ChunkStore::RenameCorruptChunk(const Digest& d) {
  const std::string path = ChunkPath(d);
  std::string target;
  for (int n = 0; n < 10; ++n) {
    target = fmt::format("{}.{}.bad", path, n);
    PBSKIT_ASSIGN_OR_RETURN(bool exists, PathExists(fs_, target));
    if (!exists) break;
  }
  PBSKIT_RETURN_IF_ERROR(fs_->Rename(path, target));
  return target;
}

Result<uint64_t> ChunkStore::ChunkInode(const Digest& d) const {
  PBSKIT_ASSIGN_OR_RETURN(struct stat st, fs_->Stat(ChunkPath(d), false));
  return static_cast<uint64_t>(st.st_ino);
}

Result<struct stat> ChunkStore::StatChunk(const Digest& d) const {
  return fs_->Stat(ChunkPath(d), false);
}

Result<std::shared_ptr<detail::ProcessLocker>> ChunkStore::Locker() const {
  std::lock_guard<std::mutex> l(locker_mu_);
  if (!locker_ || locker_->pid != ::getpid()) {
    PBSKIT_ASSIGN_OR_RETURN(locker_, GetLocker(fs_, lock_path()));
  }
  return locker_;
}

Result<std::unique_ptr<ProcessLockGuard>> ChunkStore::LockShared() {
  PBSKIT_ASSIGN_OR_RETURN(auto locker, Locker());
  std::lock_guard<std::mutex> l(locker->mu);
  if (locker->shared.empty() && !locker->exclusive) {
    Status st = fs_->FcntlLock(locker->fd, LockMode::kShared);
    if (!st.ok()) {
      return Status(st.code(), "unable to get shared lock - " + st.message() +
                                   " (is garbage collection running on '" + base_ + "'?)");
    }
  }
  uint64_t id = locker->next_id++;
  locker->shared[id] = static_cast<int64_t>(std::time(nullptr));
  return std::unique_ptr<ProcessLockGuard>(new SharedGuard(locker, id));
}

Result<std::unique_ptr<ProcessLockGuard>> ChunkStore::TryLockExclusive() {
  PBSKIT_ASSIGN_OR_RETURN(auto locker, Locker());
  std::lock_guard<std::mutex> l(locker->mu);
  if (locker->exclusive) return Status::Busy("already locked exclusively");
  if (!locker->writable) {
    return Status::PermissionDenied("unable to get exclusive lock - " + lock_path() +
                                    " is not writable");
  }
  Status st = fs_->FcntlLock(locker->fd, LockMode::kExclusive);
  if (!st.ok()) {
    return Status(st.code(), "unable to get exclusive lock - " + st.message() +
                                 " (a backup or another operation is running on '" + base_ + "')");
  }
  locker->exclusive = true;
  return std::unique_ptr<ProcessLockGuard>(new ExclusiveGuard(locker));
}

std::optional<int64_t> ChunkStore::OldestSharedLockTime() const {
  std::shared_ptr<detail::ProcessLocker> locker;
  {
    std::lock_guard<std::mutex> l(locker_mu_);
    locker = locker_;
  }
  if (!locker) return std::nullopt;
  std::lock_guard<std::mutex> l(locker->mu);
  std::optional<int64_t> oldest;
  for (const auto& [id, t] : locker->shared) {
    if (!oldest || t < *oldest) oldest = t;
  }
  return oldest;
}

Status ChunkStore::ForEachChunkFile(const std::function<Status(const ChunkFileInfo&)>& fn,
                                    const std::function<void(int)>& progress) const {
  std::vector<DirEntry> entries;
  for (int i = 0; i < 65536; ++i) {
    std::string dir = fmt::format("{}/.chunks/{:04x}", base_, i);
    Status st = fs_->ReadDir(dir, &entries);
    if (st.IsNotFound()) {
      if (progress) progress(i);
      continue;
    }
    if (!st.ok()) return st;
    for (const auto& e : entries) {
      if (e.type != DT_REG && e.type != DT_UNKNOWN) continue;
      auto info = ParseChunkFileName(e.name);
      if (!info) continue;
      info->path = dir + "/" + e.name;
      auto s = fs_->Stat(info->path, false);
      if (!s.ok()) {
        if (s.status().IsNotFound()) continue;  // removed meanwhile
        return s.status();
      }
      if (!S_ISREG(s->st_mode)) continue;
      info->st = *s;
      PBSKIT_RETURN_IF_ERROR(fn(*info));
    }
    if (progress) progress(i);
  }
  return Status::OK();
}

}  // namespace pbskit
