// pxar input from a datastore: chunk-by-chunk sources over dynamic indexes, the resolution of a
// user's archive name to the unified or split archive the manifest lists, and finding one entry.
#include "pbskit/datastore/pxar_archive.h"

#include <algorithm>
#include <cstring>

#include "pbskit/formats/hex.h"

namespace pbskit {
namespace {

bool EndsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

std::string_view StripDidx(std::string_view name) {
  return EndsWith(name, ".didx") ? name.substr(0, name.size() - 5) : name;
}

}  // namespace

DidxPxarSource::DidxPxarSource(const ChunkStore& chunks, const DynamicIndex& index,
                               CryptMode crypt_mode, const CryptConfig* crypt, std::string name)
    : chunks_(chunks),
      index_(index),
      crypt_mode_(crypt_mode),
      crypt_(crypt),
      name_(std::move(name)) {}

Status DidxPxarSource::Load(size_t i) {
  const Digest& digest = index_.entry(i).digest;
  auto [start, end] = index_.chunk_range(i);
  Status st = chunks_.LoadChunkInto(digest, &raw_);
  if (!st.ok()) {
    if (st.IsNotFound())
      return Status::NotFound(name_ + ": chunk " + ToHex(digest) + ": missing in chunk store (" +
                              chunks_.ChunkPath(digest) + ")");
    return st.WithContext(name_ + ": chunk " + ToHex(digest));
  }
  st = DecodeAndCheckChunk(raw_, digest, end - start, crypt_mode_, crypt_, &data_);
  if (!st.ok()) return st.WithContext(name_);
  loaded_ = i;
  loaded_start_ = start;
  ++chunks_loaded_;
  return Status::OK();
}

Result<size_t> DidxPxarSource::Read(std::span<uint8_t> buf) {
  size_t done = 0;
  while (done < buf.size() && pos_ < index_.size()) {
    bool have = loaded_ != SIZE_MAX && pos_ >= loaded_start_ && pos_ < loaded_start_ + data_.size();
    if (!have) {
      // Sequential reads almost always want the chunk after the loaded one.
      size_t next =
          (loaded_ != SIZE_MAX && loaded_ + 1 < index_.chunk_count() &&
           index_.chunk_range(loaded_ + 1).first <= pos_ && pos_ < index_.entry(loaded_ + 1).end)
              ? loaded_ + 1
              : index_.FindChunk(pos_);
      PBSKIT_RETURN_IF_ERROR(Load(next));
    }
    size_t off = static_cast<size_t>(pos_ - loaded_start_);
    size_t n = std::min(buf.size() - done, data_.size() - off);
    std::memcpy(buf.data() + done, data_.data() + off, n);
    done += n;
    pos_ += n;
  }
  return done;
}

Status DidxPxarSource::Skip(uint64_t n) {
  if (n > index_.size() - pos_)
    return Status::Corruption(name_ + ": unexpected end of archive (skipping " + std::to_string(n) +
                              " bytes at offset " + std::to_string(pos_) + " of " +
                              std::to_string(index_.size()) + ")");
  pos_ += n;
  return Status::OK();
}

bool IsPxarArchiveName(std::string_view name) {
  std::string_view base = StripDidx(name);
  return EndsWith(base, ".pxar") || EndsWith(base, ".mpxar") || EndsWith(base, ".ppxar");
}

Result<PxarArchiveNames> ResolvePxarArchiveNames(const Manifest& manifest, std::string_view name) {
  if (!IsPxarArchiveName(name))
    return Status::InvalidArgument("'" + std::string(name) +
                                   "' is not a pxar archive (.pxar, .mpxar or .ppxar)");
  std::string_view base = StripDidx(name);
  const std::string server = std::string(base) + ".didx";
  if (manifest.Lookup(server)) {
    for (std::string_view ext : {".mpxar", ".ppxar"}) {
      if (EndsWith(base, ext)) {
        std::string stem(base.substr(0, base.size() - ext.size()));
        return PxarArchiveNames{stem + ".mpxar.didx", stem + ".ppxar.didx"};
      }
    }
    return PxarArchiveNames{server, std::nullopt};
  }
  if (EndsWith(base, ".pxar")) {
    std::string stem(base.substr(0, base.size() - 5));
    if (manifest.Lookup(stem + ".mpxar.didx"))
      return PxarArchiveNames{stem + ".mpxar.didx", stem + ".ppxar.didx"};
  }
  return Status::NotFound("archive not found in manifest ('" + server + "')");
}

Result<std::unique_ptr<StorePxarArchive>> StorePxarArchive::Open(
    std::shared_ptr<DataStore> store, const BackupNamespace& ns, const BackupDir& dir,
    std::string_view name, const CryptConfig* crypt, const PxarOpenOptions& options) {
  std::unique_ptr<StorePxarArchive> a(new StorePxarArchive());
  a->store_ = store;
  a->ns_ = ns;
  a->dir_ = dir;
  a->crypt_ = crypt;
  a->options_ = options;
  PBSKIT_ASSIGN_OR_RETURN(Manifest manifest, store->LoadManifest(ns, dir));
  PBSKIT_ASSIGN_OR_RETURN(a->names_, ResolvePxarArchiveNames(manifest, name));
  PBSKIT_ASSIGN_OR_RETURN(a->archive_reader_,
                          ArchiveReader::Open(store, ns, dir, a->names_.archive, crypt,
                                              options.check_manifest_key));
  const ArchiveReader& ar = *a->archive_reader_;
  a->archive_src_ =
      std::make_unique<DidxPxarSource>(store->chunk_store(), *ar.dynamic_index(),
                                       ar.file_info().crypt_mode, crypt, a->names_.archive);
  if (a->names_.payload && !options.metadata_only) {
    PBSKIT_ASSIGN_OR_RETURN(a->payload_reader_,
                            ArchiveReader::Open(store, ns, dir, *a->names_.payload, crypt,
                                                options.check_manifest_key));
    const ArchiveReader& pr = *a->payload_reader_;
    a->payload_src_ =
        std::make_unique<DidxPxarSource>(store->chunk_store(), *pr.dynamic_index(),
                                         pr.file_info().crypt_mode, crypt, *a->names_.payload);
  }
  pxar::DecoderOptions opts = options.decoder;
  if (opts.name == pxar::DecoderOptions{}.name) opts.name = a->names_.archive;
  a->decoder_ = std::make_unique<pxar::Decoder>(a->archive_src_.get(), a->payload_src_.get(), opts);
  return a;
}

Result<std::unique_ptr<StorePxarArchive>> StorePxarArchive::Reopen() const {
  // The resolved server name is given, so the resolution picks the same archive again.
  return Open(store_, ns_, dir_, names_.archive, crypt_, options_);
}

Result<std::optional<pxar::Entry>> StorePxarArchive::Find(std::string_view path) {
  const std::string target(path.empty() ? "/" : path);
  pxar::Entry e;
  for (;;) {
    PBSKIT_ASSIGN_OR_RETURN(bool more, decoder_->Next(&e));
    if (!more) return std::optional<pxar::Entry>();
    if (e.kind == pxar::EntryKind::kVersion || e.kind == pxar::EntryKind::kPrelude) continue;
    if (e.kind == pxar::EntryKind::kDirectoryEnd) {
      // Leaving a directory on the way to the target: the target is not in the archive.
      if (e.path == "/" || (target.size() > e.path.size() && target[e.path.size()] == '/' &&
                             target.compare(0, e.path.size(), e.path) == 0))
        return std::optional<pxar::Entry>();
      continue;
    }
    if (e.path == target) return std::optional<pxar::Entry>(std::move(e));
    if (e.kind != pxar::EntryKind::kDirectory && target.size() > e.path.size() &&
        target[e.path.size()] == '/' && target.compare(0, e.path.size(), e.path) == 0)
      return Status::InvalidArgument("enter_directory() on a non-directory");
  }
}

uint64_t StorePxarArchive::total_size() const {
  return archive_src_->size() + (payload_src_ ? payload_src_->size() : 0);
}

uint64_t StorePxarArchive::chunks_loaded() const {
  return archive_src_->chunks_loaded() + (payload_src_ ? payload_src_->chunks_loaded() : 0);
}

}  // namespace pbskit
