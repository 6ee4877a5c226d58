// Verify, chunk phase: the per-index chunk check on the worker pool, bad-chunk renaming, and
// blob checks. The snapshot/group/datastore walk is in verify.cc.
#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstring>

#include "pbskit/datastore/verify.h"
#include "pbskit/formats/crypto.h"
#include "pbskit/formats/data_blob.h"

namespace pbskit {
namespace {

uint64_t HashDigest(const Digest& d) {
  uint64_t h;
  std::memcpy(&h, d.data(), sizeof h);
  return h;
}

bool IsEncryptedMagic(std::span<const uint8_t> raw) {
  return raw.size() >= 8 && (std::memcmp(raw.data(), kEncryptedBlobMagic.data(), 8) == 0 ||
                             std::memcmp(raw.data(), kEncrCompressedBlobMagic.data(), 8) == 0);
}

// Rust's Debug form of CryptMode, as PBS prints it in the task log.
const char* CryptModeDebug(CryptMode m) {
  switch (m) {
    case CryptMode::kNone: return "None";
    case CryptMode::kEncrypt: return "Encrypt";
    case CryptMode::kSignOnly: return "SignOnly";
  }
  return "None";
}

}  // namespace

// ---- DigestSet ----

DigestSet::DigestSet() : slots_(1024), used_(1024, 0) {}

bool DigestSet::Contains(const Digest& d) const {
  std::lock_guard<std::mutex> lock(mu_);
  size_t mask = slots_.size() - 1;
  for (size_t i = HashDigest(d) & mask;; i = (i + 1) & mask) {
    if (!used_[i]) return false;
    if (slots_[i] == d) return true;
  }
}

bool DigestSet::InsertLocked(const Digest& d) {
  size_t mask = slots_.size() - 1;
  for (size_t i = HashDigest(d) & mask;; i = (i + 1) & mask) {
    if (!used_[i]) {
      used_[i] = 1;
      slots_[i] = d;
      ++count_;
      return true;
    }
    if (slots_[i] == d) return false;
  }
}

bool DigestSet::Insert(const Digest& d) {
  std::lock_guard<std::mutex> lock(mu_);
  if ((count_ + 1) * 2 > slots_.size()) {  // keep the load factor <= 1/2
    std::vector<Digest> old_slots(slots_.size() * 2);
    std::vector<uint8_t> old_used(used_.size() * 2, 0);
    old_slots.swap(slots_);
    old_used.swap(used_);
    count_ = 0;
    for (size_t i = 0; i < old_slots.size(); ++i)
      if (old_used[i]) InsertLocked(old_slots[i]);
  }
  return InsertLocked(d);
}

size_t DigestSet::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return count_;
}

// ---- chunk checks ----

void VerifyWorker::MarkCorrupt(const Digest& d, const std::string& message, bool rename,
                               std::atomic<uint64_t>* errors) {
  corrupt_.Insert(d);
  log_->Info(message);
  errors->fetch_add(1);
  if (!rename) return;
  auto renamed = store_->chunk_store().RenameCorruptChunk(d);
  if (renamed.ok()) {
    log_->Info("corrupted chunk renamed to \"" + *renamed + "\"");
  } else if (!renamed.status().IsNotFound()) {
    log_->Info("could not rename corrupted chunk \"" + store_->chunk_store().ChunkPath(d) +
               "\" - " + renamed.status().message());
  }
}

Status VerifyWorker::VerifyIndexChunks(const FixedIndex* fixed, const DynamicIndex* dynamic,
                                       CryptMode crypt_mode) {
  const auto t0 = std::chrono::steady_clock::now();
  std::atomic<uint64_t> errors{0}, read_bytes{0}, decoded_bytes{0};
  const size_t count = fixed ? fixed->chunk_count() : dynamic->chunk_count();
  auto digest_at = [&](size_t i) -> const Digest& {
    return fixed ? fixed->digest(i) : dynamic->entry(i).digest;
  };
  auto size_at = [&](size_t i) -> uint64_t {
    auto [s, e] = fixed ? fixed->chunk_range(i) : dynamic->chunk_range(i);
    return e - s;
  };
  const CryptMode index_mode =
      crypt_mode == CryptMode::kEncrypt ? CryptMode::kEncrypt : CryptMode::kNone;
  ChunkStore& chunks = store_->chunk_store();

  auto skip_chunk = [&](const Digest& d) {
    if (verified_.Contains(d)) return true;
    if (corrupt_.Contains(d)) {
      log_->Info("chunk " + ToHex(d) + " was marked as corrupt");
      errors.fetch_add(1);
      return true;
    }
    return false;
  };

  // The chunk list: each digest once, in inode order (missing chunks last) unless disabled.
  std::vector<std::pair<uint64_t, uint32_t>> list;
  list.reserve(count);
  {
    DigestSet seen;
    for (size_t pos = 0; pos < count; ++pos) {
      const Digest& d = digest_at(pos);
      if (skip_chunk(d) || !seen.Insert(d)) continue;
      uint64_t ino = 0;
      if (options_.inode_order) {
        auto r = chunks.ChunkInode(d);
        ino = r.ok() ? *r : UINT64_MAX;
      }
      list.emplace_back(ino, static_cast<uint32_t>(pos));
    }
  }
  if (options_.inode_order) std::stable_sort(list.begin(), list.end());

  const std::string store_name = store_->name();
  auto load_failed = [&](const Digest& d, const std::string& why) {
    return "can't verify chunk, load failed - store '" + store_name + "', unable to load chunk '" +
           ToHex(d) + "' - " + why;
  };

  Status run = pool_.Run(
      list.size(),
      [&](size_t job, size_t slot) {
        const size_t pos = list[job].second;
        const Digest& d = digest_at(pos);
        if (skip_chunk(d)) return false;  // another index of this job got there first
        Status st = chunks.LoadChunkInto(d, &read_bufs_[slot]);
        if (!st.ok()) {
          if (st.IsIoError()) {  // transient: an error, but the chunk is not declared bad
            log_->Info(load_failed(d, st.message()));
            errors.fetch_add(1);
          } else {
            MarkCorrupt(d, load_failed(d, st.message()), /*rename=*/true, &errors);
          }
          return false;
        }
        read_bytes.fetch_add(read_bufs_[slot].size());
        decoded_bytes.fetch_add(size_at(pos));
        return true;
      },
      [&](size_t job, size_t slot, size_t worker) {
        const size_t pos = list[job].second;
        const Digest& d = digest_at(pos);
        const std::vector<uint8_t>& raw = read_bufs_[slot];
        Status st = CheckBlobHeader(raw, /*check_crc=*/true);
        if (!st.ok()) {
          MarkCorrupt(d, load_failed(d, st.message()), /*rename=*/true, &errors);
          return;
        }
        const bool encrypted = IsEncryptedMagic(raw);
        const CryptMode chunk_mode = encrypted ? CryptMode::kEncrypt : CryptMode::kNone;
        if (chunk_mode != index_mode) {
          log_->Info(std::string("chunk CryptMode ") + CryptModeDebug(chunk_mode) +
                     " does not match index CryptMode " + CryptModeDebug(index_mode) +
                     " (chunk " + ToHex(d) + ")");
          errors.fetch_add(1);
        }
        if (!encrypted) {  // encrypted chunks: CRC only (no key on the server)
          std::vector<uint8_t>& out = decode_bufs_[worker];
          st = DecodeBlob(raw, nullptr, &out);
          if (st.ok() && Sha256(out) != d)
            st = Status::Corruption("detected chunk with wrong digest.");
          if (st.ok() && out.size() != size_at(pos))
            st = Status::Corruption("detected chunk with wrong length (" +
                                    std::to_string(size_at(pos)) + " != " +
                                    std::to_string(out.size()) + ")");
          if (!st.ok()) {
            MarkCorrupt(d, "can't verify chunk with digest " + ToHex(d) + " - " + st.message(),
                        /*rename=*/true, &errors);
            return;
          }
        }
        verified_.Insert(d);
      });
  if (!run.ok()) return run;

  const double elapsed =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double read_mib = static_cast<double>(read_bytes.load()) / (1024.0 * 1024.0);
  const double decoded_mib = static_cast<double>(decoded_bytes.load()) / (1024.0 * 1024.0);
  const double div = elapsed > 0 ? elapsed : 1e-9;
  char line[256];
  std::snprintf(line, sizeof line,
                "  verified %.2f/%.2f MiB in %.2f seconds, speed %.2f/%.2f MiB/s (%" PRIu64
                " errors)",
                read_mib, decoded_mib, elapsed, read_mib / div, decoded_mib / div, errors.load());
  log_->Info(line);
  stats_.read_bytes += read_bytes.load();
  stats_.decoded_bytes += decoded_bytes.load();
  if (errors.load() > 0) return Status::Corruption("chunks could not be verified");
  return Status::OK();
}

Status VerifyWorker::VerifyBlob(const BackupNamespace& ns, const BackupDir& dir,
                                const FileInfo& info) {
  PBSKIT_ASSIGN_OR_RETURN(std::vector<uint8_t> raw,
                          store_->ReadSnapshotFile(ns, dir, info.filename));
  PBSKIT_RETURN_IF_ERROR(CheckBlobHeader(raw, /*check_crc=*/true));
  if (raw.size() != info.size)
    return Status::Corruption("wrong size (" + std::to_string(info.size) +
                              " != " + std::to_string(raw.size()) + ")");
  if (Sha256(raw) != info.csum) return Status::Corruption("wrong index checksum");
  if (!IsEncryptedMagic(raw)) {
    std::vector<uint8_t> out;
    PBSKIT_RETURN_IF_ERROR(DecodeBlob(raw, nullptr, &out));
  }
  return Status::OK();
}

}  // namespace pbskit
