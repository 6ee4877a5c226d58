#include "pbskit/datastore/archive_reader.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "pbskit/formats/crypto.h"
#include "pbskit/formats/data_blob.h"

namespace pbskit {
namespace {

bool EndsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

bool IsEncryptedMagic(std::span<const uint8_t> raw) {
  return raw.size() >= 8 && (std::memcmp(raw.data(), kEncryptedBlobMagic.data(), 8) == 0 ||
                             std::memcmp(raw.data(), kEncrCompressedBlobMagic.data(), 8) == 0);
}

// Writes all of `data` to fd (handles short writes and EINTR).
Status WriteAllFd(int fd, std::span<const uint8_t> data, const std::string& what) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::FromErrno(errno, "write " + what);
    }
    done += static_cast<size_t>(n);
  }
  return Status::OK();
}

}  // namespace

std::string ServerArchiveName(std::string_view name) {
  if (EndsWith(name, ".fidx") || EndsWith(name, ".didx") || EndsWith(name, ".blob"))
    return std::string(name);
  for (std::string_view ext : {".pxar", ".mpxar", ".ppxar", ".pcat1"})
    if (EndsWith(name, ext)) return std::string(name) + ".didx";
  if (EndsWith(name, ".img")) return std::string(name) + ".fidx";
  return std::string(name) + ".blob";
}

Status CheckManifestKey(const Manifest& manifest, const CryptConfig* crypt) {
  std::optional<std::string> fp_text = manifest.KeyFingerprint();
  if (fp_text) {
    if (!crypt)
      return Status::InvalidArgument("missing key - manifest was created with key " + *fp_text);
    auto fp = ParseFingerprint(*fp_text);
    if (!fp.ok())
      return Status::Corruption("manifest key-fingerprint is malformed: " +
                                fp.status().message());
    if (*fp != crypt->Fingerprint())
      return Status::InvalidArgument("wrong key - manifest's key " + FormatFingerprint(*fp) +
                                     " does not match provided key " +
                                     crypt->FingerprintString());
  }
  if (crypt && manifest.signature) {
    std::string expected = ToHex(manifest.ComputeSignature(crypt->id_key()));
    if (*manifest.signature != expected)
      return Status::Corruption("wrong signature in manifest");
  }
  return Status::OK();
}

Status DecodeAndCheckChunk(std::span<const uint8_t> raw, const Digest& digest,
                           uint64_t expected_size, CryptMode index_mode, const CryptConfig* crypt,
                           std::vector<uint8_t>* out) {
  auto fail = [&](const Status& st) {
    return Status(st.code(), "chunk " + ToHex(digest) + ": " + st.message());
  };
  Status st = CheckBlobHeader(raw, /*check_crc=*/true);
  if (!st.ok()) return fail(st);
  bool encrypted = IsEncryptedMagic(raw);
  if (encrypted != (index_mode == CryptMode::kEncrypt))
    return fail(Status::Corruption(std::string("Index and chunk CryptMode don't match (index ") +
                                   CryptModeName(index_mode) + ", chunk " +
                                   (encrypted ? "encrypt" : "none") + ")"));
  st = DecodeBlob(raw, encrypted ? crypt : nullptr, out);
  if (!st.ok()) return fail(st);
  if (ComputeChunkDigest(*out, encrypted ? crypt : nullptr) != digest)
    return fail(Status::Corruption("detected chunk with wrong digest."));
  if (out->size() != expected_size)
    return fail(Status::Corruption("detected chunk with wrong length (" +
                                   std::to_string(expected_size) +
                                   " != " + std::to_string(out->size()) + ")"));
  return Status::OK();
}

Result<std::unique_ptr<ArchiveReader>> ArchiveReader::Open(std::shared_ptr<DataStore> store,
                                                           const BackupNamespace& ns,
                                                           const BackupDir& dir,
                                                           const std::string& archive,
                                                           const CryptConfig* crypt,
                                                           bool check_manifest_key) {
  if (archive == kManifestBlobName)
    return Status::InvalidArgument("'index.json.blob' is the manifest, not an archive");
  std::unique_ptr<ArchiveReader> r(new ArchiveReader());
  r->store_ = store;
  r->crypt_ = crypt;
  PBSKIT_ASSIGN_OR_RETURN(r->manifest_, store->LoadManifest(ns, dir));
  // rsa-encrypted.key.blob is readable without the key (it is how the key is recovered).
  bool key_blob = archive == "rsa-encrypted.key.blob";
  if (check_manifest_key && !(key_blob && !crypt))
    PBSKIT_RETURN_IF_ERROR(CheckManifestKey(r->manifest_, crypt));

  const FileInfo* info = r->manifest_.Lookup(archive);
  if (!info) return Status::NotFound("manifest does not contain file '" + archive + "'");
  r->info_ = *info;
  PBSKIT_ASSIGN_OR_RETURN(r->type_, ArchiveTypeOf(archive));
  // Blobs decide by their magic (rsa-encrypted.key.blob is listed "encrypt" but stored plain).
  if (r->info_.crypt_mode == CryptMode::kEncrypt && !crypt && r->type_ != ArchiveType::kBlob)
    return Status::InvalidArgument("archive '" + archive +
                                   "' is encrypted - a key is needed to read it");

  const std::string where = dir.ToString() + "/" + archive;
  auto check = [&](uint64_t size, const Digest& csum) -> Status {
    if (size != r->info_.size)
      return Status::Corruption("wrong size for file '" + archive + "' (" +
                                std::to_string(r->info_.size) + " != " + std::to_string(size) +
                                ")");
    if (csum != r->info_.csum) return Status::Corruption("wrong checksum for file '" + archive + "'");
    return Status::OK();
  };
  switch (r->type_) {
    case ArchiveType::kFixedIndex: {
      PBSKIT_ASSIGN_OR_RETURN(FixedIndex idx, store->OpenFixedIndex(ns, dir, archive));
      PBSKIT_RETURN_IF_ERROR(check(idx.size(), idx.ComputeCsum()));
      r->fixed_.emplace(std::move(idx));
      break;
    }
    case ArchiveType::kDynamicIndex: {
      PBSKIT_ASSIGN_OR_RETURN(DynamicIndex idx, store->OpenDynamicIndex(ns, dir, archive));
      PBSKIT_RETURN_IF_ERROR(check(idx.size(), idx.ComputeCsum()));
      r->dynamic_.emplace(std::move(idx));
      break;
    }
    case ArchiveType::kBlob: {
      PBSKIT_ASSIGN_OR_RETURN(r->blob_raw_, store->ReadSnapshotFile(ns, dir, archive));
      PBSKIT_RETURN_IF_ERROR(check(r->blob_raw_.size(), Sha256(r->blob_raw_)));
      Status st = CheckBlobHeader(r->blob_raw_, /*check_crc=*/true);
      if (!st.ok()) return st.WithContext(where);
      break;
    }
  }
  return r;
}

std::optional<uint64_t> ArchiveReader::index_size() const {
  if (fixed_) return fixed_->size();
  if (dynamic_) return dynamic_->size();
  return std::nullopt;
}

Status ArchiveReader::ReadAll(const Sink& sink, ArchiveReadStats* stats) {
  ArchiveReadStats local;
  ArchiveReadStats& s = stats ? *stats : local;
  std::vector<uint8_t> decoded;
  if (type_ == ArchiveType::kBlob) {
    bool encrypted = IsEncryptedMagic(blob_raw_);
    Status st = DecodeBlob(blob_raw_, encrypted ? crypt_ : nullptr, &decoded);
    if (!st.ok()) return st.WithContext(info_.filename);
    s.raw_bytes += blob_raw_.size();
    s.decoded_bytes += decoded.size();
    return sink(decoded);
  }

  const size_t count = fixed_ ? fixed_->chunk_count() : dynamic_->chunk_count();
  std::vector<uint8_t> raw;
  ChunkStore& chunks = store_->chunk_store();
  for (size_t i = 0; i < count; ++i) {
    const Digest& digest = fixed_ ? fixed_->digest(i) : dynamic_->entry(i).digest;
    auto [start, end] = fixed_ ? fixed_->chunk_range(i) : dynamic_->chunk_range(i);
    Status st = chunks.LoadChunkInto(digest, &raw);
    if (!st.ok()) {
      if (st.IsNotFound())
        return Status::NotFound("chunk " + ToHex(digest) + ": missing in chunk store (" +
                                chunks.ChunkPath(digest) + ")");
      return st.WithContext("chunk " + ToHex(digest));
    }
    PBSKIT_RETURN_IF_ERROR(DecodeAndCheckChunk(raw, digest, end - start, info_.crypt_mode,
                                               crypt_, &decoded));
    ++s.chunks;
    s.raw_bytes += raw.size();
    s.decoded_bytes += decoded.size();
    PBSKIT_RETURN_IF_ERROR(sink(decoded));
  }
  return Status::OK();
}

Status RestoreArchive(ArchiveReader& reader, const std::string& target, ArchiveReadStats* stats) {
  if (target == "-") {
    return reader.ReadAll(
        [](std::span<const uint8_t> data) { return WriteAllFd(1, data, "standard output"); },
        stats);
  }
  struct stat st;
  if (::lstat(target.c_str(), &st) == 0)
    return Status::AlreadyExists("unable to create target file \"" + target +
                                 "\" - File exists");
  std::string tmp = target + ".tmp_XXXXXX";
  int fd = ::mkstemp(tmp.data());
  if (fd < 0) return Status::FromErrno(errno, "unable to create target file \"" + target + "\"");
  ::fchmod(fd, 0644);
  Status result = reader.ReadAll(
      [&](std::span<const uint8_t> data) { return WriteAllFd(fd, data, tmp); }, stats);
  if (result.ok() && ::fsync(fd) != 0) result = Status::FromErrno(errno, "fsync " + tmp);
  if (::close(fd) != 0 && result.ok()) result = Status::FromErrno(errno, "close " + tmp);
  if (result.ok() && ::lstat(target.c_str(), &st) == 0)
    result = Status::AlreadyExists("unable to create target file \"" + target +
                                   "\" - File exists");
  if (result.ok() && ::rename(tmp.c_str(), target.c_str()) != 0)
    result = Status::FromErrno(errno, "rename " + tmp + " to " + target);
  if (!result.ok()) ::unlink(tmp.c_str());
  return result;
}

}  // namespace pbskit
