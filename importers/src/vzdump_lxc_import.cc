// vzdump container archive (.tar[.zst|.gz|.lzo]) -> PBS snapshot ct/<vmid>/<time>
// (PXAR-VZDUMP.md §5.3): config blobs, root.pxar.didx and catalog.pcat1.didx as
// proxmox-backup-client writes them in legacy mode, then the dump directory's side files.
#include <sys/stat.h>

#include "pbskit/datastore/fs.h"
#include "pbskit/datastore/writeback_pacer.h"
#include "pbskit/formats/data_blob.h"
#include "pbskit/importers/pxar_backup.h"
#include "pbskit/importers/vzdump_lxc.h"

namespace pbskit {
namespace {

// Counts the pxar bytes on their way to the snapshot stream (progress).
class CountingSink : public pxar::PxarSink {
 public:
  CountingSink(pxar::PxarSink* next, std::function<void(uint64_t)> tick)
      : next_(next), tick_(std::move(tick)) {}
  Status Write(std::span<const uint8_t> data) override {
    PBSKIT_RETURN_IF_ERROR(next_->Write(data));
    bytes_ += data.size();
    if (tick_ && bytes_ - last_ >= (4u << 20)) {
      last_ = bytes_;
      tick_(bytes_);
    }
    return Status::OK();
  }
  uint64_t bytes() const { return bytes_; }

 private:
  pxar::PxarSink* next_;
  std::function<void(uint64_t)> tick_;
  uint64_t bytes_ = 0, last_ = 0;
};

Result<std::optional<std::string>> ReadSideFile(const std::string& path) {
  auto r = ReadWholeFileText(PosixFilesystem(), path);
  if (r.ok()) return std::optional<std::string>(std::move(r).value());
  if (r.status().code() == Code::kNotFound) return std::optional<std::string>();
  return r.status();
}

void Account(const ArchiveResult& ar, VzdumpImportResult* r) {
  r->archives.push_back(ar.info.filename);
  r->chunks_new += ar.stats.new_chunks;
  r->chunks_reused += ar.stats.reused_chunks;
  r->stored_bytes += ar.stats.compressed_size;
}

}  // namespace

Result<VzdumpLxcImportResult> ImportVzdumpLxc(std::shared_ptr<DataStore> store,
                                              const std::string& path,
                                              const VzdumpLxcImportOptions& options) {
  const VzdumpImportOptions& common = options.common;
  VzdumpLxcImportResult out;
  VzdumpImportResult& result = out.common;
  result.ns = common.ns;
  const std::string base = BaseName(path);
  auto name = ParseVzdumpFileName(base);
  if (name.ok() && name->format != "tar")
    return Status::InvalidArgument("'" + base + "' is not a container archive (.tar[.zst|.gz|.lzo])");
  if (!name.ok() && !common.backup_id) {
    // "vzdump-lxc-...tar.xz": a vzdump name with a compression vzdump does not write; let the
    // content check below say so instead of refusing the name.
    size_t dot = base.rfind('.');
    auto stripped = dot == std::string::npos ? name : ParseVzdumpFileName(base.substr(0, dot));
    if (!stripped.ok() || stripped->format != "tar" || stripped->compression != VzdumpCompression::kNone)
      return name.status();
    name = std::move(stripped);
  }

  // Everything that can refuse the input happens before the snapshot exists.
  LxcTarOptions to;
  to.salvage = common.salvage;
  to.temp_dir = options.temp_dir;
  if (options.progress)
    to.progress = [&options](uint64_t done, uint64_t total) { options.progress("read", done, total); };
  PBSKIT_ASSIGN_OR_RETURN(auto tar, LxcTarArchive::Read(path, to));
  const LxcTarStats& ts = tar->stats();
  std::string patterns;
  for (const auto& p : options.exclude_paths) patterns += p + "\n";
  if (options.stdexcludes) patterns += kVzdumpStdExcludes;
  if (tar->unprivileged()) patterns += "lost+found\n";
  if (!patterns.empty()) tar->set_pxarexclude_cli(patterns);

  BackupDir dir;
  dir.group.type = BackupType::kCt;
  dir.group.id = common.backup_id ? *common.backup_id : name->vmid;
  PBSKIT_RETURN_IF_ERROR(CheckBackupId(dir.group.id));
  if (common.backup_time) {
    dir.time = *common.backup_time;
  } else if (name.ok()) {
    PBSKIT_ASSIGN_OR_RETURN(dir.time, VzdumpStampToEpoch(name->stamp, common.time_zone));
  } else if (ts.config_mtime && *ts.config_mtime > 0) {
    dir.time = *ts.config_mtime;  // vzdump wrote pct.conf when the backup started
  } else {
    return Status::InvalidArgument("no backup time for '" + base +
                                   "': the name has no vzdump time stamp and the archive no "
                                   "pct.conf (use --backup-time)");
  }
  result.dir = dir;
  result.compression = ts.compression;
  result.file_bytes = ts.file_bytes;
  result.archive_bytes = ts.tar_bytes;
  out.warnings = ts.warnings;
  out.tar = ts;

  // Side files are read up front too, so nothing can fail between Finish and the notes.
  const std::string dirpath = path.substr(0, path.size() - base.size());
  PBSKIT_ASSIGN_OR_RETURN(auto notes, ReadSideFile(path + ".notes"));
  std::optional<std::string> log;
  if (name.ok()) {
    PBSKIT_ASSIGN_OR_RETURN(log, ReadSideFile(dirpath + name->log_name));
  }
  struct stat pst {};
  const bool is_protected = stat((path + ".protected").c_str(), &pst) == 0;
  std::string text = notes ? *notes : "";
  if (!ts.damage.empty()) {
    result.damage = ts.damage;
    result.gaps = ts.gaps;
    if (!text.empty() && text.back() != '\n') text += "\n";
    if (!text.empty()) text += "\n";
    text += "Imported with --salvage from " + base + ": " + ts.damage + "\n";
    for (const auto& g : ts.gaps) text += "- " + g + "\n";
  }
  std::optional<DataBlob> log_blob;
  if (log) {
    std::span<const uint8_t> bytes(reinterpret_cast<const uint8_t*>(log->data()), log->size());
    PBSKIT_ASSIGN_OR_RETURN(DataBlob blob, DataBlob::Encode(bytes, nullptr, true));
    log_blob = std::move(blob);
  }

  SnapshotWriterOptions wo;
  wo.ns = common.ns;
  wo.dir = dir;
  wo.auth_id = common.auth_id;
  PBSKIT_ASSIGN_OR_RETURN(auto writer, SnapshotWriter::Begin(store, wo));
  auto as_bytes = [](const std::string& s) {
    return std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(s.data()), s.size());
  };
  if (!tar->pct_conf().empty() || ts.config_mtime) {
    PBSKIT_ASSIGN_OR_RETURN(auto ar, writer->AddBlob("pct.conf.blob", as_bytes(tar->pct_conf())));
    Account(ar, &result);
  } else {
    out.warnings.push_back("the archive has no ./etc/vzdump/pct.conf; the snapshot gets no "
                           "pct.conf.blob");
  }
  if (tar->pct_fw()) {
    PBSKIT_ASSIGN_OR_RETURN(auto ar, writer->AddBlob("fw.conf.blob", as_bytes(*tar->pct_fw())));
    Account(ar, &result);
  }

  importers::PxarCatalog catalog;
  PBSKIT_ASSIGN_OR_RETURN(auto sink,
                          importers::PxarSnapshotSink::Open(writer.get(), "root", false, &catalog));
  const uint64_t estimate = ts.data_bytes + 128 * (ts.entries + 1);
  // Writeback pacing only when the chunk files are the only bulk writes: a spool (compressed
  // archives) would be written back with them, and it is dropped unwritten after Encode.
  std::optional<WritebackPacer> pacer;
  if (ts.spooled_bytes < WritebackPacer::kDefaultStep) pacer.emplace(*store);
  std::function<void(uint64_t)> tick = [&options, &pacer, estimate,
                                        counted = uint64_t{0}](uint64_t done) mutable {
    if (pacer) pacer->Add(done - counted);  // pxar bytes; about half that in chunk files
    counted = done;
    if (options.progress) options.progress("encode", done, std::max(done, estimate));
  };
  CountingSink counting(sink->archive(), tick);
  PBSKIT_RETURN_IF_ERROR(tar->Encode(&counting, sink.get()));
  pacer.reset();
  const uint64_t image_bytes = counting.bytes();
  tar.reset();  // closes the spool: its pages are dropped, never written back by syncfs
  PBSKIT_ASSIGN_OR_RETURN(importers::PxarArchiveResults archives, sink->Close());
  for (const auto& ar : archives.archives) Account(ar, &result);
  PBSKIT_ASSIGN_OR_RETURN(ArchiveResult cat, catalog.Upload(writer.get()));
  Account(cat, &result);
  result.image_bytes = image_bytes;
  if (options.progress) options.progress("encode", image_bytes, image_bytes);
  PBSKIT_RETURN_IF_ERROR(writer->Finish().status());

  // The snapshot is complete; a failure to add the side files removes it again.
  Status st = Status::OK();
  if (!text.empty()) st = store->SetSnapshotNotes(common.ns, dir, text);
  if (st.ok() && is_protected) st = store->SetProtected(common.ns, dir, true);
  if (st.ok() && log_blob)
    st = WriteFileAtomic(store->fs(),
                         JoinPath(store->SnapshotPath(common.ns, dir), kClientLogBlobName),
                         log_blob->raw(), store->sync_level());
  if (!st.ok()) {
    if (is_protected) (void)store->SetProtected(common.ns, dir, false);
    (void)store->RemoveSnapshot(common.ns, dir, true);
    return st;
  }
  return out;
}

}  // namespace pbskit
