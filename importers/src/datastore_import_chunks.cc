// Chunk mover of the datastore import: reuse, hard link, reflink or copy, with the check of every
// new chunk on the way (CRC; digest and length for unencrypted chunks).
#include <fcntl.h>
#include <fmt/format.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "datastore_import_internal.h"
#include "pbskit/formats/data_blob.h"

namespace pbskit::import_detail {
namespace {

bool HasMagic(std::span<const uint8_t> raw, const std::array<uint8_t, 8>& magic) {
  return raw.size() >= 8 && std::memcmp(raw.data(), magic.data(), 8) == 0;
}

bool IsEncryptedBlob(std::span<const uint8_t> raw) {
  return HasMagic(raw, kEncryptedBlobMagic) || HasMagic(raw, kEncrCompressedBlobMagic);
}

Status ErrnoStatus(const std::string& what, int err) {
  if (err == ENOENT) return Status::NotFound(what + ": " + std::strerror(err));
  return Status::IoError(what + ": " + std::strerror(err));
}

// Errors of link(2) / FICLONE that mean "this way does not work here", not "the disk is broken".
bool IsUnsupportedHere(int err) {
  return err == EXDEV || err == EPERM || err == EMLINK || err == EOPNOTSUPP || err == ENOTTY ||
         err == EINVAL || err == EACCES;
}

}  // namespace

ChunkMover::ChunkMover(ChunkStore* source, ChunkStore* dest, const DatastoreImportOptions& options,
                       bool same_filesystem, ChunkCounters* counters)
    : source_(source),
      dest_(dest),
      options_(options),
      same_fs_(same_filesystem),
      counters_(counters),
      pool_(WorkerPoolOptions{options.read_threads, options.work_threads, 0}) {}

std::string ChunkMover::BadReason(const Digest& d) const {
  std::lock_guard<std::mutex> l(mu_);
  auto it = bad_.find(d);
  return it == bad_.end() ? std::string() : it->second;
}

void ChunkMover::MarkBad(const Digest& d, const std::string& reason, SnapshotChunks* out) {
  std::lock_guard<std::mutex> l(mu_);
  bad_.emplace(d, reason);
  out->bad.push_back(d);
}

void ChunkMover::SetError(const Status& s, SnapshotChunks* out) {
  std::lock_guard<std::mutex> l(mu_);
  if (out->error.ok()) out->error = s;
}

Status ChunkMover::ReadSourceChunk(const Digest& d, std::vector<uint8_t>* buf) {
  Filesystem* fs = source_->fs();
  const std::string path = source_->ChunkPath(d);
  PBSKIT_ASSIGN_OR_RETURN(int fd, fs->Open(path, O_RDONLY | O_NOFOLLOW));
  ScopedFd guard(fs, fd);
  PBSKIT_ASSIGN_OR_RETURN(struct stat st, fs->FStat(fd));
  if (!S_ISREG(st.st_mode))
    return Status::Corruption("chunk file " + path + " is not a regular file");
  buf->resize(static_cast<size_t>(st.st_size));
  PBSKIT_ASSIGN_OR_RETURN(size_t n, fs->PRead(fd, buf->data(), buf->size(), 0));
  if (n != buf->size()) return Status::IoError("short read of chunk file " + path);
  return Status::OK();
}

ChunkMover::Outcome ChunkMover::Read(const ChunkJob& job, std::vector<uint8_t>* buf,
                                     bool* have_data, SnapshotChunks* out) {
  *have_data = false;
  {
    std::lock_guard<std::mutex> l(mu_);
    if (bad_.count(job.digest)) {
      out->bad.push_back(job.digest);
      return Outcome::kDone;
    }
  }
  // Already in the destination (an earlier snapshot, an earlier run, or the store's own data).
  auto dst = dest_->fs()->Stat(dest_->ChunkPath(job.digest), false);
  if (dst.ok() && S_ISREG(dst->st_mode) && dst->st_size > 0) {
    counters_->reused.fetch_add(1);
    counters_->bytes.fetch_add(static_cast<uint64_t>(dst->st_size));
    return Outcome::kDone;
  }
  const std::string src_path = source_->ChunkPath(job.digest);
  auto src = source_->fs()->Stat(src_path, false);
  if (!src.ok()) {
    if (src.status().IsNotFound()) {
      MarkBad(job.digest, "missing chunk", out);
    } else {
      SetError(src.status(), out);
    }
    return Outcome::kDone;
  }
  if (!S_ISREG(src->st_mode)) {
    MarkBad(job.digest,
            S_ISLNK(src->st_mode) ? "chunk file is a symbolic link (refused)"
                                  : "chunk file is not a regular file",
            out);
    return Outcome::kDone;
  }
  if (src->st_size == 0) {
    std::lock_guard<std::mutex> l(mu_);
    if (fatal_.ok()) {
      fatal_ = Status::Unsupported(
          "chunk file " + src_path +
          " is empty: an evicted chunk of a PBS 4.x S3 local cache. The source is the local "
          "cache of an S3-backed datastore and does not hold the chunk data; import from the "
          "bucket (a synced copy) or through a PBS sync job instead");
    }
    pool_.Stop(fatal_);
    return Outcome::kDone;
  }
  const bool will_copy = options_.transfer == ChunkTransfer::kCopy || !same_fs_;
  if (options_.verify_chunks || will_copy) {
    Status s = ReadSourceChunk(job.digest, buf);
    if (!s.ok()) {
      if (s.IsCorruption()) {
        MarkBad(job.digest, s.message(), out);
      } else if (s.IsNotFound()) {
        MarkBad(job.digest, "missing chunk", out);
      } else {
        SetError(s, out);
      }
      return Outcome::kDone;
    }
    *have_data = true;
  }
  return Outcome::kNeedsWork;
}

void ChunkMover::Work(const ChunkJob& job, std::vector<uint8_t>* buf, bool have_data,
                      std::vector<uint8_t>* scratch, SnapshotChunks* out) {
  if (options_.verify_chunks) {
    std::span<const uint8_t> raw(*buf);
    Status s = CheckBlobHeader(raw, true);
    if (s.ok()) {
      const bool encrypted = IsEncryptedBlob(raw);
      if (encrypted != job.encrypted) {
        s = Status::Corruption(job.encrypted
                                   ? "chunk is not encrypted but its index says crypt-mode encrypt"
                                   : "chunk is encrypted but its index is not");
      } else if (!encrypted) {
        s = VerifyUnencryptedChunk(raw, job.size, job.digest, scratch);
      }
    }
    if (!s.ok()) {
      if (s.IsCorruption() || s.code() == Code::kInvalidArgument) {
        MarkBad(job.digest, s.message(), out);
      } else {
        SetError(s, out);
      }
      return;
    }
  }
  Status s = Store(job, buf, have_data);
  if (!s.ok()) {
    std::lock_guard<std::mutex> l(mu_);
    if (fatal_.ok()) fatal_ = s.WithContext("storing chunk " + ToHex(job.digest));
    pool_.Stop(fatal_);
  }
}

Status ChunkMover::Store(const ChunkJob& job, std::vector<uint8_t>* buf, bool have_data) {
  // The prefix directory may be missing in a destination made from a sparse copy.
  const std::string prefix = dest_->PrefixDir(job.digest);
  if (auto st = dest_->fs()->Stat(prefix, false); !st.ok()) {
    if (!st.status().IsNotFound()) return st.status();
    PBSKIT_RETURN_IF_ERROR(MkdirAll(dest_->fs(), prefix, 0750));
  }
  const uint64_t size = have_data ? buf->size() : 0;
  if (options_.transfer == ChunkTransfer::kCopy || !same_fs_) {
    return CopyChunk(job.digest, buf, have_data);
  }
  bool existed = false;
  Status linked = LinkChunk(job.digest, &existed);
  if (linked.ok()) {
    uint64_t n = size;
    if (n == 0) {
      auto st = dest_->fs()->Stat(dest_->ChunkPath(job.digest), false);
      if (st.ok()) n = static_cast<uint64_t>(st->st_size);
    }
    counters_->bytes.fetch_add(n);
    if (existed) {
      counters_->reused.fetch_add(1);
    } else {
      counters_->linked.fetch_add(1);
      counters_->bytes_linked.fetch_add(n);
    }
    return Status::OK();
  }
  if (options_.transfer == ChunkTransfer::kLink) return linked;
  if (linked.code() != Code::kUnsupported) return linked;
  Status cloned = CloneChunk(job.digest);
  if (cloned.ok()) {
    auto st = dest_->fs()->Stat(dest_->ChunkPath(job.digest), false);
    uint64_t n = st.ok() ? static_cast<uint64_t>(st->st_size) : size;
    counters_->cloned.fetch_add(1);
    counters_->bytes.fetch_add(n);
    counters_->bytes_linked.fetch_add(n);
    return Status::OK();
  }
  if (cloned.code() != Code::kUnsupported) return cloned;
  return CopyChunk(job.digest, buf, have_data);
}

Status ChunkMover::LinkChunk(const Digest& d, bool* existed) {
  const std::string from = source_->ChunkPath(d);
  const std::string to = dest_->ChunkPath(d);
  *existed = false;
  if (::link(from.c_str(), to.c_str()) != 0) {
    int err = errno;
    if (err == EEXIST) {
      *existed = true;
      return Status::OK();
    }
    std::string what = "link " + from + " -> " + to;
    if (IsUnsupportedHere(err)) return Status::Unsupported(what + ": " + std::strerror(err));
    return ErrnoStatus(what, err);
  }
  if (dest_->sync_level() == SyncLevel::kFile) {
    PBSKIT_RETURN_IF_ERROR(dest_->fs()->FsyncDir(dest_->PrefixDir(d)));
  }
  return Status::OK();
}

Status ChunkMover::CloneChunk(const Digest& d) {
  Filesystem* fs = dest_->fs();
  const std::string from = source_->ChunkPath(d);
  const std::string to = dest_->ChunkPath(d);
  PBSKIT_ASSIGN_OR_RETURN(int src_fd, source_->fs()->Open(from, O_RDONLY | O_NOFOLLOW));
  ScopedFd src(source_->fs(), src_fd);
  std::string tmp = to + ".tmp_XXXXXX";
  PBSKIT_ASSIGN_OR_RETURN(int dst_fd, fs->MkTemp(&tmp, 0644));
  ScopedFd dst(fs, dst_fd);
  auto fail = [&](Status s) {
    dst.Reset();
    (void)fs->Unlink(tmp);
    return s;
  };
  if (::ioctl(dst.get(), FICLONE, src.get()) != 0) {
    int err = errno;
    std::string what = "reflink (FICLONE) " + from + " -> " + tmp;
    if (IsUnsupportedHere(err)) return fail(Status::Unsupported(what + ": " + std::strerror(err)));
    return fail(ErrnoStatus(what, err));
  }
  if (dest_->sync_level() == SyncLevel::kFile) {
    if (Status s = fs->Fsync(dst.get()); !s.ok()) return fail(s);
  }
  if (Status s = dst.Close(); !s.ok()) return fail(s);
  if (Status s = fs->Rename(tmp, to); !s.ok()) return fail(s);
  if (dest_->sync_level() == SyncLevel::kFile) {
    PBSKIT_RETURN_IF_ERROR(fs->FsyncDir(dest_->PrefixDir(d)));
  }
  return Status::OK();
}

Status ChunkMover::CopyChunk(const Digest& d, std::vector<uint8_t>* buf, bool have_data) {
  if (!have_data) {
    Status s = ReadSourceChunk(d, buf);
    if (!s.ok()) return s.WithContext("reading source chunk");
  }
  PBSKIT_ASSIGN_OR_RETURN(auto inserted, dest_->InsertChunk(d, *buf));
  counters_->bytes.fetch_add(buf->size());
  if (inserted.existed) {
    counters_->reused.fetch_add(1);
  } else {
    counters_->copied.fetch_add(1);
    counters_->bytes_copied.fetch_add(buf->size());
  }
  return Status::OK();
}

Status ChunkMover::MoveChunks(const std::vector<ChunkJob>& jobs, SnapshotChunks* out,
                              const std::function<void(uint64_t)>& on_bytes) {
  std::vector<std::vector<uint8_t>> bufs(pool_.slot_count());
  std::vector<char> has(pool_.slot_count(), 0);
  std::vector<std::vector<uint8_t>> scratch(pool_.work_threads());
  std::mutex progress_mu;
  auto report = [&](size_t job) {
    if (!on_bytes) return;
    std::lock_guard<std::mutex> l(progress_mu);
    on_bytes(jobs[job].size);
  };
  Status run = pool_.Run(
      jobs.size(),
      [&](size_t job, size_t slot) {
        bool have = false;
        Outcome o = Read(jobs[job], &bufs[slot], &have, out);
        has[slot] = have ? 1 : 0;
        if (o == Outcome::kDone) report(job);
        return o == Outcome::kNeedsWork;
      },
      [&](size_t job, size_t slot, size_t worker) {
        if (!pool_.stopping()) Work(jobs[job], &bufs[slot], has[slot] != 0, &scratch[worker], out);
        report(job);
      });
  std::lock_guard<std::mutex> l(mu_);
  if (!fatal_.ok()) return fatal_;
  return run;
}

}  // namespace pbskit::import_detail
