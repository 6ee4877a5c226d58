// GC phase 1: find every index file and touch the chunks it references.
#include <fcntl.h>
#include <sys/file.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <optional>
#include <thread>
#include <unordered_set>
#include <vector>

#include "gc_internal.h"
#include "pbskit/datastore/locks.h"
#include "pbskit/datastore/lru_cache.h"
#include "pbskit/formats/dynamic_index.h"
#include "pbskit/formats/fixed_index.h"

namespace pbskit::gc_internal {
namespace {

enum class IndexKind { kNone, kFixed, kDynamic };

// ArchiveType::from_path on the last extension.
IndexKind KindOf(const std::string& name) {
  size_t slash = name.rfind('/');
  std::string_view base = std::string_view(name).substr(slash == std::string::npos ? 0 : slash + 1);
  size_t dot = base.rfind('.');
  if (dot == std::string_view::npos || dot == 0) return IndexKind::kNone;
  std::string_view ext = base.substr(dot + 1);
  if (ext == "fidx") return IndexKind::kFixed;
  if (ext == "didx") return IndexKind::kDynamic;
  return IndexKind::kNone;
}

class Marker {
 public:
  Marker(DataStore& store, uint64_t cache_capacity, const std::atomic<bool>* abort,
         GarbageCollectionStatus* status, TaskLogger* log)
      : store_(store), fs_(store.fs()), abort_(abort), status_(status), log_(log) {
    if (cache_capacity > 0) cache_.emplace(static_cast<size_t>(cache_capacity));
    buf_.resize(kBlock);
  }

  // Touches the chunks of one index. NotFound (unchanged status) when the file vanished.
  Status MarkIndex(const std::string& path) {
    PBSKIT_RETURN_IF_ERROR(CheckTaskAbort(abort_));
    IndexKind kind = KindOf(path);
    if (kind == IndexKind::kNone) return Status::InvalidArgument("unexpected archive type");
    auto fd_or = fs_->Open(path, O_RDONLY);
    if (!fd_or.ok()) {
      if (fd_or.status().IsNotFound()) return fd_or.status();
      return Status(fd_or.status().code(),
                    "can't open file '" + DebugQuote(path) + "': " + fd_or.status().message());
    }
    ScopedFd fd(fs_, *fd_or);
    Status st = kind == IndexKind::kFixed ? MarkFixed(fd.get(), path) : MarkDynamic(fd.get(), path);
    return st;
  }

 private:
  static constexpr size_t kBlock = 64 * 1024 - (64 * 1024) % 40;  // whole fidx and didx entries

  Status Corrupt(const char* what, const std::string& path, const std::string& why) {
    return Status::Corruption(std::string("can't open ") + what + " '" + DebugQuote(path) +
                              "': " + why);
  }

  Result<struct stat> ReadHeader(int fd, const std::string& path, const char* what,
                                 const std::array<uint8_t, 8>& magic) {
    PBSKIT_ASSIGN_OR_RETURN(struct stat st, fs_->FStat(fd));
    PBSKIT_ASSIGN_OR_RETURN(size_t n, fs_->PRead(fd, header_, sizeof header_, 0));
    if (n < sizeof header_) return Corrupt(what, path, "index too small (" + std::to_string(n) + " bytes)");
    if (std::memcmp(header_, magic.data(), 8) != 0) return Corrupt(what, path, "got unknown magic number");
    return st;
  }

  Status MarkFixed(int fd, const std::string& path) {
    PBSKIT_ASSIGN_OR_RETURN(struct stat st, ReadHeader(fd, path, "fixed index", kFixedIndexMagic));
    const uint64_t size = LoadLe64(header_ + 64);
    const uint64_t chunk_size = LoadLe64(header_ + 72);
    if (chunk_size == 0 || (chunk_size & (chunk_size - 1)) != 0) {
      return Corrupt("fixed index", path, "invalid chunk size " + std::to_string(chunk_size));
    }
    const uint64_t count = (size + chunk_size - 1) / chunk_size;
    const uint64_t expected = kIndexHeaderSize + count * 32;
    if (static_cast<uint64_t>(st.st_size) != expected) {
      return Corrupt("fixed index", path,
                     "size mismatch (file has " + std::to_string(st.st_size) +
                         " bytes, header implies " + std::to_string(expected) + ")");
    }
    status_->index_file_count += 1;
    status_->index_data_bytes += size;
    return ForEachEntry(fd, path, count, 32, 0);
  }

  Status MarkDynamic(int fd, const std::string& path) {
    PBSKIT_ASSIGN_OR_RETURN(struct stat st, ReadHeader(fd, path, "dynamic index", kDynamicIndexMagic));
    const uint64_t body = static_cast<uint64_t>(st.st_size) - kIndexHeaderSize;
    if (body % kDynamicEntrySize != 0) {
      return Corrupt("dynamic index", path, "got unexpected file size");
    }
    const uint64_t count = body / kDynamicEntrySize;
    uint64_t bytes = 0;
    if (count > 0) {
      uint8_t last[8];
      PBSKIT_ASSIGN_OR_RETURN(size_t n, fs_->PRead(fd, last, 8, static_cast<uint64_t>(st.st_size) - kDynamicEntrySize));
      if (n != 8) return Corrupt("dynamic index", path, "short read");
      bytes = LoadLe64(last);
    }
    status_->index_file_count += 1;
    status_->index_data_bytes += bytes;
    return ForEachEntry(fd, path, count, kDynamicEntrySize, 8);
  }

  // Reads `count` entries of `entry_size` bytes after the header in blocks; the digest sits at
  // `digest_off` within each entry.
  Status ForEachEntry(int fd, const std::string& path, uint64_t count, size_t entry_size,
                      size_t digest_off) {
    const size_t per_block = kBlock / entry_size;
    uint64_t done = 0;
    while (done < count) {
      size_t n = static_cast<size_t>(std::min<uint64_t>(per_block, count - done));
      PBSKIT_ASSIGN_OR_RETURN(size_t got, fs_->PRead(fd, buf_.data(), n * entry_size,
                                                     kIndexHeaderSize + done * entry_size));
      if (got != n * entry_size) {
        return Status::Corruption("index file '" + DebugQuote(path) + "' shrank while reading");
      }
      PBSKIT_RETURN_IF_ERROR(CheckTaskAbort(abort_));  // once per block of entries
      for (size_t i = 0; i < n; ++i) {
        Digest d;
        std::memcpy(d.data(), buf_.data() + i * entry_size + digest_off, 32);
        PBSKIT_RETURN_IF_ERROR(MarkDigest(d, path));
      }
      done += n;
    }
    return Status::OK();
  }

  Status MarkDigest(const Digest& d, const std::string& path) {
    if (cache_) {
      if (cache_->Insert(d)) {
        status_->cache_stats->hits += 1;
        return Status::OK();
      }
      status_->cache_stats->misses += 1;
    }
    ChunkStore& chunks = store_.chunk_store();
    PBSKIT_ASSIGN_OR_RETURN(bool exists, chunks.CondTouchChunk(d));
    if (exists) return Status::OK();
    // Keep bad copies while the chunk is still referenced: a later backup may upload a good one
    // and then GC drops the .bad files once nothing needs them.
    const std::string chunk_path = chunks.ChunkPath(d);
    for (int i = 0; i <= 9; ++i) {
      std::string bad = chunk_path + "." + std::to_string(i) + ".bad";
      Status st = TouchAtime(fs_, bad);
      if (!st.ok() && !st.IsNotFound()) {
        return Status(st.code(), "update atime failed for chunk/file " + DebugQuote(bad) + " - " +
                                     st.message());
      }
    }
    Warn(log_, "warning: unable to access non-existent chunk " + ToHex(d) + ", required by " +
                   DebugQuote(path));
    return Status::OK();
  }

  DataStore& store_;
  Filesystem* fs_;
  const std::atomic<bool>* abort_;
  GarbageCollectionStatus* status_;
  TaskLogger* log_;
  std::optional<DigestLruCache> cache_;
  uint8_t header_[kIndexHeaderSize];
  std::vector<uint8_t> buf_;
};

// PBS list_index_files: every .fidx/.didx below base, skipping hidden entries, no symlinks.
Status ListIndexFiles(DataStore& store, TaskLogger* log, std::unordered_set<std::string>* out) {
  Filesystem* fs = store.fs();
  struct Pending {
    std::string path;
    int depth;
  };
  std::vector<Pending> stack{{store.base(), 0}};
  std::vector<DirEntry> entries;
  while (!stack.empty()) {
    Pending dir = std::move(stack.back());
    stack.pop_back();
    Status st = fs->ReadDir(dir.path, &entries);
    if (!st.ok()) {
      if (st.IsNotFound()) {
        Info(log, "ignoring vanished file: " + DebugQuote(dir.path));
        continue;
      }
      if (st.code() == Code::kPermissionDenied ||
          st.message().find("Permission denied") != std::string::npos) {
        if (dir.depth <= 1 && BaseName(dir.path) == "lost+found") continue;
        return Status::PermissionDenied(
            "cannot continue garbage-collection safely, permission denied on: " +
            DebugQuote(dir.path));
      }
      return Status(st.code(), "unexpected error on datastore traversal: " + st.message() + " - " +
                                   DebugQuote(dir.path));
    }
    for (const auto& e : entries) {
      if (e.name.empty() || e.name[0] == '.') continue;
      std::string path = dir.path + "/" + e.name;
      unsigned char type = e.type;
      if (type == DT_UNKNOWN) {
        auto s = fs->Stat(path, false);
        if (!s.ok()) {
          if (s.status().IsNotFound()) continue;
          return s.status();
        }
        type = S_ISDIR(s->st_mode) ? DT_DIR : S_ISREG(s->st_mode) ? DT_REG : DT_LNK;
      }
      if (type == DT_DIR) {
        stack.push_back({path, dir.depth + 1});
      } else if (type == DT_REG && KindOf(e.name) != IndexKind::kNone) {
        out->insert(std::move(path));
      }
    }
  }
  return Status::OK();
}

// PBS drain_move_journal: index paths recorded by a group/namespace move (PBS >= 4.1.9).
Status DrainMoveJournal(DataStore& store, Marker& marker) {
  Filesystem* fs = store.fs();
  const std::string path = LockRoot() + "/" + store.name() + "/move-journal";
  auto fd_or = fs->Open(path, O_RDWR);
  if (!fd_or.ok()) {
    if (fd_or.status().IsNotFound()) return Status::OK();  // no move ever recorded
    return fd_or.status().WithContext("failed to open move journal");
  }
  ScopedFd fd(fs, *fd_or);
  Status locked;
  for (int i = 0; i < 1000; ++i) {
    locked = fs->Flock(fd.get(), LockMode::kExclusive, true);
    if (!locked.IsBusy()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  PBSKIT_RETURN_IF_ERROR(locked.WithContext("failed to acquire exclusive move-journal lock at " +
                                            DebugQuote(path)));
  PBSKIT_ASSIGN_OR_RETURN(struct stat st, fs->FStat(fd.get()));
  std::string contents(static_cast<size_t>(st.st_size), '\0');
  PBSKIT_ASSIGN_OR_RETURN(size_t n, fs->PRead(fd.get(), contents.data(), contents.size(), 0));
  contents.resize(n);
  size_t pos = 0;
  while (pos < contents.size()) {
    size_t nl = contents.find('\n', pos);
    if (nl == std::string::npos) nl = contents.size();
    std::string entry = contents.substr(pos, nl - pos);
    pos = nl + 1;
    while (!entry.empty() && (entry.back() == ' ' || entry.back() == '\r')) entry.pop_back();
    if (entry.empty() || KindOf(entry) == IndexKind::kNone) continue;
    Status ms = marker.MarkIndex(entry);
    if (ms.IsAborted()) return ms;
    if (!ms.ok() && !ms.IsNotFound()) {
      return ms.WithContext("move-journal: processing '" + entry + "' failed");
    }
  }
  return fs->Ftruncate(fd.get(), 0).WithContext("failed to truncate move journal after drain");
}

}  // namespace

Status MarkUsedChunks(DataStore& store, uint64_t cache_capacity, const std::atomic<bool>* abort,
                      GarbageCollectionStatus* status, TaskLogger* log) {
  // Two passes as PBS 4.x does: a raw walk finds index files wherever they are, the namespace
  // iteration visits them in the expected hierarchy; whatever only the walk found is marked too.
  std::unordered_set<std::string> unprocessed;
  PBSKIT_RETURN_IF_ERROR(ListIndexFiles(store, log, &unprocessed));
  uint64_t index_count = unprocessed.size();
  Marker marker(store, cache_capacity, abort, status, log);
  uint64_t processed = 0;
  uint64_t last_percentage = 0;

  auto namespaces = store.ListNamespaces(BackupNamespace(), /*recursive=*/true);
  if (!namespaces.ok()) return namespaces.status().WithContext("creating namespace iterator failed");
  for (const BackupNamespace& ns : *namespaces) {
    auto groups = store.ListGroups(ns);
    if (!groups.ok()) {
      if (groups.status().IsNotFound()) continue;  // namespace removed meanwhile
      return groups.status().WithContext("iterating backup groups failed");
    }
    for (const BackupGroup& group : *groups) {
      // A prune of the group's newest snapshot racing with a new backup could hide the only
      // index referencing the new backup's known chunks: restart the group (newest first) when
      // its newest snapshot vanished, and finally hold the group lock.
      for (int retry = 0;; ++retry) {
        LockGuardPtr group_lock;
        if (retry == 10) {
          auto l = store.LockGroup(ns, group);
          if (!l.ok()) return l.status().WithContext("exhausted retries and failed to lock group");
          group_lock = std::move(l).value();
        } else if (retry > 10) {
          return Status::Aborted("exhausted retries and unexpected counter overrun");
        }
        auto snapshots = store.ListSnapshots(ns, group);
        if (!snapshots.ok()) {
          auto exists = store.GroupExists(ns, group);
          if (exists.ok() && !*exists) break;
          return snapshots.status().WithContext("listing snapshots failed");
        }
        bool restart = false;
        size_t count = 0;
        for (auto it = snapshots->rbegin(); it != snapshots->rend() && !restart; ++it, ++count) {
          const std::string dir = store.SnapshotPath(ns, it->dir);
          for (const std::string& file : it->files) {
            if (KindOf(file) == IndexKind::kNone) continue;
            const std::string path = dir + "/" + file;
            Status st = marker.MarkIndex(path);
            if (st.IsNotFound()) {
              unprocessed.erase(path);
              if (count == 0) {
                restart = true;
                break;
              }
              continue;
            }
            PBSKIT_RETURN_IF_ERROR(st);
            if (unprocessed.erase(path) == 0) {
              Info(log, "Encountered new index file '" + DebugQuote(path) +
                            "', increment total index file count");
              index_count += 1;
            }
            uint64_t percentage = (processed + 1) * 100 / index_count;
            if (percentage > last_percentage) {
              Info(log, "marked " + std::to_string(percentage) + "% (" +
                            std::to_string(processed + 1) + " of " + std::to_string(index_count) +
                            " index files)");
              last_percentage = percentage;
            }
            processed += 1;
          }
        }
        if (!restart) break;
      }
    }
  }

  std::vector<std::string> strange(unprocessed.begin(), unprocessed.end());
  std::sort(strange.begin(), strange.end());
  uint64_t strange_count = strange.size();
  for (const std::string& path : strange) {
    Status st = marker.MarkIndex(path);
    if (st.IsNotFound()) {
      strange_count -= 1;  // vanished (pruned) meanwhile: not strange
      continue;
    }
    PBSKIT_RETURN_IF_ERROR(st);
    Warn(log, "Marked chunks for unexpected index file at '" + DebugQuote(path) + "'");
  }
  if (strange_count > 0) {
    Warn(log, "Found " + std::to_string(strange_count) +
                  " index files outside of expected directory scheme");
  }
  return DrainMoveJournal(store, marker);
}

}  // namespace pbskit::gc_internal
