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
#include "verify_index.h"

namespace pbskit {
namespace {

// One chunk still to check in an index: a sort key (inode or digest prefix) and the entry's
// position, packed into 12 bytes (the list is the one per-chunk structure of an index's check).
struct ChunkListEntry {
  uint32_t key_hi, key_lo, pos;
  static ChunkListEntry Make(uint64_t key, uint32_t pos) {
    return {static_cast<uint32_t>(key >> 32), static_cast<uint32_t>(key), pos};
  }
  uint64_t key() const { return (static_cast<uint64_t>(key_hi) << 32) | key_lo; }
  bool operator<(const ChunkListEntry& o) const {
    return key() != o.key() ? key() < o.key() : pos < o.pos;
  }
};
static_assert(sizeof(ChunkListEntry) == 12);

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

Status VerifyWorker::VerifyIndexChunks(VerifyIndexReader& index, CryptMode crypt_mode) {
  const auto t0 = std::chrono::steady_clock::now();
  std::atomic<uint64_t> errors{0}, read_bytes{0}, decoded_bytes{0};
  const size_t count = index.chunk_count();
  if (count > UINT32_MAX)
    return Status::Unsupported(index.name() + ": " + std::to_string(count) +
                               " index entries are more than verify handles");
  const CryptMode index_mode =
      crypt_mode == CryptMode::kEncrypt ? CryptMode::kEncrypt : CryptMode::kNone;
  ChunkStore& chunks = store_->chunk_store();

  // The chunk list: each digest not yet known to this job once, 12 bytes a chunk. Entries are
  // sorted by key: the chunk file's inode (chunk-order inode; missing chunks get kNoInode and
  // come last) or the digest's first 8 bytes (chunk-order none, re-sorted by position after
  // deduplication). Equal keys mean "maybe the same digest"; the same inode is the same chunk
  // file, anything else is settled by reading the digests back from the index.
  constexpr uint64_t kNoInode = UINT64_MAX;
  std::vector<ChunkListEntry> list;
  list.reserve(count);
  Status scanned = index.Scan(
      [&](size_t pos, const Digest& d) {
        if (verified_.Contains(d)) return Status::OK();
        if (corrupt_.Contains(d)) {
          log_->Info("chunk " + ToHex(d) + " was marked as corrupt");
          errors.fetch_add(1);
          return Status::OK();
        }
        uint64_t key;
        if (options_.inode_order) {
          auto ino = chunks.ChunkInode(d);
          key = ino.ok() ? *ino : kNoInode;
        } else {
          key = LoadLe64(d.data());
        }
        list.push_back(ChunkListEntry::Make(key, static_cast<uint32_t>(pos)));
        return Status::OK();
      },
      nullptr);
  if (!scanned.ok()) return scanned;
  std::sort(list.begin(), list.end());
  size_t kept = 0;
  std::vector<std::pair<Digest, uint32_t>> group;  // only for keys that may hide duplicates
  for (size_t i = 0; i < list.size();) {
    size_t j = i + 1;
    while (j < list.size() && list[j].key() == list[i].key()) ++j;
    if (j - i == 1 || (options_.inode_order && list[i].key() != kNoInode)) {
      list[kept++] = list[i];  // a single entry, or one chunk file listed several times
    } else {
      group.clear();
      uint64_t ignored_length;
      for (size_t k = i; k < j; ++k) {
        Digest d;
        PBSKIT_RETURN_IF_ERROR(index.ReadEntry(list[k].pos, &d, &ignored_length));
        group.emplace_back(d, list[k].pos);
      }
      std::sort(group.begin(), group.end());  // by digest, then position
      const uint64_t key = list[i].key();
      const size_t first = kept;
      for (size_t k = 0; k < group.size(); ++k) {
        if (k > 0 && group[k].first == group[k - 1].first) continue;
        list[kept++] = ChunkListEntry::Make(key, group[k].second);
      }
      std::sort(list.begin() + static_cast<std::ptrdiff_t>(first),
                list.begin() + static_cast<std::ptrdiff_t>(kept));  // by position again
    }
    i = j;
  }
  list.resize(kept);
  std::vector<std::pair<Digest, uint32_t>>().swap(group);
  if (!options_.inode_order) {
    std::sort(list.begin(), list.end(), [](const ChunkListEntry& a, const ChunkListEntry& b) {
      return a.pos < b.pos;
    });
  }

  // What the read stage found out about the chunk in each slot, for the work stage.
  std::vector<Digest> slot_digest(pool_.slot_count());
  std::vector<uint64_t> slot_length(pool_.slot_count());
  const std::string store_name = store_->name();
  auto load_failed = [&](const Digest& d, const std::string& why) {
    return "can't verify chunk, load failed - store '" + store_name + "', unable to load chunk '" +
           ToHex(d) + "' - " + why;
  };

  Status run = pool_.Run(
      list.size(),
      [&](size_t job, size_t slot) {
        if (Status ab = CheckTaskAbort(options_.abort); !ab.ok()) {
          pool_.Stop(std::move(ab));
          return false;
        }
        Digest& d = slot_digest[slot];
        Status st = index.ReadEntry(list[job].pos, &d, &slot_length[slot]);
        if (!st.ok()) {  // the index file, not the chunk: an error, nothing is declared bad
          log_->Info("can't verify chunk, reading index entry " +
                     std::to_string(list[job].pos) + " failed - " + st.message());
          errors.fetch_add(1);
          return false;
        }
        st = chunks.LoadChunkInto(d, &read_bufs_[slot]);
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
        decoded_bytes.fetch_add(slot_length[slot]);
        return true;
      },
      [&](size_t, size_t slot, size_t worker) {
        const Digest& d = slot_digest[slot];
        const uint64_t length = slot_length[slot];
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
          if (st.ok() && out.size() != length)
            st = Status::Corruption("detected chunk with wrong length (" +
                                    std::to_string(length) + " != " +
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
