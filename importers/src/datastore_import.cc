// Datastore import: walk of the source (namespaces, groups, snapshots), one snapshot at a time
// assembled in a hidden directory and renamed into place; chunk moving is in
// datastore_import_chunks.cc.
#include "pbskit/importers/datastore_import.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdlib>
#include <map>
#include <set>

#include "datastore_import_internal.h"
#include "pbskit/formats/crypto.h"
#include "pbskit/formats/data_blob.h"
#include "pbskit/formats/dynamic_index.h"
#include "pbskit/formats/fixed_index.h"
#include "pbskit/formats/manifest.h"

namespace pbskit {

const char* ChunkTransferName(ChunkTransfer t) {
  switch (t) {
    case ChunkTransfer::kAuto:
      return "auto";
    case ChunkTransfer::kLink:
      return "link";
    case ChunkTransfer::kCopy:
      return "copy";
  }
  return "auto";
}

namespace {

using import_detail::ChunkJob;
using import_detail::ChunkMover;
using import_detail::SnapshotChunks;

constexpr char kTmpPrefix[] = ".import.";
constexpr char kTmpSuffix[] = ".tmp";

std::string RealPath(const std::string& p) {
  char* r = ::realpath(p.c_str(), nullptr);
  if (!r) return p;
  std::string out(r);
  std::free(r);
  return out;
}

// Reads a file that must be a regular file (a symbolic link or anything else is refused, so a
// hostile source cannot make the import read outside its tree).
Result<std::vector<uint8_t>> ReadRegular(Filesystem* fs, const std::string& path) {
  PBSKIT_ASSIGN_OR_RETURN(struct stat st, fs->Stat(path, false));
  if (!S_ISREG(st.st_mode)) {
    return Status::InvalidArgument("refusing " + path + ": not a regular file" +
                                   (S_ISLNK(st.st_mode) ? " (symbolic link)" : ""));
  }
  PBSKIT_ASSIGN_OR_RETURN(int fd, fs->Open(path, O_RDONLY | O_NOFOLLOW));
  ScopedFd guard(fs, fd);
  std::vector<uint8_t> data(static_cast<size_t>(st.st_size));
  PBSKIT_ASSIGN_OR_RETURN(size_t n, fs->PRead(fd, data.data(), data.size(), 0));
  if (n != data.size()) return Status::IoError("short read of " + path);
  return data;
}

// Creates `path` (O_EXCL) with `data`; fsync with sync level `file`.
Status WriteNew(Filesystem* fs, const std::string& path, std::span<const uint8_t> data,
                SyncLevel level) {
  PBSKIT_ASSIGN_OR_RETURN(int fd, fs->Open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0644));
  ScopedFd guard(fs, fd);
  if (!data.empty()) PBSKIT_RETURN_IF_ERROR(fs->PWriteAll(fd, data.data(), data.size(), 0));
  if (level == SyncLevel::kFile) PBSKIT_RETURN_IF_ERROR(fs->Fsync(fd));
  return guard.Close();
}

std::string SnapshotLabel(const BackupNamespace& ns, const BackupDir& d) {
  return ns.IsRoot() ? d.ToString() : ns.Path() + "/" + d.ToString();
}

Result<BackupNamespace> Join(const BackupNamespace& base, const BackupNamespace& rel) {
  std::vector<std::string> c = base.components();
  c.insert(c.end(), rel.components().begin(), rel.components().end());
  return BackupNamespace::FromComponents(c);
}

struct SourceSnapshot {
  BackupNamespace src_ns, dst_ns;
  SnapshotInfo info;
};

struct SourceGroup {
  BackupNamespace src_ns, dst_ns;
  BackupGroup group;
  std::vector<SourceSnapshot> snapshots;
};

class Importer {
 public:
  Importer(std::shared_ptr<DataStore> src, std::shared_ptr<DataStore> dst,
           const DatastoreImportOptions& o, bool same_fs)
      : src_(std::move(src)),
        dst_(std::move(dst)),
        o_(o),
        log_(o.log),
        mover_(&src_->chunk_store(), &dst_->chunk_store(), o, same_fs, &counters_) {}

  Result<DatastoreImportResult> Run();

 private:
  Status Enumerate(std::vector<SourceGroup>* groups);
  Status EnsureNamespace(const BackupNamespace& ns);
  Status ImportGroup(SourceGroup& g);
  // OK also when the snapshot failed (recorded); non-OK ends the import.
  Status ImportSnapshot(const SourceSnapshot& s);
  Status Fail(const std::string& label, const std::string& why) {
    log_->Warn("snapshot " + label + " not imported: " + why);
    r_.failures.push_back(label + ": " + why);
    ++r_.snapshots_failed;
    return Status::OK();
  }
  void Fault(std::string_view point) {
    if (o_.fault_point) o_.fault_point(point);
  }
  void Progress(const std::string& current) {
    if (!o_.progress) return;
    DatastoreImportProgress p;
    p.snapshots_done = done_;
    p.snapshots_total = r_.snapshots_total;
    p.chunk_bytes = bytes_seen_;
    p.current = current;
    o_.progress(p);
  }

  std::shared_ptr<DataStore> src_, dst_;
  DatastoreImportOptions o_;
  TaskLogger* log_;
  import_detail::ChunkCounters counters_;
  ChunkMover mover_;
  DatastoreImportResult r_;
  std::set<BackupNamespace> ensured_;
  std::map<Digest, std::vector<std::string>> bad_users_;
  uint64_t done_ = 0;
  uint64_t bytes_seen_ = 0;
};

Status Importer::EnsureNamespace(const BackupNamespace& ns) {
  if (ns.IsRoot() || ensured_.count(ns)) return Status::OK();
  PBSKIT_RETURN_IF_ERROR(EnsureNamespace(ns.Parent()));
  PBSKIT_ASSIGN_OR_RETURN(bool exists, dst_->NamespaceExists(ns));
  if (!exists) {
    PBSKIT_RETURN_IF_ERROR(dst_->CreateNamespace(ns));
    log_->Info("created namespace '" + ns.ToString() + "'");
  }
  ensured_.insert(ns);
  return Status::OK();
}

Status Importer::Enumerate(std::vector<SourceGroup>* groups) {
  auto namespaces = src_->ListNamespaces(BackupNamespace(), true);
  if (!namespaces.ok()) {
    // A name PBS cannot list is damage in the source, not a usage error.
    return Status::Corruption("listing source namespaces: " + namespaces.status().message());
  }
  for (const auto& ns : *namespaces) {
    ++r_.namespaces;
    auto dst_ns = Join(o_.ns, ns);
    auto list = src_->ListGroups(ns);
    if (!list.ok()) return list.status().WithContext("listing groups of source namespace");
    if (!dst_ns.ok()) {
      // Too deep below the target namespace: every snapshot in it fails, the rest goes on.
      for (const auto& g : *list) {
        auto snaps = src_->ListSnapshots(ns, g);
        if (!snaps.ok()) continue;
        for (const auto& s : *snaps) {
          if (!s.finished) continue;
          ++r_.snapshots_total;
          (void)Fail(SnapshotLabel(ns, s.dir),
                     "target namespace too deep: " + dst_ns.status().message());
        }
      }
      continue;
    }
    PBSKIT_RETURN_IF_ERROR(EnsureNamespace(*dst_ns));
    for (const auto& g : *list) {
      SourceGroup sg{ns, *dst_ns, g, {}};
      auto snaps = src_->ListSnapshots(ns, g);
      if (!snaps.ok()) return snaps.status().WithContext("listing source snapshots");
      for (auto& s : *snaps) {
        if (!s.finished) {
          ++r_.snapshots_unfinished;
          log_->Info("skipping unfinished snapshot " + SnapshotLabel(ns, s.dir) +
                     " (no index.json.blob)");
          continue;
        }
        ++r_.snapshots_total;
        sg.snapshots.push_back(SourceSnapshot{ns, *dst_ns, std::move(s)});
      }
      ++r_.groups;
      groups->push_back(std::move(sg));
    }
  }
  return Status::OK();
}

Status Importer::ImportGroup(SourceGroup& g) {
  const std::string label =
      g.src_ns.IsRoot() ? g.group.ToString() : g.src_ns.Path() + "/" + g.group.ToString();
  std::string owner;
  auto src_owner = src_->GetOwner(g.src_ns, g.group);
  if (src_owner.ok() && !src_owner->empty()) {
    owner = *src_owner;
  } else if (src_owner.ok() || src_owner.status().IsNotFound()) {
    owner = o_.default_owner;
    log_->Warn("group " + label + " has no owner file, using '" + owner + "'");
  } else {
    for (const auto& s : g.snapshots) {
      (void)Fail(SnapshotLabel(s.src_ns, s.info.dir), src_owner.status().message());
    }
    return Status::OK();
  }
  if (g.snapshots.empty()) {
    // PBS 3.x can leave groups without snapshots behind; there is nothing to import.
    log_->Info("skipping group " + label + ": no finished snapshots");
    return Status::OK();
  }
  auto created = dst_->CreateLockedGroup(g.dst_ns, g.group, owner);
  if (!created.ok()) {
    for (const auto& s : g.snapshots) {
      (void)Fail(SnapshotLabel(s.src_ns, s.info.dir), created.status().message());
    }
    return created.status().IsBusy() ? Status::OK() : created.status();
  }
  auto& [dst_owner, guard] = *created;
  log_->Info("import group " + label + " (owner " + owner + ")");
  if (dst_owner != owner) {
    log_->Warn("group " + g.group.ToString() + " already exists in the destination with owner '" +
               dst_owner + "' (source: '" + owner + "'), keeping '" + dst_owner + "'");
  }
  auto notes = src_->GetGroupNotes(g.src_ns, g.group);
  if (notes.ok() && !notes->empty()) {
    PBSKIT_ASSIGN_OR_RETURN(std::string have, dst_->GetGroupNotes(g.dst_ns, g.group));
    if (have.empty()) {
      // Written directly: the group lock taken above is what SetGroupNotes would take again.
      PBSKIT_RETURN_IF_ERROR(WriteFileAtomic(dst_->fs(),
                                             JoinPath(dst_->GroupPath(g.dst_ns, g.group), "notes"),
                                             std::string_view(*notes), dst_->sync_level()));
      log_->Info("group notes imported");
    } else if (have != *notes) {
      log_->Warn("group " + g.group.ToString() +
                 " already has different notes in the destination, keeping them");
    }
  } else if (!notes.ok()) {
    log_->Warn("cannot read notes of group " + label + ": " + notes.status().message());
  }
  for (const auto& s : g.snapshots) {
    PBSKIT_RETURN_IF_ERROR(ImportSnapshot(s));
    ++done_;
    if (r_.snapshots_total > 0) {
      log_->Info(
          fmt::format("percentage done: {:.2f}% ({}/{} snapshots)",
                      100.0 * static_cast<double>(done_) / static_cast<double>(r_.snapshots_total),
                      done_, r_.snapshots_total));
    }
    Progress(SnapshotLabel(s.src_ns, s.info.dir));
  }
  return Status::OK();
}

Status Importer::ImportSnapshot(const SourceSnapshot& s) {
  Filesystem* sfs = src_->fs();
  Filesystem* dfs = dst_->fs();
  const BackupDir& dir = s.info.dir;
  const std::string label = SnapshotLabel(s.src_ns, dir);
  const std::string src_dir = src_->SnapshotPath(s.src_ns, dir);
  const std::string final_dir = dst_->SnapshotPath(s.dst_ns, dir);
  const std::string tmp_dir =
      JoinPath(dst_->GroupPath(s.dst_ns, dir.group), kTmpPrefix + dir.TimeString() + kTmpSuffix);
  const SyncLevel level = dst_->sync_level();

  auto raw_manifest = ReadRegular(sfs, JoinPath(src_dir, kManifestBlobName));
  if (!raw_manifest.ok()) return Fail(label, raw_manifest.status().message());
  auto manifest = Manifest::FromBlob(*raw_manifest, JoinPath(src_dir, kManifestBlobName));
  if (!manifest.ok()) return Fail(label, manifest.status().message());
  if (manifest->backup_type != BackupTypeName(dir.group.type) ||
      manifest->backup_id != dir.group.id || manifest->backup_time != dir.time) {
    return Fail(label, fmt::format("manifest describes {}/{}/{}, not the directory it lies in",
                                   manifest->backup_type, manifest->backup_id,
                                   FormatBackupTime(manifest->backup_time)));
  }

  auto present = PathExists(dfs, final_dir);
  if (!present.ok()) return present.status();
  if (*present) {
    auto have = ReadWholeFile(dfs, JoinPath(final_dir, kManifestBlobName));
    bool same = have.ok() && *have == *raw_manifest;
    if (!same && have.ok()) {
      auto m = Manifest::FromBlob(*have, final_dir);
      same = m.ok() && m->SignedCanonicalJson() == manifest->SignedCanonicalJson();
    }
    if (auto leftover = PathExists(dfs, tmp_dir); leftover.ok() && *leftover) {
      PBSKIT_RETURN_IF_ERROR(RemoveTree(dfs, tmp_dir));
    }
    if (!same) return Fail(label, "exists in the destination with different content (kept)");
    log_->Info("skipped: " + label + " already imported");
    ++r_.snapshots_skipped;
    return Status::OK();
  }

  log_->Info("import snapshot " + label);
  if (auto leftover = PathExists(dfs, tmp_dir); leftover.ok() && *leftover) {
    log_->Info("removing leftover of an interrupted import: " + tmp_dir);
    PBSKIT_RETURN_IF_ERROR(RemoveTree(dfs, tmp_dir));
  }
  PBSKIT_RETURN_IF_ERROR(dfs->Mkdir(tmp_dir, 0755));
  auto discard = [&](const std::string& why) {
    (void)RemoveTree(dfs, tmp_dir);
    return Fail(label, why);
  };

  // Archives: checked against the manifest and written to the temporary directory; the chunks
  // of the indexes are collected for the chunk mover.
  std::vector<ChunkJob> jobs;
  std::set<Digest> seen;
  uint64_t written = 0;
  for (const auto& f : manifest->files) {
    if (Status n = CheckArchiveName(f.filename); !n.ok()) {
      return discard("refusing archive name in manifest: " + n.message());
    }
    if (f.filename == kManifestBlobName || f.filename == kClientLogBlobName) {
      return discard("manifest lists reserved file name " + f.filename);
    }
    const std::string path = JoinPath(src_dir, f.filename);
    auto data = ReadRegular(sfs, path);
    if (!data.ok()) return discard(data.status().message());
    auto type = ArchiveTypeOf(f.filename);
    if (!type.ok()) return discard(type.status().message());
    if (*type == ArchiveType::kBlob) {
      if (data->size() != f.size || Sha256(*data) != f.csum) {
        return discard("blob " + f.filename + " does not match the manifest (size/checksum)");
      }
      if (o_.verify_chunks) {
        if (Status c = CheckBlobHeader(*data, true); !c.ok()) {
          return discard(f.filename + ": " + c.message());
        }
      }
    } else {
      Digest csum{};
      uint64_t size = 0;
      size_t chunk_count = 0;
      const bool encrypted = f.crypt_mode == CryptMode::kEncrypt;
      auto add = [&](const Digest& d, uint64_t len) {
        if (seen.insert(d).second) jobs.push_back(ChunkJob{d, len, encrypted});
      };
      if (*type == ArchiveType::kFixedIndex) {
        auto idx = FixedIndex::Parse(*data, path);
        if (!idx.ok()) return discard(idx.status().message());
        csum = idx->ComputeCsum();
        size = idx->size();
        chunk_count = idx->chunk_count();
        for (size_t i = 0; i < idx->chunk_count(); ++i) {
          auto [b, e] = idx->chunk_range(i);
          add(idx->digest(i), e - b);
        }
      } else {
        auto idx = DynamicIndex::Parse(*data, path);
        if (!idx.ok()) return discard(idx.status().message());
        csum = idx->ComputeCsum();
        size = idx->size();
        chunk_count = idx->chunk_count();
        for (size_t i = 0; i < idx->chunk_count(); ++i) {
          auto [b, e] = idx->chunk_range(i);
          add(idx->entry(i).digest, e - b);
        }
      }
      if (csum != f.csum || size != f.size) {
        return discard("index " + f.filename + " does not match the manifest (csum/size)");
      }
      log_->Info(fmt::format("import archive {} ({} chunks)", f.filename, chunk_count));
    }
    if (Status w = WriteNew(dfs, JoinPath(tmp_dir, f.filename), *data, level); !w.ok()) {
      (void)RemoveTree(dfs, tmp_dir);
      return w;
    }
    written += data->size();
  }

  // The client log is not in the manifest: copied when intact, else left behind with a warning.
  const std::string log_path = JoinPath(src_dir, kClientLogBlobName);
  if (std::find(s.info.files.begin(), s.info.files.end(), kClientLogBlobName) !=
      s.info.files.end()) {
    auto data = ReadRegular(sfs, log_path);
    Status ok = data.ok() ? CheckBlobHeader(*data, true) : data.status();
    if (ok.ok()) {
      if (Status w = WriteNew(dfs, JoinPath(tmp_dir, kClientLogBlobName), *data, level); !w.ok()) {
        (void)RemoveTree(dfs, tmp_dir);
        return w;
      }
      written += data->size();
    } else {
      log_->Warn("not importing client log of " + label + ": " + ok.message());
    }
  }

  SnapshotChunks moved;
  Status fatal = mover_.MoveChunks(jobs, &moved, [this](uint64_t n) {
    bytes_seen_ += n;
    if (o_.progress && (bytes_seen_ >> 26) != ((bytes_seen_ - n) >> 26)) Progress("");
  });
  if (!fatal.ok()) {
    (void)RemoveTree(dfs, tmp_dir);
    return fatal;
  }
  if (!moved.bad.empty()) {
    std::sort(moved.bad.begin(), moved.bad.end());
    std::string why;
    for (const auto& d : moved.bad) {
      bad_users_[d].push_back(label);
      log_->Warn("chunk " + ToHex(d) + " is bad: " + mover_.BadReason(d));
      why += (why.empty() ? "bad chunk " : ", ") + ToHex(d);
    }
    return discard(why);
  }
  if (!moved.error.ok()) return discard(moved.error.message());
  Fault("chunks-stored");

  if (s.info.is_protected) {
    if (Status w = WriteNew(dfs, JoinPath(tmp_dir, kProtectedMarker), {}, level); !w.ok()) {
      (void)RemoveTree(dfs, tmp_dir);
      return w;
    }
  }
  // The manifest goes last and exactly as it was (signature, notes, verify state, stats).
  if (Status w = WriteNew(dfs, JoinPath(tmp_dir, kManifestBlobName), *raw_manifest, level);
      !w.ok()) {
    (void)RemoveTree(dfs, tmp_dir);
    return w;
  }
  written += raw_manifest->size();
  if (level == SyncLevel::kFile) {
    PBSKIT_RETURN_IF_ERROR(dfs->FsyncDir(tmp_dir));
  } else if (level == SyncLevel::kFilesystem) {
    PBSKIT_ASSIGN_OR_RETURN(int fd, dfs->Open(tmp_dir, O_RDONLY | O_DIRECTORY));
    ScopedFd guard(dfs, fd);
    PBSKIT_RETURN_IF_ERROR(dfs->SyncFs(fd));
  }
  Fault("manifest-written");
  if (Status rn = dfs->Rename(tmp_dir, final_dir); !rn.ok()) {
    (void)RemoveTree(dfs, tmp_dir);
    return Fail(label, rn.message());
  }
  if (level != SyncLevel::kNone) {
    PBSKIT_RETURN_IF_ERROR(dfs->FsyncDir(dst_->GroupPath(s.dst_ns, dir.group)));
  }
  Fault("renamed");
  r_.file_bytes += written;
  ++r_.snapshots_imported;
  return Status::OK();
}

Result<DatastoreImportResult> Importer::Run() {
  log_->Info("Starting import of datastore '" + src_->base() + "' into datastore '" + dst_->name() +
             "'" + (o_.ns.IsRoot() ? "" : ", namespace '" + o_.ns.ToString() + "'"));
  log_->Info(std::string("chunk transfer: ") + ChunkTransferName(o_.transfer) +
             (o_.verify_chunks ? ", every new chunk is verified" : ", chunks are not verified"));
  PBSKIT_ASSIGN_OR_RETURN(auto lock, dst_->chunk_store().LockShared());
  std::vector<SourceGroup> groups;
  PBSKIT_RETURN_IF_ERROR(Enumerate(&groups));
  log_->Info(fmt::format("found {} snapshot(s) in {} group(s) of {} namespace(s)",
                         r_.snapshots_total, r_.groups, r_.namespaces));
  Progress("");
  Status status;
  for (auto& g : groups) {
    status = ImportGroup(g);
    if (!status.ok()) break;
  }
  r_.chunks_linked = counters_.linked.load();
  r_.chunks_cloned = counters_.cloned.load();
  r_.chunks_copied = counters_.copied.load();
  r_.chunks_reused = counters_.reused.load();
  r_.chunk_bytes = counters_.bytes.load();
  r_.bytes_linked = counters_.bytes_linked.load();
  r_.bytes_copied = counters_.bytes_copied.load();
  r_.chunks_bad = bad_users_.size();
  for (const auto& [d, users] : bad_users_) {
    std::string line = ToHex(d) + ": " + mover_.BadReason(d) + " (used by ";
    for (size_t i = 0; i < users.size(); ++i) line += (i ? ", " : "") + users[i];
    r_.bad_chunks.push_back(line + ")");
  }
  if (!status.ok()) return status;
  log_->Info(fmt::format(
      "snapshots: {} imported, {} skipped (already present), {} failed, {} unfinished ignored",
      r_.snapshots_imported, r_.snapshots_skipped, r_.snapshots_failed, r_.snapshots_unfinished));
  log_->Info(fmt::format("chunks: {} linked, {} reflinked, {} copied, {} reused, {} bad",
                         r_.chunks_linked, r_.chunks_cloned, r_.chunks_copied, r_.chunks_reused,
                         r_.chunks_bad));
  log_->Info(fmt::format("chunk data {} ({} linked, {} copied), {} index/blob/manifest data",
                         FormatHumanByte(r_.chunk_bytes), FormatHumanByte(r_.bytes_linked),
                         FormatHumanByte(r_.bytes_copied), FormatHumanByte(r_.file_bytes)));
  for (const auto& b : r_.bad_chunks) log_->Warn("bad chunk " + b);
  return r_;
}

}  // namespace

Status CheckNotS3Cache(const std::string& base, const std::optional<std::string>& backend) {
  if (backend) {
    std::string b = "," + *backend + ",";
    if (b.find(",type=s3,") != std::string::npos) {
      return Status::Unsupported(
          "datastore at " + base + " is configured with backend '" + *backend +
          "': its directory is the local cache of a PBS 4.x S3-backed datastore (metadata and "
          "an LRU cache of chunks, evicted chunks as empty files), not a complete datastore");
    }
  }
  Filesystem* fs = PosixFilesystem();
  for (const char* marker : {".in-use", ".cnt"}) {
    PBSKIT_ASSIGN_OR_RETURN(bool there, PathExists(fs, JoinPath(base, marker)));
    if (there) {
      return Status::Unsupported(std::string("datastore at ") + base + " contains '" + marker +
                                 "', the layout of a PBS 4.x S3 object store (in-use marker, "
                                 ".cnt/ content tree): not a plain datastore");
    }
  }
  const std::string chunks = JoinPath(base, ".chunks");
  std::vector<DirEntry> entries;
  for (int i = 0; i < 0x10000; ++i) {
    const std::string dir = JoinPath(chunks, fmt::format("{:04x}", i));
    entries.clear();
    Status s = fs->ReadDir(dir, &entries);
    if (s.IsNotFound()) continue;
    PBSKIT_RETURN_IF_ERROR(s);
    for (const auto& e : entries) {
      if (e.name.size() == 70 && e.name.compare(64, 6, ".using") == 0 &&
          IsDigestHex(e.name.substr(0, 64))) {
        return Status::Unsupported(
            "datastore at " + base + " has the S3 chunk marker " + JoinPath(dir, e.name) +
            ": it is the local cache of a PBS 4.x S3-backed datastore, whose chunks live in the "
            "bucket (cached ones locally, evicted ones as empty files), not a complete datastore");
      }
    }
  }
  return Status::OK();
}

Result<DatastoreImportResult> ImportDatastore(const std::shared_ptr<DataStore>& source,
                                              const std::shared_ptr<DataStore>& dest,
                                              const DatastoreImportOptions& options) {
  if (!options.log) return Status::InvalidArgument("datastore import needs a task log");
  if (RealPath(source->base()) == RealPath(dest->base())) {
    return Status::InvalidArgument("source and destination are the same datastore (" +
                                   source->base() + ")");
  }
  PBSKIT_RETURN_IF_ERROR(CheckNotS3Cache(source->base(), options.source_backend));
  PBSKIT_ASSIGN_OR_RETURN(struct stat s1,
                          source->fs()->Stat(source->chunk_store().chunk_dir(), true));
  PBSKIT_ASSIGN_OR_RETURN(struct stat s2, dest->fs()->Stat(dest->chunk_store().chunk_dir(), true));
  const bool same_fs = s1.st_dev == s2.st_dev;
  if (options.transfer == ChunkTransfer::kLink && !same_fs) {
    return Status::InvalidArgument("--link needs source and destination on the same filesystem: " +
                                   source->base() + " and " + dest->base() +
                                   " are on different filesystems (use --copy, or leave both "
                                   "flags off to copy automatically)");
  }
  Importer importer(source, dest, options, same_fs);
  return importer.Run();
}

}  // namespace pbskit
