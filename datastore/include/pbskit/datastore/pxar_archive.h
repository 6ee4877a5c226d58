// pxar archives stored in a datastore: the pxar stream of a `.pxar.didx` (or of the split pair
// `.mpxar.didx` + `.ppxar.didx`) served chunk by chunk to the pxar decoder with every chunk
// checked, the resolution of a user's archive name, finding one entry by its path, and
// directory listings through the snapshot's catalog or the archive's metadata. Used by the
// restore/export commands and by the server's catalog and pxar-file-download endpoints.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "pbskit/datastore/archive_reader.h"
#include "pbskit/datastore/datastore.h"
#include "pbskit/formats/catalog.h"
#include "pbskit/formats/crypt_config.h"
#include "pbskit/formats/dynamic_index.h"
#include "pbskit/formats/manifest.h"
#include "pbskit/formats/pxar/decoder.h"
#include "pbskit/formats/status.h"

namespace pbskit {

inline constexpr char kCatalogName[] = "catalog.pcat1.didx";

// Sequential pxar input over a dynamic index: bytes are served from the decoded chunks in
// stream order; each chunk is loaded from the chunk store and checked (blob CRC, crypt mode,
// decryption, digest, length: DecodeAndCheckChunk) when the first byte of it is needed. Skip
// moves past whole chunks without loading them. The store, index and key are borrowed and must
// outlive the source. Not thread safe.
class DidxPxarSource : public pxar::PxarSource {
 public:
  DidxPxarSource(const ChunkStore& chunks, const DynamicIndex& index, CryptMode crypt_mode,
                 const CryptConfig* crypt, std::string name);

  // Errors: NotFound "<name>: chunk <hex>: missing in chunk store (<path>)", Corruption from
  // the chunk checks ("chunk <hex>: ..."), InvalidArgument for an encrypted chunk without key,
  // IoError for read errors (each prefixed with the archive name).
  Result<size_t> Read(std::span<uint8_t> buf) override;
  // Corruption "<name>: unexpected end of archive" when n goes past the stream end.
  Status Skip(uint64_t n) override;

  uint64_t position() const { return pos_; }
  uint64_t size() const { return index_.size(); }
  uint64_t chunks_loaded() const { return chunks_loaded_; }

 private:
  Status Load(size_t i);

  const ChunkStore& chunks_;
  const DynamicIndex& index_;
  CryptMode crypt_mode_;
  const CryptConfig* crypt_;
  std::string name_;
  uint64_t pos_ = 0;
  size_t loaded_ = SIZE_MAX;  // index of the chunk in data_
  uint64_t loaded_start_ = 0;
  std::vector<uint8_t> raw_, data_;
  uint64_t chunks_loaded_ = 0;
};

// Server names of the pxar archive(s) a user's archive name stands for, as PBS's
// get_pxar_archive_names resolves them: a name the manifest lists is used as given, and an
// `.mpxar`/`.ppxar` name becomes the split pair; a `.pxar` name the manifest lacks falls back
// to the split pair `<base>.mpxar.didx` + `<base>.ppxar.didx`.
struct PxarArchiveNames {
  std::string archive;                 // "root.pxar.didx" or "root.mpxar.didx"
  std::optional<std::string> payload;  // "root.ppxar.didx" for a split archive
};
// `name` may carry .didx or not. NotFound "archive not found in manifest" when nothing fits;
// InvalidArgument when the name is not a pxar archive name (.pxar/.mpxar/.ppxar).
Result<PxarArchiveNames> ResolvePxarArchiveNames(const Manifest& manifest, std::string_view name);

// True for server or user names of pxar archives (".pxar", ".mpxar", ".ppxar", with or without
// ".didx").
bool IsPxarArchiveName(std::string_view name);

struct PxarOpenOptions {
  PxarOpenOptions(const pxar::DecoderOptions& d = {}) : decoder(d) {}  // NOLINT: implicit
  pxar::DecoderOptions decoder;
  // A split archive is opened without its payload stream: file contents cannot be read, which
  // listing does not need.
  bool metadata_only = false;
  // false: read as the PBS server does, without the client's manifest key checks (see
  // ArchiveReader::Open); sign-only snapshots then open without key.
  bool check_manifest_key = true;
};

// A pxar archive of a snapshot opened for sequential decoding: the manifest and index checks of
// ArchiveReader::Open for each stream, then one decoder over DidxPxarSource inputs.
class StorePxarArchive {
 public:
  // `crypt` is borrowed (may be null) and must outlive the archive and every Reopen of it.
  // Errors as ResolvePxarArchiveNames and ArchiveReader::Open.
  static Result<std::unique_ptr<StorePxarArchive>> Open(std::shared_ptr<DataStore> store,
                                                        const BackupNamespace& ns,
                                                        const BackupDir& dir, std::string_view name,
                                                        const CryptConfig* crypt,
                                                        const PxarOpenOptions& options);
  // The same archive opened again with a fresh decoder at the start of the stream (to reach an
  // entry that lies before the current position, e.g. a hardlink's target). Errors as Open.
  Result<std::unique_ptr<StorePxarArchive>> Reopen() const;

  // Advances the (fresh) decoder to the entry at archive path `path` ("/" = the root,
  // "/etc/hosts"; no empty, "." or ".." components) and returns it; nullopt when the archive
  // has no such entry. After a kFile result the decoder's ReadContent streams its bytes; after
  // a kDirectory result Next() continues with the directory's contents. With
  // DecoderOptions::report_directory_end the search ends at the end of the deepest directory
  // on the path instead of the end of the archive. Errors: InvalidArgument "enter_directory()
  // on a non-directory" (pxar's wording) when a component before the last is not a directory;
  // decoder errors unchanged.
  Result<std::optional<pxar::Entry>> Find(std::string_view path);

  pxar::Decoder* decoder() { return decoder_.get(); }
  const PxarArchiveNames& names() const { return names_; }
  const Manifest& manifest() const { return archive_reader_->manifest(); }
  // Stream bytes (metadata + payload) and chunks read so far.
  uint64_t total_size() const;
  uint64_t chunks_loaded() const;

 private:
  StorePxarArchive() = default;
  std::shared_ptr<DataStore> store_;
  BackupNamespace ns_;
  BackupDir dir_;
  const CryptConfig* crypt_ = nullptr;
  PxarOpenOptions options_;
  PxarArchiveNames names_;
  std::unique_ptr<ArchiveReader> archive_reader_, payload_reader_;
  std::unique_ptr<DidxPxarSource> archive_src_, payload_src_;
  std::unique_ptr<pxar::Decoder> decoder_;
};

// The catalog of a snapshot (catalog.pcat1.didx) read through ArchiveReader (manifest, index
// and every chunk checked; `check_manifest_key` as there). `crypt` borrowed (may be null).
// Errors as ArchiveReader::Open / ReadAll and CatalogReader::Open.
Result<CatalogReader> LoadSnapshotCatalog(std::shared_ptr<DataStore> store,
                                          const BackupNamespace& ns, const BackupDir& dir,
                                          const CryptConfig* crypt,
                                          bool check_manifest_key = true);

// One entry of a directory listing of a pxar archive in a snapshot.
struct PxarListEntry {
  char type = 'f';               // catalog letter: d f l h b c p s
  std::string name;              // file name (raw bytes)
  std::string path;              // archive path: "/etc/hosts"
  std::optional<uint64_t> size;  // regular files
  std::optional<int64_t> mtime;  // regular files (epoch seconds)
};

struct PxarListing {
  std::string archive;  // server name the listing is of ("root.pxar.didx", "root.mpxar.didx")
  bool from_catalog = false;
  // The directory's children in archive order, or the entry itself when `path` names a
  // non-directory.
  std::vector<PxarListEntry> entries;
  bool is_directory = true;
  // For a non-directory read from the pxar metadata: its kind as PBS's error messages print
  // pxar's EntryKind (pxar::RustEntryKindDebug), e.g. "Fifo".
  std::string kind_debug;
};

// Splits an archive path into its components ("/a//b/./c/" -> {"a", "b", "c"}): empty and "."
// components are dropped, ".." is kept (callers decide). Pure.
std::vector<std::string> SplitArchivePath(std::string_view path);

// Lists `path` ("/" or "" = the archive root; "etc/nginx" or "/etc/nginx") of the pxar archive
// `name` (resolved like ResolvePxarArchiveNames) of a snapshot: through catalog.pcat1.didx when
// the snapshot has one that contains the archive (what the catalog shell's `ls` reads), else by
// decoding the archive's metadata (the .mpxar of a split archive; a unified archive is decoded
// with file contents skipped chunk-wise). Every chunk read is checked. `crypt` borrowed (may be
// null). Errors: NotFound "no such file or directory '<path>' in <archive>", archive and chunk
// errors as StorePxarArchive::Open / DidxPxarSource, Corruption for a damaged catalog.
Result<PxarListing> ListPxarArchive(std::shared_ptr<DataStore> store, const BackupNamespace& ns,
                                    const BackupDir& dir, std::string_view name,
                                    std::string_view path, const CryptConfig* crypt);

// ListPxarArchive without the catalog: always decodes the archive's metadata (what PBS's
// catalog API does when it is given an archive name). `path` as SplitArchivePath splits it;
// `check_manifest_key` as for ArchiveReader::Open. Errors as ListPxarArchive, and
// StorePxarArchive::Find's InvalidArgument for a path through a non-directory.
Result<PxarListing> ListPxarArchiveMetadata(std::shared_ptr<DataStore> store,
                                            const BackupNamespace& ns, const BackupDir& dir,
                                            std::string_view name, std::string_view path,
                                            const CryptConfig* crypt,
                                            bool check_manifest_key = true);

}  // namespace pbskit
