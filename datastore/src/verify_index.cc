// VerifyIndexReader (verify_index.h): verify's streaming, pread-based access to index files.
#include "verify_index.h"

#include <fcntl.h>

#include <algorithm>
#include <bit>
#include <cstring>
#include <vector>

#include "pbskit/formats/crypto.h"
#include "pbskit/formats/dynamic_index.h"
#include "pbskit/formats/fixed_index.h"

namespace pbskit {
namespace {

constexpr size_t kFixedEntrySize = 32;
constexpr size_t kScanEntries = 2048;  // entries per read while scanning (64-80 KiB)

Status ReadExactly(Filesystem* fs, int fd, uint8_t* buf, size_t n, uint64_t off,
                   const std::string& name) {
  auto got = fs->PRead(fd, buf, n, off);
  if (!got.ok()) return got.status().WithContext("read " + name);
  if (*got != n)
    return Status::IoError("read " + name + ": short read (" + std::to_string(*got) + " of " +
                           std::to_string(n) + " bytes at offset " + std::to_string(off) + ")");
  return Status::OK();
}

}  // namespace

Result<VerifyIndexReader> VerifyIndexReader::Open(const DataStore& store, const BackupNamespace& ns,
                                                  const BackupDir& dir, const std::string& archive,
                                                  ArchiveType type) {
  PBSKIT_RETURN_IF_ERROR(CheckArchiveName(archive));
  if (type == ArchiveType::kBlob)
    return Status::InvalidArgument("'" + archive + "' is a blob, not an index");
  VerifyIndexReader r;
  r.fs_ = store.fs();
  r.fixed_ = type == ArchiveType::kFixedIndex;
  r.name_ = store.SnapshotPath(ns, dir) + "/" + archive;
  auto fd = r.fs_->Open(r.name_, O_RDONLY | O_CLOEXEC);
  if (!fd.ok()) {
    if (fd.status().IsNotFound()) {
      // The datastore's own wording for a file missing from a snapshot.
      auto whole = store.ReadSnapshotFile(ns, dir, archive);
      if (!whole.ok()) return whole.status();
    }
    return fd.status().WithContext("open " + r.name_);
  }
  r.fd_ = ScopedFd(r.fs_, *fd);
  PBSKIT_ASSIGN_OR_RETURN(struct stat st, r.fs_->FStat(r.fd_.get()));
  const uint64_t file_size = static_cast<uint64_t>(st.st_size);
  const char* kind = r.fixed_ ? "fixed" : "dynamic";
  if (file_size < kIndexHeaderSize) {
    return Status::Corruption(r.name_ + ": " + kind + " index too short (" +
                              std::to_string(file_size) + " bytes, header needs " +
                              std::to_string(kIndexHeaderSize) + ")");
  }
  uint8_t header[80];
  PBSKIT_RETURN_IF_ERROR(ReadExactly(r.fs_, r.fd_.get(), header, sizeof header, 0, r.name_));
  const auto& magic = r.fixed_ ? kFixedIndexMagic : kDynamicIndexMagic;
  if (!std::equal(magic.begin(), magic.end(), header)) {
    return Status::Corruption(r.name_ + ": wrong " + kind + " index magic (got " +
                              ToHex(std::span<const uint8_t>(header, 8)) + ", expected " +
                              ToHex(magic) + ")");
  }
  const uint64_t table = file_size - kIndexHeaderSize;
  if (r.fixed_) {
    r.size_ = LoadLe64(header + 64);
    r.chunk_size_ = LoadLe64(header + 72);
    if (r.chunk_size_ == 0 || !std::has_single_bit(r.chunk_size_)) {
      return Status::Corruption(r.name_ + ": fixed index chunk size " +
                                std::to_string(r.chunk_size_) + " is not a power of two");
    }
    if (r.size_ == 0) return Status::Corruption(r.name_ + ": fixed index image size is 0");
    r.count_ = (r.size_ - 1) / r.chunk_size_ + 1;
    if (r.count_ > table / kFixedEntrySize || table != r.count_ * kFixedEntrySize) {
      return Status::Corruption(r.name_ + ": fixed index size mismatch (image size " +
                                std::to_string(r.size_) + " with chunk size " +
                                std::to_string(r.chunk_size_) + " needs " +
                                std::to_string(r.count_) + " digests, file holds " +
                                std::to_string(table) + " table bytes)");
    }
  } else {
    if (table % kDynamicEntrySize != 0) {
      return Status::Corruption(r.name_ + ": dynamic index entry table of " +
                                std::to_string(table) + " bytes is not a multiple of 40");
    }
    r.count_ = table / kDynamicEntrySize;
  }
  return r;
}

Status VerifyIndexReader::Scan(const std::function<Status(size_t pos, const Digest& d)>& fn,
                               Digest* csum) {
  const size_t entry = fixed_ ? kFixedEntrySize : kDynamicEntrySize;
  std::vector<uint8_t> buf(kScanEntries * entry);
  Sha256Stream sha;
  uint64_t prev_end = 0;
  Digest d;
  for (uint64_t first = 0; first < count_; first += kScanEntries) {
    const size_t n = static_cast<size_t>(std::min<uint64_t>(kScanEntries, count_ - first));
    PBSKIT_RETURN_IF_ERROR(ReadExactly(fs_, fd_.get(), buf.data(), n * entry,
                                       kIndexHeaderSize + first * entry, name_));
    if (csum) sha.Update(std::span<const uint8_t>(buf.data(), n * entry));
    for (size_t i = 0; i < n; ++i) {
      const uint8_t* e = buf.data() + i * entry;
      if (!fixed_) {
        const uint64_t end = LoadLe64(e);
        if (end <= prev_end) {
          return Status::Corruption(name_ + ": dynamic index entry " + std::to_string(first + i) +
                                    " ends at " + std::to_string(end) +
                                    ", not after the previous end " + std::to_string(prev_end));
        }
        prev_end = end;
        e += 8;
      }
      if (fn) {
        std::memcpy(d.data(), e, d.size());
        PBSKIT_RETURN_IF_ERROR(fn(static_cast<size_t>(first + i), d));
      }
    }
  }
  if (!fixed_) size_ = prev_end;
  if (csum) *csum = sha.Finish();
  return Status::OK();
}

Status VerifyIndexReader::ReadEntry(size_t pos, Digest* digest, uint64_t* length) const {
  if (fixed_) {
    PBSKIT_RETURN_IF_ERROR(ReadExactly(fs_, fd_.get(), digest->data(), digest->size(),
                                       kIndexHeaderSize + pos * kFixedEntrySize, name_));
    const uint64_t start = static_cast<uint64_t>(pos) * chunk_size_;
    *length = std::min(start + chunk_size_, size_) - start;
    return Status::OK();
  }
  // The previous entry (for its end) and this one, in one read.
  uint8_t buf[2 * kDynamicEntrySize] = {};
  const uint64_t off = kIndexHeaderSize + pos * kDynamicEntrySize;
  if (pos == 0) {
    PBSKIT_RETURN_IF_ERROR(
        ReadExactly(fs_, fd_.get(), buf + kDynamicEntrySize, kDynamicEntrySize, off, name_));
  } else {
    PBSKIT_RETURN_IF_ERROR(
        ReadExactly(fs_, fd_.get(), buf, sizeof buf, off - kDynamicEntrySize, name_));
  }
  const uint64_t prev = LoadLe64(buf), end = LoadLe64(buf + kDynamicEntrySize);
  *length = end - prev;
  std::memcpy(digest->data(), buf + kDynamicEntrySize + 8, digest->size());
  return Status::OK();
}

}  // namespace pbskit
