#include "pbskit/datastore/snapshot_writer.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <utility>

#include "pbskit/datastore/worker_pool.h"
#include "pbskit/formats/chunker.h"
#include "pbskit/formats/crypto.h"
#include "pbskit/formats/data_blob.h"
#include "pbskit/formats/dynamic_index.h"
#include "pbskit/formats/fixed_index.h"
#include "snapshot_writer_internal.h"

namespace pbskit {
namespace {

bool IsPowerOfTwo(uint64_t v) { return v && !(v & (v - 1)); }

// "drive-scsi0.img.fidx" -> "drive-scsi0.img.tmp_fidx" (PBS replaces the last extension).
std::string TempIndexName(const std::string& archive) {
  size_t dot = archive.rfind('.');
  return archive.substr(0, dot) + ".tmp_" + archive.substr(dot + 1);
}

// PBS's owner rule: the owner itself, or the owner is a token of the authenticated user.
bool OwnerMatches(const std::string& owner, const std::string& auth_id) {
  if (owner == auth_id) return true;
  size_t bang = owner.find('!');
  return bang != std::string::npos && owner.substr(0, bang) == auth_id;
}

double SecondsSince(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

ByteSource::~ByteSource() = default;

Result<size_t> FdByteSource::Read(std::span<uint8_t> buf) {
  size_t done = 0;
  while (done < buf.size()) {
    ssize_t n = ::read(fd_, buf.data() + done, buf.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::FromErrno(errno, "read " + name_);
    }
    if (n == 0) break;
    done += static_cast<size_t>(n);
  }
  return done;
}

Result<size_t> MemoryByteSource::Read(std::span<uint8_t> buf) {
  size_t n = std::min(buf.size(), data_.size() - pos_);
  if (n) std::memcpy(buf.data(), data_.data() + pos_, n);
  pos_ += n;
  return n;
}

SnapshotWriter::SnapshotWriter(std::shared_ptr<DataStore> store, SnapshotWriterOptions options)
    : store_(std::move(store)), options_(std::move(options)) {}

SnapshotWriter::~SnapshotWriter() {
  if (!finished_) Abort();
}

Result<std::unique_ptr<SnapshotWriter>> SnapshotWriter::Begin(std::shared_ptr<DataStore> store,
                                                              SnapshotWriterOptions options) {
  if (options.dir.time < 1)
    return Status::InvalidArgument("backup time must be >= 1, got " +
                                   std::to_string(options.dir.time));
  PBSKIT_RETURN_IF_ERROR(CheckBackupId(options.dir.group.id));
  if (options.crypt_mode != CryptMode::kNone && !options.crypt)
    return Status::InvalidArgument(std::string("crypt mode '") +
                                   CryptModeName(options.crypt_mode) + "' needs a key file");
  if (options.crypt_mode == CryptMode::kNone) options.crypt = nullptr;
  std::unique_ptr<SnapshotWriter> w(new SnapshotWriter(store, std::move(options)));
  const SnapshotWriterOptions& o = w->options_;

  if (!o.ns.IsRoot()) {
    PBSKIT_ASSIGN_OR_RETURN(bool ns_exists, store->NamespaceExists(o.ns));
    if (!ns_exists)
      return Status::NotFound("namespace '" + o.ns.ToString() + "' does not exist in datastore '" +
                              store->name() + "'");
  }
  // Shared process lock first: while we hold it, GC cannot start (and if GC runs, we fail).
  auto plock = store->chunk_store().LockShared();
  if (!plock.ok())
    return plock.status().WithContext("unable to get shared lock on datastore '" +
                                      store->name() + "'");
  w->process_lock_ = std::move(plock).value();

  PBSKIT_ASSIGN_OR_RETURN(bool group_existed, store->GroupExists(o.ns, o.dir.group));
  PBSKIT_ASSIGN_OR_RETURN(auto owner_and_lock,
                          store->CreateLockedGroup(o.ns, o.dir.group, o.auth_id));
  w->group_lock_ = std::move(owner_and_lock.second);
  w->created_group_ = !group_existed;
  if (!OwnerMatches(owner_and_lock.first, o.auth_id))
    return Status::PermissionDenied("backup owner check failed (" + o.auth_id +
                                    " != " + owner_and_lock.first + ")");

  // The last finished snapshot is the base unless its verification failed (PBS then skips both
  // the base and the time check).
  PBSKIT_ASSIGN_OR_RETURN(std::optional<BackupDir> last,
                          store->LastFinishedSnapshot(o.ns, o.dir.group));
  if (last) {
    auto manifest = store->LoadManifest(o.ns, *last);
    bool failed = false;
    if (manifest.ok()) {
      const auto* vs = manifest->unprotected.if_contains("verify_state");
      if (vs && vs->is_object()) {
        const auto* state = vs->as_object().if_contains("state");
        failed = state && state->is_string() && state->as_string() == "failed";
      }
    } else {
      return manifest.status().WithContext("previous snapshot " + last->ToString());
    }
    if (!failed) {
      if (o.dir.time <= last->time)
        return Status::InvalidArgument("backup timestamp is older than last backup.");
      auto lock = store->LockSnapshotShared(o.ns, *last);
      if (!lock.ok())
        return lock.status().WithContext("base snapshot is already locked by another operation");
      w->previous_lock_ = std::move(lock).value();
      w->previous_ = last;
    }
  }

  w->snapshot_path_ = store->SnapshotPath(o.ns, o.dir);
  Status st = store->fs()->Mkdir(w->snapshot_path_, 0755);
  if (st.code() == Code::kAlreadyExists) {
    w->finished_ = true;  // not ours: never remove it
    return Status::AlreadyExists("backup directory already exists.");
  }
  if (!st.ok()) {
    w->finished_ = true;
    return st;
  }
  auto snap_lock = store->LockSnapshot(o.ns, o.dir);
  if (!snap_lock.ok()) return w->Fail(snap_lock.status());
  w->snapshot_lock_ = std::move(snap_lock).value();
  return w;
}

Status SnapshotWriter::Fail(Status st) {
  failed_ = true;
  Abort();
  return st;
}

void SnapshotWriter::Abort() {
  if (finished_ || aborted_) return;
  aborted_ = true;
  // Upload threads first: nothing may insert chunks once the process lock is gone.
  if (uploader_) uploader_->Shutdown();
  for (DynamicIndexStream* s : open_streams_) s->writer_ = nullptr;
  open_streams_.clear();
  if (!snapshot_path_.empty()) (void)RemoveTree(store_->fs(), snapshot_path_);
  if (created_group_ && group_lock_) {
    // Leave no trace of a group this session created: owner file and directory if empty.
    std::string group_path = store_->GroupPath(options_.ns, options_.dir.group);
    std::vector<DirEntry> entries;
    if (store_->fs()->ReadDir(group_path, &entries).ok()) {
      bool only_owner = true;
      for (const auto& e : entries)
        if (e.name != "owner") only_owner = false;
      if (only_owner) {
        (void)store_->fs()->Unlink(group_path + "/owner");
        (void)store_->fs()->Rmdir(group_path);
      }
    }
  }
  snapshot_lock_.reset();
  if (!snapshot_path_.empty()) store_->locks().RemoveSnapshotLockFiles(options_.ns, options_.dir);
  previous_lock_.reset();
  group_lock_.reset();
  process_lock_.reset();
}

Status SnapshotWriter::CheckNewArchive(const std::string& archive, ArchiveType want) {
  if (finished_ || aborted_ || failed_)
    return Status::InvalidArgument("snapshot writer is no longer usable (finished or aborted)");
  PBSKIT_RETURN_IF_ERROR(CheckArchiveName(archive));
  if (archive == kManifestBlobName || archive == kClientLogBlobName)
    return Status::InvalidArgument("archive name '" + archive + "' is reserved");
  PBSKIT_ASSIGN_OR_RETURN(ArchiveType type, ArchiveTypeOf(archive));
  if (type != want) {
    static const char* kExt[] = {".fidx", ".didx", ".blob"};
    return Status::InvalidArgument("archive name '" + archive + "' must end in " +
                                   kExt[static_cast<int>(want)]);
  }
  for (const auto& f : files_)
    if (f.filename == archive)
      return Status::InvalidArgument("archive '" + archive + "' was already written");
  for (const DynamicIndexStream* s : open_streams_)
    if (s->archive() == archive)
      return Status::InvalidArgument("archive '" + archive + "' is already open");
  return Status::OK();
}

Status SnapshotWriter::StoreChunk(std::span<const uint8_t> data, Digest* digest,
                                  ArchiveUploadStats* stats) {
  const CryptConfig* crypt = options_.crypt_mode == CryptMode::kEncrypt ? options_.crypt : nullptr;
  *digest = ComputeChunkDigest(data, crypt);
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!session_chunks_.insert(*digest).second) {  // already handled in this session
      stats->reused_size += data.size();
      return Status::OK();
    }
    stats->unique_chunks++;
  }
  ChunkStore& chunks = store_->chunk_store();
  auto existing = chunks.StatChunk(*digest);
  if (existing.ok() && S_ISREG(existing->st_mode) && existing->st_size > 0) {
    PBSKIT_RETURN_IF_ERROR(chunks.TouchChunk(*digest));
    std::lock_guard<std::mutex> lock(mu_);
    stats->reused_chunks++;
    stats->reused_size += data.size();
    upload_count_++;
    upload_duplicates_++;
    upload_size_ += data.size();
    upload_compressed_size_ += static_cast<uint64_t>(existing->st_size);
    return Status::OK();
  }
  if (!existing.ok() && !existing.status().IsNotFound()) return existing.status();

  PBSKIT_ASSIGN_OR_RETURN(DataBlob blob, DataBlob::Encode(data, crypt, options_.compress));
  PBSKIT_ASSIGN_OR_RETURN(ChunkStore::InsertResult ins, chunks.InsertChunk(*digest, blob.raw()));
  std::lock_guard<std::mutex> lock(mu_);
  upload_count_++;
  upload_size_ += data.size();
  upload_compressed_size_ += blob.size();
  if (ins.existed) {  // appeared meanwhile (another writer)
    upload_duplicates_++;
    stats->reused_chunks++;
    stats->reused_size += data.size();
  } else {
    stats->new_chunks++;
    stats->new_size += data.size();
    stats->compressed_size += blob.size();
  }
  return Status::OK();
}

Status SnapshotWriter::WriteIndexFile(const std::string& archive, std::span<const uint8_t> bytes) {
  Filesystem* fs = store_->fs();
  const std::string tmp = snapshot_path_ + "/" + TempIndexName(archive);
  const std::string final_path = snapshot_path_ + "/" + archive;
  PBSKIT_ASSIGN_OR_RETURN(int fd, fs->Open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644));
  ScopedFd sfd(fs, fd);
  Status st = fs->PWriteAll(fd, bytes.data(), bytes.size(), 0);
  if (st.ok() && store_->sync_level() == SyncLevel::kFile) st = fs->Fsync(fd);
  if (st.ok()) st = sfd.Close();
  if (st.ok()) st = fs->Rename(tmp, final_path);
  if (st.ok() && store_->sync_level() == SyncLevel::kFile) st = fs->FsyncDir(snapshot_path_);
  if (!st.ok()) (void)fs->Unlink(tmp);
  return st;
}

Result<ArchiveResult> SnapshotWriter::AddFixedIndex(const std::string& archive,
                                                    ByteSource& source, uint64_t chunk_size) {
  PBSKIT_RETURN_IF_ERROR(CheckNewArchive(archive, ArchiveType::kFixedIndex));
  if (!IsPowerOfTwo(chunk_size) || chunk_size < 65536 || chunk_size > kDefaultFixedChunkSize)
    return Status::InvalidArgument("fixed index chunk size must be a power of two between 64 KiB "
                                   "and 4 MiB, got " + std::to_string(chunk_size));
  auto t0 = std::chrono::steady_clock::now();
  ArchiveResult result;
  ArchiveUploadStats& stats = result.stats;
  WorkerPool pool({.read_threads = 1,
                   .work_threads = options_.work_threads,
                   .slots = options_.work_threads + 2});
  std::vector<std::vector<uint8_t>> bufs(pool.slot_count());
  std::vector<size_t> lens(pool.slot_count());
  std::vector<Digest> digests;  // guarded by mu_ while the pool runs
  uint64_t total = 0;           // touched by the single reader thread only

  Status st = pool.Run(
      SIZE_MAX,
      [&](size_t job, size_t slot) {
        bufs[slot].resize(chunk_size);
        auto n = source.Read(bufs[slot]);
        if (!n.ok()) {
          pool.Stop(n.status());
          return false;
        }
        lens[slot] = *n;
        total += *n;
        if (*n < chunk_size) pool.EndAt(*n ? job + 1 : job);
        return *n > 0;
      },
      [&](size_t job, size_t slot, size_t) {
        Digest d;
        Status s = StoreChunk(std::span<const uint8_t>(bufs[slot].data(), lens[slot]), &d, &stats);
        if (!s.ok()) return pool.Stop(s);
        std::lock_guard<std::mutex> lock(mu_);
        if (digests.size() <= job) digests.resize(job + 1);
        digests[job] = d;
      });
  if (!st.ok()) return Fail(st.WithContext("archive '" + archive + "'"));
  if (total == 0)
    return Fail(Status::InvalidArgument(
        "archive '" + archive + "': the image is empty - a fixed index cannot describe 0 bytes"));

  FixedIndexWriter writer(total, chunk_size);
  if (writer.chunk_count() != digests.size())
    return Fail(Status::Aborted("archive '" + archive + "': chunk count mismatch"));
  for (size_t i = 0; i < digests.size(); ++i) {
    Status s = writer.SetDigest(i, digests[i]);
    if (!s.ok()) return Fail(s);
  }
  Digest csum;
  auto bytes = writer.Finish(&csum);
  if (!bytes.ok()) return Fail(bytes.status());
  Status ws = WriteIndexFile(archive, *bytes);
  if (!ws.ok()) return Fail(ws);

  stats.chunk_count = digests.size();
  stats.size = total;
  stats.seconds = SecondsSince(t0);
  result.info = FileInfo{archive, options_.crypt_mode, total, csum};
  files_.push_back(result.info);
  return result;
}

Result<ArchiveResult> SnapshotWriter::AddDynamicIndex(const std::string& archive,
                                                      ByteSource& source, size_t avg_chunk_size) {
  PBSKIT_RETURN_IF_ERROR(CheckNewArchive(archive, ArchiveType::kDynamicIndex));
  if (!IsPowerOfTwo(avg_chunk_size) || avg_chunk_size < 65536 ||
      avg_chunk_size > kDefaultDynamicChunkSize)
    return Status::InvalidArgument("dynamic chunk size must be a power of two between 64 KiB "
                                   "and 4 MiB, got " + std::to_string(avg_chunk_size));
  auto t0 = std::chrono::steady_clock::now();
  ArchiveResult result;
  ArchiveUploadStats& stats = result.stats;
  Chunker chunker(avg_chunk_size);
  WorkerPool pool({.read_threads = 1,
                   .work_threads = options_.work_threads,
                   .slots = options_.work_threads + 2});
  std::vector<std::vector<uint8_t>> bufs(pool.slot_count());
  std::vector<DynamicEntry> entries;  // guarded by mu_ while the pool runs

  // Reader state (single reader thread): input buffer holding [start, fill), scanned up to scan.
  std::vector<uint8_t> in(chunker.max_size() + (1 << 20));
  size_t start = 0, scan = 0, fill = 0;
  bool eof = false;
  uint64_t offset = 0;
  std::vector<uint64_t> ends;  // end offset per job, written by the reader before hand-off

  Status st = pool.Run(
      SIZE_MAX,
      [&](size_t job, size_t slot) {
        for (;;) {
          if (scan < fill) {
            size_t p = chunker.Scan(std::span<const uint8_t>(in.data() + scan, fill - scan));
            if (p) {
              scan += p;
              break;  // chunk [start, scan)
            }
            scan = fill;
          }
          if (eof) {
            if (scan == start) {
              pool.EndAt(job);
              return false;
            }
            chunker.Reset();
            break;  // final chunk
          }
          if (start > 0) {  // compact, then refill
            std::memmove(in.data(), in.data() + start, fill - start);
            fill -= start;
            scan -= start;
            start = 0;
          }
          auto n = source.Read(std::span<uint8_t>(in.data() + fill, in.size() - fill));
          if (!n.ok()) {
            pool.Stop(n.status());
            return false;
          }
          if (*n == 0) eof = true;
          fill += *n;
        }
        bufs[slot].assign(in.begin() + start, in.begin() + scan);
        offset += scan - start;
        start = scan;
        {
          std::lock_guard<std::mutex> lock(mu_);
          if (ends.size() <= job) ends.resize(job + 1);
          ends[job] = offset;
        }
        return true;
      },
      [&](size_t job, size_t slot, size_t) {
        Digest d;
        Status s = StoreChunk(bufs[slot], &d, &stats);
        if (!s.ok()) return pool.Stop(s);
        std::lock_guard<std::mutex> lock(mu_);
        if (entries.size() <= job) entries.resize(job + 1);
        entries[job] = DynamicEntry{ends[job], d};
      });
  if (!st.ok()) return Fail(st.WithContext("archive '" + archive + "'"));

  DynamicIndexWriter writer;
  for (const auto& e : entries) {
    Status s = writer.Add(e.end, e.digest);
    if (!s.ok()) return Fail(s);
  }
  Digest csum;
  auto bytes = writer.Finish(&csum);
  if (!bytes.ok()) return Fail(bytes.status());
  Status ws = WriteIndexFile(archive, *bytes);
  if (!ws.ok()) return Fail(ws);

  stats.chunk_count = entries.size();
  stats.size = writer.size();
  stats.seconds = SecondsSince(t0);
  result.info = FileInfo{archive, options_.crypt_mode, writer.size(), csum};
  files_.push_back(result.info);
  return result;
}

Result<ArchiveResult> SnapshotWriter::AddBlob(const std::string& archive,
                                              std::span<const uint8_t> data) {
  PBSKIT_RETURN_IF_ERROR(CheckNewArchive(archive, ArchiveType::kBlob));
  auto t0 = std::chrono::steady_clock::now();
  const CryptConfig* crypt = options_.crypt_mode == CryptMode::kEncrypt ? options_.crypt : nullptr;
  auto blob = DataBlob::Encode(data, crypt, options_.compress);
  if (!blob.ok()) return Fail(blob.status().WithContext("archive '" + archive + "'"));
  Status st = WriteFileAtomic(store_->fs(), snapshot_path_ + "/" + archive, blob->raw(),
                              store_->sync_level() == SyncLevel::kFile ? SyncLevel::kFile
                                                                       : SyncLevel::kNone);
  if (!st.ok()) return Fail(st);
  ArchiveResult result;
  result.info = FileInfo{archive, options_.crypt_mode, blob->size(), Sha256(blob->raw())};
  result.stats.size = data.size();
  result.stats.new_size = data.size();
  result.stats.compressed_size = blob->size();
  result.stats.seconds = SecondsSince(t0);
  files_.push_back(result.info);
  return result;
}

Result<Manifest> SnapshotWriter::Finish() {
  if (finished_ || aborted_ || failed_)
    return Status::InvalidArgument("snapshot writer is no longer usable (finished or aborted)");
  if (!open_streams_.empty())
    return Status::InvalidArgument("archive '" + open_streams_.front()->archive() +
                                   "' is still open; close it before finishing the snapshot");
  if (uploader_) uploader_->Shutdown();
  if (files_.empty())
    return Fail(Status::InvalidArgument("backup does not contain valid files (file count == 0)"));
  Manifest m;
  m.backup_type = BackupTypeName(options_.dir.group.type);
  m.backup_id = options_.dir.group.id;
  m.backup_time = options_.dir.time;
  m.files = files_;
  m.unprotected["chunk_upload_stats"] = boost::json::object{
      {"compressed_size", upload_compressed_size_},
      {"count", upload_count_},
      {"duplicates", upload_duplicates_},
      {"size", upload_size_},
  };
  if (options_.crypt) {
    m.unprotected["key-fingerprint"] = options_.crypt->FingerprintString();
    m.Sign(options_.crypt->id_key());
  }
  Status st = store_->StoreManifest(options_.ns, options_.dir, m);
  if (!st.ok()) return Fail(st);
  if (store_->sync_level() == SyncLevel::kFilesystem) {
    Filesystem* fs = store_->fs();
    auto fd = fs->Open(snapshot_path_, O_RDONLY | O_DIRECTORY);
    if (!fd.ok()) return Fail(fd.status());
    ScopedFd sfd(fs, *fd);
    st = fs->SyncFs(*fd);
    if (!st.ok()) return Fail(st);
  } else if (store_->sync_level() == SyncLevel::kFile) {
    st = store_->fs()->FsyncDir(store_->GroupPath(options_.ns, options_.dir.group));
    if (!st.ok()) return Fail(st);
  }
  finished_ = true;
  snapshot_lock_.reset();
  previous_lock_.reset();
  group_lock_.reset();
  process_lock_.reset();
  return m;
}

}  // namespace pbskit
