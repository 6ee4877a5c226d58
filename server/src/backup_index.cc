// Backup session, index writers: creating fixed and dynamic writers, chunk uploads, appends
// and closes with PBS's checks and messages (pbs4: src/api2/backup/environment.rs,
// upload_chunk.rs). The rest of the session is in backup_session.cc.
#include <cstring>

#include "backup_session.h"
#include "pbskit/datastore/fs.h"
#include "pbskit/formats/crypto.h"
#include "pbskit/formats/data_blob.h"
#include "pbskit/formats/hex.h"
#include "pbskit/formats/names.h"

namespace pbskit::server {
namespace {

constexpr uint64_t kFixedChunkSize = 4ull * 1024 * 1024;
constexpr int kMaxWriters = 256;  // the schema caps wid at 256

bool EndsWith(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string Quoted(const std::string& s) { return "\"" + s + "\""; }

// PBS's relative snapshot path as shown in task logs: "ns/a/ns/b/host/x/2024-...Z".
std::string SnapshotName(const BackupNamespace& ns, const BackupDir& dir) {
  std::string out;
  for (const auto& c : ns.components()) out += "ns/" + c + "/";
  return out + dir.ToString();
}

}  // namespace

H2Response BackupSession::CreateDynamicIndex(H2Request&, const Params& params) {
  std::string name(params.at("archive-name").as_string());
  if (!EndsWith(name, ".didx")) return ErrorResponse(400, "wrong archive extension: '" + name + "'");
  if (Status st = EnsureActive(); !st.ok()) return ErrorResponse(st);
  if (dynamic_writers_.size() + fixed_writers_.size() >= kMaxWriters || next_wid_ >= kMaxWriters) {
    return ErrorResponse(400, "too many index writers in one backup session (max " +
                                  std::to_string(kMaxWriters) + ")");
  }
  int wid = ++next_wid_;
  dynamic_writers_.emplace(wid, DynamicWriter{name, DynamicIndexWriter(), 0, 0, {}, false});
  Log("created new dynamic index " + std::to_string(wid) + " (" +
      Quoted(SnapshotName(p_.ns, p_.dir) + "/" + name) + ")");
  return DataResponse(wid);
}

H2Response BackupSession::CreateFixedIndex(H2Request&, const Params& params) {
  std::string name(params.at("archive-name").as_string());
  std::optional<uint64_t> size;
  if (params.contains("size")) size = static_cast<uint64_t>(params.at("size").as_int64());
  if (!EndsWith(name, ".fidx")) return ErrorResponse(400, "wrong archive extension: '" + name + "'");
  if (Status st = EnsureActive(); !st.ok()) return ErrorResponse(st);
  if (dynamic_writers_.size() + fixed_writers_.size() >= kMaxWriters || next_wid_ >= kMaxWriters) {
    return ErrorResponse(400, "too many index writers in one backup session (max " +
                                  std::to_string(kMaxWriters) + ")");
  }
  FixedWriter w{name,
                size ? FixedIndexWriter(*size, kFixedChunkSize)
                     : FixedIndexWriter::Growable(kFixedChunkSize),
                size, 0, 0, {}, false, false};
  if (params.contains("reuse-csum")) {
    std::string csum(params.at("reuse-csum").as_string());
    w.incremental = true;
    if (!size) return ErrorResponse(400, "size is required for incremental backups");
    if (!last_backup_) {
      return ErrorResponse(400, "cannot reuse index - no valid previous backup exists");
    }
    auto old = p_.store->OpenFixedIndex(p_.ns, *last_backup_, name);
    if (!old.ok()) {
      return ErrorResponse(400, "cannot reuse index - no previous backup exists for archive");
    }
    std::string old_csum = ToHex(old->ComputeCsum());
    if (old_csum != csum) {
      return ErrorResponse(400, "expected csum (" + csum + ") doesn't match last backup's (" +
                                    old_csum + "), cannot do incremental backup");
    }
    if (w.index.chunk_count() != old->chunk_count()) {
      return ErrorResponse(400, "cannot reuse index - index sizes not equal (" +
                                    std::to_string(w.index.chunk_count()) + " != " +
                                    std::to_string(old->chunk_count()) + ")");
    }
    for (size_t i = 0; i < old->chunk_count(); ++i) (void)w.index.SetDigest(i, old->digest(i));
  }
  int wid = ++next_wid_;
  fixed_writers_.emplace(wid, std::move(w));
  Log("created new fixed index " + std::to_string(wid) + " (" +
      Quoted(SnapshotName(p_.ns, p_.dir) + "/" + name) + ")");
  return DataResponse(wid);
}

H2Response BackupSession::UploadChunk(H2Request& request, const Params& params, bool fixed) {
  int wid = static_cast<int>(params.at("wid").as_int64());
  auto size = static_cast<uint32_t>(params.at("size").as_int64());
  auto encoded_size = static_cast<size_t>(params.at("encoded-size").as_int64());
  std::string digest_hex(params.at("digest").as_string());
  auto digest = DigestFromHex(digest_hex);
  if (!digest.ok()) return ErrorResponse(400, digest.status().message());
  const std::string& body = request.body;
  if (body.size() > encoded_size) return ErrorResponse(400, "uploaded chunk is larger than announced.");
  if (body.size() != encoded_size) return ErrorResponse(400, "uploaded chunk has unexpected size.");

  std::span<uint8_t> raw(reinterpret_cast<uint8_t*>(request.body.data()), request.body.size());
  if (Status st = CheckBlobHeader(raw, false); !st.ok()) return ErrorResponse(400, st.message());
  bool encrypted = std::memcmp(raw.data(), kEncryptedBlobMagic.data(), 8) == 0 ||
                   std::memcmp(raw.data(), kEncrCompressedBlobMagic.data(), 8) == 0;
  if (!encrypted) {
    // PBS verify_unencrypted: decode, digest first, then the length (expected != got).
    thread_local std::vector<uint8_t> scratch;  // decode buffer, reused by each worker
    if (Status st = DecodeBlob(raw, nullptr, &scratch); !st.ok()) {
      return ErrorResponse(400, st.message());
    }
    if (Sha256(scratch) != *digest) return ErrorResponse(400, "detected chunk with wrong digest.");
    if (scratch.size() != size) {
      return ErrorResponse(400, "detected chunk with wrong length (" + std::to_string(size) +
                                    " != " + std::to_string(scratch.size()) + ")");
    }
  }
  // Never trust the client's CRC.
  if (Status st = RewriteBlobCrc(raw); !st.ok()) return ErrorResponse(400, st.message());
  auto inserted = p_.store->chunk_store().InsertChunk(*digest, raw);
  if (!inserted.ok()) return ErrorResponse(400, inserted.status().message());

  if (!inserted->existed && pacer_) pacer_->Add(raw.size());

  std::lock_guard<std::mutex> lock(chunk_mu_);
  if (Status st = EnsureActive(); !st.ok()) return ErrorResponse(st);
  UploadStatistic* stat = nullptr;
  if (fixed) {
    auto it = fixed_writers_.find(wid);
    if (it == fixed_writers_.end()) {
      return ErrorResponse(400, "fixed writer '" + std::to_string(wid) + "' not registered");
    }
    FixedWriter& w = it->second;
    if (w.closed) {
      return ErrorResponse(400, "fixed writer '" + w.name + "' register chunk failed - already closed");
    }
    if (size > kFixedChunkSize) {
      return ErrorResponse(400, "fixed writer '" + w.name + "' - got large chunk (" +
                                    std::to_string(size) + " > " +
                                    std::to_string(kFixedChunkSize));
    }
    if (size < kFixedChunkSize && ++w.small_chunk_count > 1) {
      return ErrorResponse(400, "fixed writer '" + std::to_string(wid) +
                                    "' - detected multiple end chunks (chunk size too small)");
    }
    stat = &w.stat;
  } else {
    auto it = dynamic_writers_.find(wid);
    if (it == dynamic_writers_.end()) {
      return ErrorResponse(400, "dynamic writer '" + std::to_string(wid) + "' not registered");
    }
    if (it->second.closed) {
      return ErrorResponse(400, "dynamic writer '" + it->second.name +
                                    "' register chunk failed - already closed");
    }
    stat = &it->second.stat;
  }
  stat->count += 1;
  stat->size += size;
  stat->compressed_size += encoded_size;
  if (inserted->existed) stat->duplicates += 1;
  known_chunks_[*digest] = size;
  if (p_.debug) {
    Log("upload_chunk done: " + std::to_string(size) + " bytes, " + digest_hex);
  }
  return DataResponse(boost::json::string(digest_hex));
}

std::variant<BackupSession::AppendEntry, H2Response> BackupSession::ResolveAppendEntry(
    const boost::json::array& digests, const boost::json::array& offsets, size_t i) const {
  std::string hex(digests[i].as_string());
  auto digest = DigestFromHex(hex);
  if (!digest.ok()) return ErrorResponse(400, digest.status().message());
  auto known = known_chunks_.find(*digest);
  if (known == known_chunks_.end()) return ErrorResponse(400, "no such chunk " + hex);
  if (Status st = EnsureActive(); !st.ok()) return ErrorResponse(st);
  return AppendEntry{*digest, static_cast<uint64_t>(offsets[i].as_int64()), known->second};
}

H2Response BackupSession::DynamicAppend(H2Request&, const Params& params) {
  int wid = static_cast<int>(params.at("wid").as_int64());
  const auto& digests = params.at("digest-list").as_array();
  const auto& offsets = params.at("offset-list").as_array();
  if (offsets.size() != digests.size()) {
    return ErrorResponse(400, "offset list has wrong length (" + std::to_string(offsets.size()) +
                                  " != " + std::to_string(digests.size()) + ")");
  }
  for (size_t i = 0; i < digests.size(); ++i) {
    auto resolved = ResolveAppendEntry(digests, offsets, i);
    if (auto* r = std::get_if<H2Response>(&resolved)) return std::move(*r);
    const AppendEntry& e = std::get<AppendEntry>(resolved);
    auto it = dynamic_writers_.find(wid);
    if (it == dynamic_writers_.end()) {
      return ErrorResponse(400, "dynamic writer '" + std::to_string(wid) + "' not registered");
    }
    DynamicWriter& w = it->second;
    if (w.closed) {
      return ErrorResponse(400, "dynamic writer '" + w.name + "' append chunk failed - already closed");
    }
    if (w.offset != e.offset) {
      return ErrorResponse(400, "dynamic writer '" + w.name +
                                    "' append chunk failed - got strange chunk offset (" +
                                    std::to_string(w.offset) + " != " + std::to_string(e.offset) +
                                    ")");
    }
    w.offset += e.size;
    w.chunk_count += 1;
    if (Status st = w.index.Add(w.offset, e.digest); !st.ok()) return ErrorResponse(400, st.message());
  }
  return DataResponse(nullptr);
}

H2Response BackupSession::FixedAppend(H2Request&, const Params& params) {
  int wid = static_cast<int>(params.at("wid").as_int64());
  const auto& digests = params.at("digest-list").as_array();
  const auto& offsets = params.at("offset-list").as_array();
  if (offsets.size() != digests.size()) {
    return ErrorResponse(400, "offset list has wrong length (" + std::to_string(offsets.size()) +
                                  " != " + std::to_string(digests.size()) + ")");
  }
  for (size_t i = 0; i < digests.size(); ++i) {
    auto resolved = ResolveAppendEntry(digests, offsets, i);
    if (auto* r = std::get_if<H2Response>(&resolved)) return std::move(*r);
    const AppendEntry& e = std::get<AppendEntry>(resolved);
    auto it = fixed_writers_.find(wid);
    if (it == fixed_writers_.end()) {
      return ErrorResponse(400, "fixed writer '" + std::to_string(wid) + "' not registered");
    }
    FixedWriter& w = it->second;
    if (w.closed) {
      return ErrorResponse(400, "fixed writer '" + w.name + "' append chunk failed - already closed");
    }
    if (Status st = w.index.AddChunk(e.offset, e.size, e.digest); !st.ok()) {
      return ErrorResponse(400, st.message());
    }
    w.chunk_count += 1;
  }
  return DataResponse(nullptr);
}

Status BackupSession::WriteIndex(const std::string& name, const std::vector<uint8_t>& bytes) {
  return WriteFileAtomic(p_.store->fs(), SnapshotPath() + "/" + name,
                         std::span<const uint8_t>(bytes), p_.store->sync_level());
}

void BackupSession::LogUploadStat(const std::string& name, const Digest& csum,
                                  const std::array<uint8_t, 16>& uuid, uint64_t size,
                                  uint64_t chunk_count, const UploadStatistic& stat) {
  if (!task_) return;
  Log("Upload statistics for '" + name + "'");
  Log("UUID: " + ToHex(std::span<const uint8_t>(uuid)));
  Log("Checksum: " + ToHex(csum));
  Log("Size: " + std::to_string(size));
  Log("Chunk count: " + std::to_string(chunk_count));
  if (size == 0 || chunk_count == 0) return;
  Log("Upload size: " + std::to_string(stat.size) + " (" + std::to_string(stat.size * 100 / size) +
      "%)");
  uint64_t client_dups = chunk_count > stat.count ? chunk_count - stat.count : 0;
  if (client_dups + stat.duplicates > 0) {
    Log("Duplicates: " + std::to_string(client_dups) + "+" + std::to_string(stat.duplicates) +
        " (" + std::to_string((client_dups + stat.duplicates) * 100 / chunk_count) + "%)");
  }
  if (stat.size) Log("Compression: " + std::to_string(stat.compressed_size * 100 / stat.size) + "%");
}

H2Response BackupSession::CloseDynamic(H2Request&, const Params& params) {
  int wid = static_cast<int>(params.at("wid").as_int64());
  auto chunk_count = static_cast<uint64_t>(params.at("chunk-count").as_int64());
  auto size = static_cast<uint64_t>(params.at("size").as_int64());
  std::string csum_hex(params.at("csum").as_string());
  auto csum = DigestFromHex(csum_hex);
  if (!csum.ok()) return ErrorResponse(400, "invalid csum '" + csum_hex + "' - " + csum.status().message());
  if (Status st = EnsureActive(); !st.ok()) return ErrorResponse(st);
  auto it = dynamic_writers_.find(wid);
  if (it == dynamic_writers_.end()) {
    return ErrorResponse(400, "dynamic writer '" + std::to_string(wid) + "' not registered");
  }
  DynamicWriter& w = it->second;
  std::string prefix = "dynamic writer '" + w.name + "' close failed - ";
  if (w.closed) return ErrorResponse(400, prefix + "already closed");
  if (w.chunk_count != chunk_count) {
    return ErrorResponse(400, prefix + "unexpected chunk count (" + std::to_string(w.chunk_count) +
                                  " != " + std::to_string(chunk_count) + ")");
  }
  if (w.offset != size) {
    return ErrorResponse(400, prefix + "unexpected file size (" + std::to_string(w.offset) +
                                  " != " + std::to_string(size) + ")");
  }
  Digest expected{};
  auto bytes = w.index.Finish(&expected);
  if (!bytes.ok()) return ErrorResponse(400, prefix + bytes.status().message());
  // From here on the writer is closed; after a failure it stays registered (and blocks
  // /finish), as in PBS.
  w.closed = true;
  std::string name = w.name;
  UploadStatistic stat = w.stat;
  if (*csum != expected) return ErrorResponse(400, prefix + "got unexpected checksum");
  if (Status st = WriteIndex(name, *bytes); !st.ok()) return ErrorResponse(400, st.message());
  dynamic_writers_.erase(it);
  file_counter_ += 1;
  backup_size_ += size;
  backup_stat_.count += stat.count;
  backup_stat_.size += stat.size;
  backup_stat_.compressed_size += stat.compressed_size;
  backup_stat_.duplicates += stat.duplicates;
  auto parsed = DynamicIndex::Parse(*bytes, name);
  LogUploadStat(name, expected, parsed.ok() ? parsed->uuid() : std::array<uint8_t, 16>{}, size,
                chunk_count, stat);
  Log("successfully closed dynamic index " + std::to_string(wid));
  return DataResponse(nullptr);
}

H2Response BackupSession::CloseFixed(H2Request&, const Params& params) {
  int wid = static_cast<int>(params.at("wid").as_int64());
  auto chunk_count = static_cast<uint64_t>(params.at("chunk-count").as_int64());
  auto size = static_cast<uint64_t>(params.at("size").as_int64());
  std::string csum_hex(params.at("csum").as_string());
  auto csum = DigestFromHex(csum_hex);
  if (!csum.ok()) return ErrorResponse(400, "invalid csum '" + csum_hex + "' - " + csum.status().message());
  if (Status st = EnsureActive(); !st.ok()) return ErrorResponse(st);
  auto it = fixed_writers_.find(wid);
  if (it == fixed_writers_.end()) {
    return ErrorResponse(400, "fixed writer '" + std::to_string(wid) + "' not registered");
  }
  FixedWriter& w = it->second;
  std::string prefix = "fixed writer '" + w.name + "' close failed - ";
  if (w.closed) return ErrorResponse(400, prefix + "already closed");
  if (w.chunk_count != chunk_count) {
    return ErrorResponse(400, prefix + "received wrong number of chunk (" +
                                  std::to_string(w.chunk_count) + " != " +
                                  std::to_string(chunk_count) + ")");
  }
  if (!w.incremental) {
    uint64_t expected_count = w.index.chunk_count();
    if (chunk_count != expected_count) {
      return ErrorResponse(400, prefix + "unexpected chunk count (" +
                                    std::to_string(expected_count) + " != " +
                                    std::to_string(chunk_count) + ")");
    }
    if (w.size && size != *w.size) {
      return ErrorResponse(400, prefix + "unexpected file size (" + std::to_string(*w.size) +
                                    " != " + std::to_string(size) + ")");
    }
    if (size != w.index.size()) {
      return ErrorResponse(400, prefix + "unexpected size (" + std::to_string(size) + " != " +
                                    std::to_string(w.index.size()) + ")");
    }
  }
  Digest expected{};
  auto bytes = w.index.Finish(&expected);
  if (!bytes.ok()) return ErrorResponse(400, prefix + bytes.status().message());
  w.closed = true;
  std::string name = w.name;
  UploadStatistic stat = w.stat;
  if (*csum != expected) return ErrorResponse(400, prefix + "got unexpected checksum");
  if (Status st = WriteIndex(name, *bytes); !st.ok()) return ErrorResponse(400, st.message());
  fixed_writers_.erase(it);
  file_counter_ += 1;
  backup_size_ += size;
  backup_stat_.count += stat.count;
  backup_stat_.size += stat.size;
  backup_stat_.compressed_size += stat.compressed_size;
  backup_stat_.duplicates += stat.duplicates;
  auto parsed = FixedIndex::Parse(*bytes, name);
  LogUploadStat(name, expected, parsed.ok() ? parsed->uuid() : std::array<uint8_t, 16>{}, size,
                chunk_count, stat);
  Log("successfully closed fixed index " + std::to_string(wid));
  return DataResponse(nullptr);
}

}  // namespace pbskit::server
