// Directory backup into a snapshot: the pxar streams and the catalog as proxmox-backup-client
// writes them (PxarSnapshotSink, PxarCatalog, BackupDirectory).
#include "pbskit/importers/pxar_backup.h"

#include <cstring>
#include <utility>

#include "pxar_backup_internal.h"

namespace pbskit::importers {

namespace {
constexpr size_t kClientBufferSize = 256 * 1024;  // PxarBackupStream's BufWriter capacity
constexpr size_t kCatalogChunkSize = 512 * 1024;

std::string StripSuffix(std::string s, std::string_view suffix) {
  if (s.size() > suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0)
    s.resize(s.size() - suffix.size());
  return s;
}
}  // namespace

Result<ChangeDetectionMode> ParseChangeDetectionMode(std::string_view s) {
  if (s == "legacy") return ChangeDetectionMode::kLegacy;
  if (s == "data") return ChangeDetectionMode::kData;
  if (s == "metadata") return ChangeDetectionMode::kMetadata;
  return Status::InvalidArgument("unknown change detection mode '" + std::string(s) +
                                 "' (expected legacy, data or metadata)");
}

const char* ChangeDetectionModeName(ChangeDetectionMode m) {
  switch (m) {
    case ChangeDetectionMode::kLegacy:
      return "legacy";
    case ChangeDetectionMode::kData:
      return "data";
    case ChangeDetectionMode::kMetadata:
      return "metadata";
  }
  return "legacy";
}

Result<ArchiveResult> PxarCatalog::Upload(SnapshotWriter* writer) {
  PBSKIT_ASSIGN_OR_RETURN(std::vector<uint8_t> bytes, writer_.Finish());
  PBSKIT_ASSIGN_OR_RETURN(auto stream,
                          writer->BeginDynamicIndex("catalog.pcat1.didx", kCatalogChunkSize));
  PBSKIT_RETURN_IF_ERROR(stream->Write(bytes));
  return stream->Close();
}

// A pxar::PxarSink in front of a DynamicIndexStream with the flush behaviour of Rust's
// std::io::BufWriter (write_all): data that fits the spare capacity is buffered; otherwise the
// buffer is flushed first, and data at least as large as the capacity goes through in one piece.
//
// With `hold_back` (payload streams) each piece reaches the stream only when the next one is
// produced (or at Finish). The client's encoder runs ahead of its chunker, so by the time a
// piece is scanned the suggested boundary of a file starting right after it is known; holding
// one piece back gives the chunker that same knowledge (suggestions go to the stream at once).
class PxarSnapshotSink::BufferedStream : public pxar::PxarSink {
 public:
  BufferedStream(DynamicIndexStream* stream, bool hold_back)
      : stream_(stream), hold_back_(hold_back) {
    buf_.reserve(kClientBufferSize);
  }
  Status Write(std::span<const uint8_t> data) override {
    size_t spare = kClientBufferSize - buf_.size();
    if (data.size() < spare) {
      buf_.insert(buf_.end(), data.begin(), data.end());
      return Status::OK();
    }
    if (data.size() > spare) PBSKIT_RETURN_IF_ERROR(FlushBuffer());
    if (data.size() >= kClientBufferSize) return Deliver(data);
    buf_.insert(buf_.end(), data.begin(), data.end());
    return Status::OK();
  }
  // Everything written so far reaches the stream (before an injection and at the end).
  Status Finish() {
    PBSKIT_RETURN_IF_ERROR(FlushBuffer());
    if (!has_held_) return Status::OK();
    has_held_ = false;
    return stream_->Write(held_);
  }

 private:
  Status FlushBuffer() {
    if (buf_.empty()) return Status::OK();
    Status st = Deliver(buf_);
    buf_.clear();
    return st;
  }
  Status Deliver(std::span<const uint8_t> piece) {
    if (!hold_back_) return stream_->Write(piece);
    if (has_held_) PBSKIT_RETURN_IF_ERROR(stream_->Write(held_));
    held_.assign(piece.begin(), piece.end());
    has_held_ = true;
    return Status::OK();
  }

  DynamicIndexStream* stream_;
  bool hold_back_;
  std::vector<uint8_t> buf_;
  std::vector<uint8_t> held_;
  bool has_held_ = false;
};

Result<std::unique_ptr<PxarSnapshotSink>> PxarSnapshotSink::Open(SnapshotWriter* writer,
                                                                 std::string base, bool split,
                                                                 PxarCatalog* catalog,
                                                                 size_t chunk_size) {
  base = StripSuffix(StripSuffix(std::move(base), ".didx"), ".pxar");
  std::unique_ptr<PxarSnapshotSink> s(new PxarSnapshotSink());
  s->catalog_ = catalog;
  s->archive_name_ = base + (split ? ".mpxar.didx" : ".pxar.didx");
  PBSKIT_ASSIGN_OR_RETURN(s->archive_stream_,
                          writer->BeginDynamicIndex(s->archive_name_, chunk_size,
                                                    DynamicChunkerKind::kRegular));
  s->archive_sink_ = std::make_unique<BufferedStream>(s->archive_stream_.get(), false);
  if (split) {
    s->payload_name_ = base + ".ppxar.didx";
    PBSKIT_ASSIGN_OR_RETURN(s->payload_stream_,
                            writer->BeginDynamicIndex(s->payload_name_, chunk_size,
                                                      DynamicChunkerKind::kPayload));
    s->payload_sink_ = std::make_unique<BufferedStream>(s->payload_stream_.get(), true);
  }
  if (catalog) PBSKIT_RETURN_IF_ERROR(catalog->writer().StartDirectory(s->archive_name_));
  return s;
}

PxarSnapshotSink::~PxarSnapshotSink() = default;

pxar::PxarSink* PxarSnapshotSink::archive() { return archive_sink_.get(); }
pxar::PxarSink* PxarSnapshotSink::payload() { return payload_sink_.get(); }

Status PxarSnapshotSink::InjectPayloadChunk(const Digest& digest, uint64_t size) {
  if (!payload_stream_)
    return Status::InvalidArgument("archive '" + archive_name_ +
                                   "' has no payload stream to reuse chunks in");
  PBSKIT_RETURN_IF_ERROR(payload_sink_->Finish());
  return payload_stream_->AppendKnownChunk(digest, size);
}

Result<PxarArchiveResults> PxarSnapshotSink::Close() {
  if (closed_) return Status::InvalidArgument("archive '" + archive_name_ + "' already closed");
  closed_ = true;
  PxarArchiveResults out;
  if (payload_stream_) {
    PBSKIT_RETURN_IF_ERROR(payload_sink_->Finish());
    PBSKIT_ASSIGN_OR_RETURN(ArchiveResult r, payload_stream_->Close());
    out.archives.push_back(std::move(r));
  }
  PBSKIT_RETURN_IF_ERROR(archive_sink_->Finish());
  PBSKIT_ASSIGN_OR_RETURN(ArchiveResult r, archive_stream_->Close());
  out.archives.push_back(std::move(r));
  if (catalog_) PBSKIT_RETURN_IF_ERROR(catalog_->writer().EndDirectory());
  return out;
}

Status PxarSnapshotSink::StartDirectory(std::string_view name) {
  return catalog_ ? catalog_->writer().StartDirectory(name) : Status::OK();
}
Status PxarSnapshotSink::EndDirectory() {
  return catalog_ ? catalog_->writer().EndDirectory() : Status::OK();
}
Status PxarSnapshotSink::AddFile(std::string_view name, uint64_t size, int64_t mtime) {
  return catalog_ ? catalog_->writer().AddFile(name, size, mtime) : Status::OK();
}
Status PxarSnapshotSink::AddHardlink(std::string_view name) {
  return catalog_ ? catalog_->writer().AddHardlink(name) : Status::OK();
}
Status PxarSnapshotSink::AddSymlink(std::string_view name) {
  return catalog_ ? catalog_->writer().AddSymlink(name) : Status::OK();
}
Status PxarSnapshotSink::AddBlockDevice(std::string_view name) {
  return catalog_ ? catalog_->writer().AddBlockDevice(name) : Status::OK();
}
Status PxarSnapshotSink::AddCharDevice(std::string_view name) {
  return catalog_ ? catalog_->writer().AddCharDevice(name) : Status::OK();
}
Status PxarSnapshotSink::AddFifo(std::string_view name) {
  return catalog_ ? catalog_->writer().AddFifo(name) : Status::OK();
}
Status PxarSnapshotSink::AddSocket(std::string_view name) {
  return catalog_ ? catalog_->writer().AddSocket(name) : Status::OK();
}
void PxarSnapshotSink::SuggestPayloadBoundary(uint64_t payload_offset) {
  if (payload_stream_) payload_stream_->SuggestBoundary(payload_offset);
}

Result<PxarBackupResult> BackupDirectory(SnapshotWriter* writer, const std::string& source_dir,
                                         const PxarBackupOptions& options) {
  const bool split = options.mode != ChangeDetectionMode::kLegacy;
  PxarBackupResult result;
  PxarCatalog catalog;
  PBSKIT_ASSIGN_OR_RETURN(auto sink,
                          PxarSnapshotSink::Open(writer, options.archive_name, split,
                                                 split ? nullptr : &catalog, options.chunk_size));
  if (options.mode == ChangeDetectionMode::kMetadata) {
    PBSKIT_RETURN_IF_ERROR(
        BackupDirectoryMetadataMode(writer, sink.get(), source_dir, options, &result));
  } else {
    PxarCreateOptions create = options.create;
    create.observer = sink.get();
    PBSKIT_ASSIGN_OR_RETURN(result.create, CreatePxarArchive(source_dir, sink->archive(),
                                                             sink->payload(), create));
  }
  PBSKIT_ASSIGN_OR_RETURN(PxarArchiveResults archives, sink->Close());
  result.archives = std::move(archives.archives);
  if (!split) {
    PBSKIT_ASSIGN_OR_RETURN(ArchiveResult cat, catalog.Upload(writer));
    result.archives.push_back(std::move(cat));
  }
  return result;
}

}  // namespace pbskit::importers
