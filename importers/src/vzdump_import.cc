// vzdump VM archive (.vma[.zst|.gz|.lzo]) -> PBS snapshot (PXAR-VZDUMP.md §5.2, §5.4).
#include <sys/stat.h>

#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <thread>

#include "pbskit/datastore/fs.h"
#include "pbskit/formats/crypto.h"
#include "pbskit/formats/data_blob.h"
#include "pbskit/formats/vma.h"
#include "pbskit/importers/vzdump_import.h"

namespace pbskit {
namespace {

constexpr uint64_t kChunkSize = kDefaultFixedChunkSize;  // 4 MiB, as proxmox-backup-qemu
constexpr uint32_t kClustersPerChunk = kChunkSize / kVmaClusterSize;
constexpr size_t kMaxGapLines = 100;

struct Assembly {
  std::vector<uint8_t> buf;  // empty while every cluster so far was all-zero
  uint32_t seen = 0;
};

struct DeviceState {
  VmaDevice dev;
  bool skip = false;  // vmstate: never part of a PBS VM snapshot
  std::vector<Digest> digests;
  std::vector<bool> done;
  std::map<uint64_t, Assembly> open;
  ArchiveUploadStats stats;  // updated by the writer under its lock
  uint64_t zero_reused = 0;  // holes after the first one (reader thread only)

  uint64_t chunk_count() const { return (dev.size + kChunkSize - 1) / kChunkSize; }
  uint64_t chunk_len(uint64_t i) const { return std::min(kChunkSize, dev.size - i * kChunkSize); }
  uint32_t clusters_in(uint64_t i) const {
    return static_cast<uint32_t>(
        std::min<uint64_t>(kClustersPerChunk, dev.cluster_count() - i * kClustersPerChunk));
  }
};

// Assembles 4 MiB chunks from the clusters of every device as they arrive (VMA extents
// interleave devices and clusters), and stores each finished chunk through the snapshot
// writer on `threads` upload threads behind a bounded queue, so memory stays a few chunks
// whatever the image size. All-zero chunks (holes) share one stored chunk and are not
// digested again.
class Importer {
 public:
  Importer(SnapshotWriter* writer, VzdumpImportResult* result, size_t threads)
      : writer_(writer), result_(result) {
    for (size_t i = 0; i < threads; ++i) threads_.emplace_back([this] { Loop(); });
  }
  ~Importer() { Shutdown(); }

  void AddDevice(const VmaDevice& d) {
    DeviceState s;
    s.dev = d;
    s.skip = d.name == "vmstate";
    s.digests.resize(s.chunk_count());
    s.done.resize(s.chunk_count(), false);
    devices_[d.id] = std::move(s);
  }

  Status OnCluster(const VmaCluster& c) {
    DeviceState& s = devices_.at(c.dev_id);
    if (s.skip) return Status::OK();
    const uint64_t idx = c.cluster / kClustersPerChunk;
    Assembly& a = s.open[idx];
    if (c.mask != 0) {
      if (a.buf.empty()) a.buf.assign(s.chunk_len(idx), 0);
      const uint64_t off = uint64_t{c.cluster % kClustersPerChunk} * kVmaClusterSize;
      if (off < a.buf.size())
        std::memcpy(a.buf.data() + off, c.data.data(),
                    std::min<uint64_t>(kVmaClusterSize, a.buf.size() - off));
    }
    if (++a.seen == s.clusters_in(idx)) return Close(s, idx);
    return Status::OK();
  }

  // Salvage: closes every chunk still missing clusters, missing parts as zeros.
  Status CloseAll() {
    for (auto& [id, s] : devices_) {
      if (s.skip) continue;
      for (uint64_t i = 0; i < s.chunk_count(); ++i)
        if (!s.done[i]) PBSKIT_RETURN_IF_ERROR(Close(s, i));
    }
    return Status::OK();
  }

  // Waits until every queued chunk is stored; the first upload error, if any.
  Status Drain() {
    std::unique_lock<std::mutex> lock(mu_);
    idle_.wait(lock, [this] { return (queue_.empty() && running_ == 0) || !error_.ok(); });
    return error_;
  }

  // Stops the upload threads (queued chunks are dropped). Idempotent.
  void Shutdown() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
      queue_.clear();
    }
    not_empty_.notify_all();
    not_full_.notify_all();
    for (auto& t : threads_) t.join();
    threads_.clear();
  }

  // Writes the fixed index of every device (after Drain) and sums the chunk counts.
  Status WriteIndexes() {
    for (auto& [id, s] : devices_) {
      if (s.skip) continue;
      s.stats.reused_size += s.zero_reused * kChunkSize;
      PBSKIT_ASSIGN_OR_RETURN(auto ar, writer_->AddFixedIndexFromDigests(
                                           s.dev.name + ".img.fidx", s.dev.size, s.digests,
                                           s.stats));
      result_->chunks_new += ar.stats.new_chunks;
      result_->chunks_reused += ar.stats.chunk_count - ar.stats.new_chunks;
      result_->stored_bytes += ar.stats.compressed_size;
      result_->archives.push_back(ar.info.filename);
    }
    return Status::OK();
  }

 private:
  struct Job {
    DeviceState* s;
    uint64_t idx;
    std::vector<uint8_t> buf;
  };

  Status Close(DeviceState& s, uint64_t idx) {
    auto it = s.open.find(idx);
    std::vector<uint8_t> buf;
    if (it != s.open.end()) {
      buf = std::move(it->second.buf);
      s.open.erase(it);
    }
    s.done[idx] = true;
    const uint64_t len = s.chunk_len(idx);
    if (buf.empty() && len == kChunkSize) {
      if (!zero_digest_) {
        std::vector<uint8_t> zero(kChunkSize, 0);
        auto d = writer_->StoreChunkData(zero, &s.stats);
        if (!d.ok()) return d.status();
        zero_digest_ = *d;
      } else {
        s.zero_reused += 1;
      }
      s.digests[idx] = *zero_digest_;
      return Status::OK();
    }
    if (buf.empty()) buf.assign(len, 0);
    std::unique_lock<std::mutex> lock(mu_);
    not_full_.wait(lock, [this] { return queue_.size() < kQueueCapacity || !error_.ok() || stop_; });
    if (!error_.ok()) return error_;
    if (stop_) return Status::Aborted("import stopped");
    queue_.push_back(Job{&s, idx, std::move(buf)});
    not_empty_.notify_one();
    return Status::OK();
  }

  void Loop() {
    for (;;) {
      Job job;
      {
        std::unique_lock<std::mutex> lock(mu_);
        not_empty_.wait(lock, [this] { return !queue_.empty() || stop_; });
        if (stop_) return;
        job = std::move(queue_.front());
        queue_.pop_front();
        ++running_;
      }
      not_full_.notify_one();
      // Each job writes its own digest slot; the stats are updated under the writer's lock.
      auto d = writer_->StoreChunkData(job.buf, &job.s->stats);
      std::lock_guard<std::mutex> lock(mu_);
      --running_;
      if (d.ok()) {
        job.s->digests[job.idx] = *d;
      } else if (error_.ok()) {
        error_ = d.status().WithContext(job.s->dev.name + " chunk " + std::to_string(job.idx));
        not_full_.notify_all();
      }
      idle_.notify_all();
    }
  }

  static constexpr size_t kQueueCapacity = 4;

  SnapshotWriter* writer_;
  VzdumpImportResult* result_;
  std::map<uint8_t, DeviceState> devices_;
  std::optional<Digest> zero_digest_;

  std::mutex mu_;
  std::condition_variable not_full_, not_empty_, idle_;
  std::deque<Job> queue_;
  size_t running_ = 0;
  bool stop_ = false;
  Status error_;
  std::vector<std::thread> threads_;
};

std::string ArchiveForConfig(const std::string& name) {
  if (name == "qemu-server.conf") return "qemu-server.conf.blob";
  if (name == "qemu-server.fw") return "fw.conf.blob";
  return "";
}

Result<std::optional<std::string>> ReadSideFile(const std::string& path) {
  auto r = ReadWholeFileText(PosixFilesystem(), path);
  if (r.ok()) return std::optional<std::string>(std::move(r).value());
  if (r.status().code() == Code::kNotFound) return std::optional<std::string>();
  return r.status();
}

}  // namespace

Result<VzdumpImportResult> ImportVzdump(std::shared_ptr<DataStore> store, const std::string& path,
                                        const VzdumpImportOptions& options) {
  VzdumpImportResult result;
  result.ns = options.ns;
  const std::string base = BaseName(path);
  auto name = ParseVzdumpFileName(base);
  if (name.ok() && name->format != "vma")
    return Status::InvalidArgument("'" + base +
                                   "' is a container archive: importing vzdump-lxc tar "
                                   "archives is not supported (only VM archives, .vma)");
  if (!name.ok() && !options.backup_id) return name.status();

  struct stat st {};
  uint64_t file_size = stat(path.c_str(), &st) == 0 ? static_cast<uint64_t>(st.st_size) : 0;
  PBSKIT_ASSIGN_OR_RETURN(auto source,
                          OpenVzdumpStream(path, &result.compression, &result.file_bytes));
  VmaReader reader([&source](std::span<uint8_t> b) { return source->Read(b); }, base);
  PBSKIT_ASSIGN_OR_RETURN(const VmaHeader* header, reader.ReadHeader());

  BackupDir dir;
  dir.group.type = BackupType::kVm;
  dir.group.id = options.backup_id ? *options.backup_id : name->vmid;
  PBSKIT_RETURN_IF_ERROR(CheckBackupId(dir.group.id));
  if (options.backup_time) {
    dir.time = *options.backup_time;
  } else if (name.ok()) {
    PBSKIT_ASSIGN_OR_RETURN(dir.time, VzdumpStampToEpoch(name->stamp, options.time_zone));
  } else {
    dir.time = header->ctime;  // a few seconds after the real backup start
  }
  result.dir = dir;

  SnapshotWriterOptions wo;
  wo.ns = options.ns;
  wo.dir = dir;
  wo.auth_id = options.auth_id;
  PBSKIT_ASSIGN_OR_RETURN(auto writer, SnapshotWriter::Begin(store, wo));

  for (const auto& cfg : header->configs) {
    std::string archive = ArchiveForConfig(cfg.name);
    if (archive.empty()) continue;  // nothing in a PBS VM snapshot corresponds to it
    PBSKIT_ASSIGN_OR_RETURN(auto ar, writer->AddBlob(archive, cfg.data));
    result.archives.push_back(ar.info.filename);
  }

  Importer imp(writer.get(), &result, 2);
  for (const auto& d : header->devices) {
    imp.AddDevice(d);
    if (d.name != "vmstate") result.image_bytes += d.size;
  }
  Status damage;
  uint64_t clusters = 0;
  for (;;) {
    auto c = reader.Next();
    if (!c.ok()) {
      // A read error of the file is not damage of the archive: never salvage it.
      if (c.status().IsIoError()) return c.status();
      damage = c.status();
      break;
    }
    if (!*c) {
      damage = reader.CheckComplete();
      break;
    }
    PBSKIT_RETURN_IF_ERROR(imp.OnCluster(**c));
    if (options.progress && ++clusters % 64 == 0) options.progress(result.file_bytes, file_size);
  }
  result.archive_bytes = reader.bytes_read();
  if (!damage.ok()) {
    if (!options.salvage)
      return damage.WithContext("refusing to import '" + base +
                                "' (use --salvage to import it with the missing data as zeros)");
    result.damage = damage.ToString();
    if (!reader.damage())
      result.damage += "; intact up to byte " + std::to_string(reader.intact_bytes());
    size_t lines = 0, more = 0;
    for (const auto& d : header->devices) {
      if (d.name == "vmstate") continue;
      for (auto [a, b] : reader.MissingClusters(d.id)) {
        if (lines++ >= kMaxGapLines) {
          ++more;
          continue;
        }
        uint64_t start = uint64_t{a} * kVmaClusterSize;
        uint64_t end = std::min<uint64_t>((uint64_t{b} + 1) * kVmaClusterSize, d.size);
        result.gaps.push_back(d.name + ": clusters " + std::to_string(a) + "-" +
                              std::to_string(b) + " missing (bytes " + std::to_string(start) +
                              "-" + std::to_string(end - 1) + " are zeros)");
      }
    }
    if (more) result.gaps.push_back("... and " + std::to_string(more) + " more gaps");
    PBSKIT_RETURN_IF_ERROR(imp.CloseAll());
  }
  if (options.progress) options.progress(result.file_bytes, file_size);

  PBSKIT_RETURN_IF_ERROR(imp.Drain());
  imp.Shutdown();
  PBSKIT_RETURN_IF_ERROR(imp.WriteIndexes());
  if (result.archives.empty())
    return Status::InvalidArgument("'" + base + "' holds neither a VM config nor a disk");
  PBSKIT_RETURN_IF_ERROR(writer->Finish().status());

  // Side files of the dump directory (§4.1), applied to the finished snapshot.
  const std::string dirpath = path.substr(0, path.size() - base.size());
  PBSKIT_ASSIGN_OR_RETURN(auto notes, ReadSideFile(path + ".notes"));
  std::string text = notes ? *notes : "";
  if (!result.damage.empty()) {
    if (!text.empty() && text.back() != '\n') text += "\n";
    if (!text.empty()) text += "\n";
    text += "Imported with --salvage from " + base + ": " + result.damage + "\n";
    for (const auto& g : result.gaps) text += "- " + g + "\n";
  }
  if (!text.empty()) PBSKIT_RETURN_IF_ERROR(store->SetSnapshotNotes(options.ns, dir, text));
  struct stat pst {};
  if (stat((path + ".protected").c_str(), &pst) == 0)
    PBSKIT_RETURN_IF_ERROR(store->SetProtected(options.ns, dir, true));
  if (name.ok()) {
    PBSKIT_ASSIGN_OR_RETURN(auto log, ReadSideFile(dirpath + name->log_name));
    if (log) {
      std::span<const uint8_t> bytes(reinterpret_cast<const uint8_t*>(log->data()), log->size());
      PBSKIT_ASSIGN_OR_RETURN(DataBlob blob, DataBlob::Encode(bytes, nullptr, true));
      PBSKIT_RETURN_IF_ERROR(WriteFileAtomic(
          store->fs(), JoinPath(store->SnapshotPath(options.ns, dir), kClientLogBlobName),
          blob.raw(), store->sync_level()));
    }
  }
  return result;
}

}  // namespace pbskit
