// Directory backup into a datastore snapshot, as `proxmox-backup-client backup root.pxar:DIR`
// writes it: the pxar stream(s) chunked exactly like the client (so chunks deduplicate with
// real clients) and, in legacy mode, the catalog.
//
// Archives per change-detection mode (PBS 3.3+ `--change-detection-mode`):
//   legacy    <base>.pxar.didx (v1 unified pxar, buzhash) + catalog.pcat1.didx (512 KiB avg)
//   data      <base>.mpxar.didx (v2 metadata, buzhash) + <base>.ppxar.didx (payload chunker
//             with a suggested boundary at every file payload); PBS writes no catalog here
//   metadata  as data; PBS additionally reuses unchanged files' payload chunks of the previous
//             snapshot (see PxarBackupOptions::mode)
//
// Reusing the "pxar into a snapshot" part for other pxar producers (container tar import, a
// server-side backup session): PxarSnapshotSink is a pxar::PxarCreateObserver that owns the
// SnapshotWriter streams and hands out pxar::PxarSink pointers for the encoder:
//
//   auto w = SnapshotWriter::Begin(store, opts);            // the snapshot
//   PxarCatalog catalog;                                     // legacy mode only
//   auto sink = PxarSnapshotSink::Open(w->get(), "root", /*split=*/false, &catalog);
//   auto enc = pxar::Encoder::Create((*sink)->archive(), (*sink)->payload(), root_meta);
//   for each entry, in archive order:
//     the matching observer call on **sink (StartDirectory/EndDirectory around a directory's
//     children, AddFile(name, size, mtime), AddSymlink, AddHardlink, ...), and for split
//     archives SuggestPayloadBoundary(enc->payload_position()) right before each non-hardlink
//     regular file's BeginFile; then the encoder call itself
//   enc->Finish();
//   auto archives = (*sink)->Close();                         // payload index, then metadata
//   catalog.Upload(w->get());                                  // after all archives, as PBS
//   (*w)->Finish();
// CreatePxarArchive(dir, sink->archive(), sink->payload(), {.observer = sink}) does the middle
// part for a directory; BackupDirectory below does all of it.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "pbskit/datastore/snapshot_writer.h"
#include "pbskit/formats/catalog.h"
#include "pbskit/formats/pxar/encoder.h"
#include "pbskit/importers/pxar_fs.h"

namespace pbskit::importers {

enum class ChangeDetectionMode { kLegacy, kData, kMetadata };

// "legacy" | "data" | "metadata" (PBS spelling); InvalidArgument otherwise.
Result<ChangeDetectionMode> ParseChangeDetectionMode(std::string_view s);
const char* ChangeDetectionModeName(ChangeDetectionMode m);

// The snapshot catalog (catalog.pcat1.didx) of a legacy-mode backup: one top-level directory
// per pxar archive. Held in memory until Upload (a few dozen bytes per entry). Not thread safe.
class PxarCatalog {
 public:
  CatalogWriter& writer() { return writer_; }
  // Finishes the catalog and writes it as catalog.pcat1.didx (512 KiB average chunks, the
  // writer's crypt mode). InvalidArgument while an archive directory is still open; writer
  // errors unchanged.
  Result<ArchiveResult> Upload(SnapshotWriter* writer);

 private:
  CatalogWriter writer_;
};

// Result of one pxar archive (unified, or the split pair) written into a snapshot.
struct PxarArchiveResults {
  // In the order they went into the manifest: split: payload (.ppxar.didx) then metadata
  // (.mpxar.didx), as proxmox-backup-client adds them; unified: just .pxar.didx.
  std::vector<ArchiveResult> archives;
};

// The pxar encoder's output sinks backed by SnapshotWriter streams plus the catalog hooks.
// Bytes pass through a 256 KiB buffer that flushes like the Rust BufWriter in front of the
// client's chunk stream, so the payload chunker sees the client's read pieces. Not thread safe;
// the writer and catalog are borrowed and must outlive the sink.
class PxarSnapshotSink : public PxarCreateObserver {
 public:
  // Opens "<base>.pxar.didx" (split false) or "<base>.mpxar.didx" + "<base>.ppxar.didx"
  // (split true) at `chunk_size` average, and, with a catalog, starts the catalog directory
  // named after the (metadata) archive. `base` may end in ".pxar" (stripped). Errors:
  // InvalidArgument for a bad name or chunk size, writer errors.
  static Result<std::unique_ptr<PxarSnapshotSink>> Open(SnapshotWriter* writer,
                                                        std::string base, bool split,
                                                        PxarCatalog* catalog,
                                                        size_t chunk_size = 4 * 1024 * 1024);
  ~PxarSnapshotSink() override;

  pxar::PxarSink* archive();
  pxar::PxarSink* payload();  // null unless split
  // Archive names on the server ("root.mpxar.didx" ...); payload_name empty unless split.
  const std::string& archive_name() const { return archive_name_; }
  const std::string& payload_name() const { return payload_name_; }

  // Metadata-mode reuse: flushes the buffered payload bytes and appends an existing chunk of
  // the store to the payload index (DynamicIndexStream::AppendKnownChunk). The encoder must be
  // told with Encoder::Advance(size).
  Status InjectPayloadChunk(const Digest& digest, uint64_t size);

  // Flushes and closes the indexes (and the catalog directory). Call after Encoder::Finish.
  Result<PxarArchiveResults> Close();

  // PxarCreateObserver: catalog entries (no-ops without a catalog) and payload boundaries.
  Status StartDirectory(std::string_view name) override;
  Status EndDirectory() override;
  Status AddFile(std::string_view name, uint64_t size, int64_t mtime) override;
  Status AddHardlink(std::string_view name) override;
  Status AddSymlink(std::string_view name) override;
  Status AddBlockDevice(std::string_view name) override;
  Status AddCharDevice(std::string_view name) override;
  Status AddFifo(std::string_view name) override;
  Status AddSocket(std::string_view name) override;
  void SuggestPayloadBoundary(uint64_t payload_offset) override;

  class BufferedStream;  // private helper (pxar_backup.cc)

 private:
  PxarSnapshotSink() = default;
  std::string archive_name_, payload_name_;
  PxarCatalog* catalog_ = nullptr;
  std::unique_ptr<DynamicIndexStream> archive_stream_, payload_stream_;
  std::unique_ptr<BufferedStream> archive_sink_, payload_sink_;
  bool closed_ = false;
};

struct PxarBackupOptions {
  std::string archive_name = "root";  // base name; ".pxar" / ".pxar.didx" accepted
  ChangeDetectionMode mode = ChangeDetectionMode::kLegacy;
  size_t chunk_size = 4 * 1024 * 1024;
  PxarCreateOptions create;  // features, entries_max, warn (observer is replaced)
  // Progress lines in proxmox-backup-client's words (metadata mode: which reference is used,
  // the change detection summary). May be null.
  std::function<void(const std::string&)> info;
};

struct PxarBackupResult {
  // Manifest order, as proxmox-backup-client adds them (catalog last).
  std::vector<ArchiveResult> archives;
  PxarCreateStats create;
  // Metadata mode: files whose payload was taken over from the previous snapshot.
  uint64_t reused_files = 0;
  uint64_t reused_payload_bytes = 0;
  // Metadata mode: previous payload chunks appended to the new payload index.
  uint64_t injected_chunks = 0;
  uint64_t injected_size = 0;
};

// Backs up `source_dir` into the open `writer` (archives and, in legacy mode, the catalog;
// the caller calls Finish). Errors: CreatePxarArchive's errors (with the path), writer errors;
// on error the writer is no longer usable.
//
// Metadata mode follows proxmox-backup-client: the reference is the writer's previous snapshot
// when its manifest holds <base>.mpxar.didx and <base>.ppxar.didx in the same crypt mode
// (otherwise the backup runs like data mode). A regular file whose metadata (pxar ENTRY,
// xattrs, ACLs, ...) and size equal the previous archive's entry at the same path keeps its
// old payload: runs of such files with contiguous payload in the previous .ppxar are
// collected (with the entries between them, up to 512 cached entries), and the previous
// chunks covering the run are appended to the new .ppxar unless the bytes of those chunks
// outside the run exceed 10 % (then the files are re-read). The last chunk of a run is held
// back so that a following run starting in it shares it.
Result<PxarBackupResult> BackupDirectory(SnapshotWriter* writer, const std::string& source_dir,
                                         const PxarBackupOptions& options);

}  // namespace pbskit::importers
