// `pbskit restore --store S [--ns NS] SNAPSHOT ARCHIVE TARGET [--keyfile K]`: exact bytes back,
// every chunk checked on the way (proxmox-backup-client restore semantics): images, raw streams
// and blobs to a file; pxar archives (unified or split) into a directory, with --pattern and the
// ignore/overwrite options of proxmox-backup-client restore.
#include <chrono>
#include <cstdio>
#include <iostream>
#include <optional>

#include "keyfile.h"
#include "output.h"
#include "pbskit/datastore/archive_reader.h"
#include "pbskit/importers/pxar_restore.h"
#include "registry.h"
#include "store_args.h"

namespace pbskit::cli {
namespace {

struct RestoreArgs {
  std::string store;
  std::string ns;
  std::string snapshot;
  std::string archive;
  std::string target;
  std::string keyfile;
  std::vector<std::string> patterns;
  bool allow_existing_dirs = false;
  bool overwrite = false, overwrite_files = false, overwrite_symlinks = false,
       overwrite_hardlinks = false;
  bool ignore_acls = false, ignore_xattrs = false, ignore_ownership = false,
       ignore_permissions = false;
  std::string prelude_target;
};

double Seconds(std::chrono::steady_clock::time_point t0) {
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return secs <= 0 ? 1e-6 : secs;
}

// A pxar archive into a directory (proxmox-backup-client restore's extract_archive path).
int RestorePxarToDir(std::shared_ptr<DataStore> store, const SnapshotRef& ref, const RestoreArgs& a,
                     const CryptConfig* crypt, const importers::PxarMatchList& matches) {
  auto t0 = std::chrono::steady_clock::now();
  pxar::DecoderOptions dopts;
  dopts.report_directory_end = true;
  auto archive = StorePxarArchive::Open(store, ref.ns, ref.dir, a.archive, crypt, dopts);
  if (!archive.ok()) {
    Code c = archive.status().code();
    return ReportError(archive.status(),
                       c == Code::kNotFound || c == Code::kInvalidArgument ? 2 : 1);
  }
  if ((*archive)->manifest().signature && crypt)
    std::cerr << "Fingerprint: " << crypt->FingerprintString() << "\n";
  importers::PxarRestoreOptions o;
  o.features.xattrs = !a.ignore_xattrs;
  o.features.acls = !a.ignore_acls;
  o.owner = !a.ignore_ownership;
  o.permissions = !a.ignore_permissions;
  o.match_list = &matches;
  o.allow_existing_dirs = a.allow_existing_dirs;
  o.overwrite_files = a.overwrite || a.overwrite_files;
  o.overwrite_symlinks = a.overwrite || a.overwrite_symlinks;
  o.overwrite_hardlinks = a.overwrite || a.overwrite_hardlinks;
  o.prelude_target = a.prelude_target;
  o.warn = [](const std::string& w) { std::cerr << w << "\n"; };
  auto stats = importers::RestorePxar((*archive)->decoder(), a.target, o);
  if (!stats.ok())
    return ReportError(
        Status(stats.status().code(), "error extracting archive - " + stats.status().message()), 1);
  double secs = Seconds(t0);
  uint64_t bytes = (*archive)->total_size();
  char line[256];
  std::snprintf(line, sizeof line,
                "restore archive complete (entries=%llu, files=%llu, file bytes=%llu, "
                "archive bytes=%llu, duration=%.2fs, speed=%.2fMB/s)",
                static_cast<unsigned long long>(stats->entries),
                static_cast<unsigned long long>(stats->files),
                static_cast<unsigned long long>(stats->file_bytes),
                static_cast<unsigned long long>(bytes), secs,
                static_cast<double>(bytes) / (1024.0 * 1024.0 * secs));
  std::cerr << line << "\n";
  return 0;
}

int RunRestore(GlobalOptions& g, const RestoreArgs& a) {
  auto ref = ParseSnapshotArg(a.ns, a.snapshot);
  if (!ref.ok()) return ReportError(ref.status(), 2);
  std::optional<CryptConfig> crypt;
  if (!a.keyfile.empty()) {
    auto c = LoadCryptConfig(a.keyfile);
    if (!c.ok()) return ReportError(c.status(), ExitCodeFor(c.status()));
    crypt.emplace(*c);
  }
  importers::PxarMatchList matches;
  for (const std::string& p : a.patterns) {
    Status st = matches.Add(p);
    if (!st.ok()) return ReportError(st, 2);
  }
  const bool pxar = IsPxarArchiveName(a.archive);
  if (!a.patterns.empty() && a.target == "-")
    return ReportError(Status::InvalidArgument("patterns not allowed when restoring to stdout"), 2);
  if (!a.patterns.empty() && !pxar)
    return ReportError(
        Status::InvalidArgument("--pattern only applies to pxar archives (.pxar, .mpxar/.ppxar)"),
        2);
  auto opened = OpenStoreArg(g, a.store);
  if (!opened.ok()) return ReportStoreError(opened.status());

  std::string archive = ServerArchiveName(a.archive);
  if (pxar && a.target != "-")
    return RestorePxarToDir(opened->store, *ref, a, crypt ? &*crypt : nullptr, matches);
  if (pxar) {
    // Only a unified archive can be piped; the names resolve like for a directory restore.
    auto manifest = opened->store->LoadManifest(ref->ns, ref->dir);
    if (!manifest.ok()) return ReportError(manifest.status(), ExitCodeFor(manifest.status()));
    auto names = ResolvePxarArchiveNames(*manifest, a.archive);
    if (!names.ok()) return ReportError(names.status(), 2);
    if (names->payload)
      return ReportError(Status::InvalidArgument("unable to pipe split archive"), 2);
    archive = names->archive;
  }
  auto t0 = std::chrono::steady_clock::now();
  auto reader =
      ArchiveReader::Open(opened->store, ref->ns, ref->dir, archive, crypt ? &*crypt : nullptr);
  if (!reader.ok()) {
    Code c = reader.status().code();
    return ReportError(reader.status(),
                       c == Code::kNotFound || c == Code::kInvalidArgument ? 2 : 1);
  }
  if ((*reader)->manifest().signature && crypt)
    std::cerr << "Fingerprint: " << crypt->FingerprintString() << "\n";

  ArchiveReadStats stats;
  Status st = RestoreArchive(**reader, a.target, &stats);
  if (!st.ok()) return ReportError(st, st.code() == Code::kAlreadyExists ? 2 : 1);

  double secs = Seconds(t0);
  char line[200];
  const char* what = (*reader)->type() == ArchiveType::kFixedIndex     ? "image"
                     : (*reader)->type() == ArchiveType::kDynamicIndex ? "archive"
                                                                       : "blob";
  std::snprintf(line, sizeof line,
                "restore %s complete (bytes=%llu, duration=%.2fs, speed=%.2fMB/s)", what,
                static_cast<unsigned long long>(stats.decoded_bytes), secs,
                static_cast<double>(stats.decoded_bytes) / (1024.0 * 1024.0 * secs));
  std::cerr << line << "\n";
  return 0;
}

void Setup(CLI::App& app, GlobalOptions& g) {
  auto a = std::make_shared<RestoreArgs>();
  auto* sub = app.add_subcommand(
      "restore",
      "restore an archive of a snapshot: .fidx -> image, .blob -> file, pxar -> directory "
      "(or the raw stream with TARGET '-'), other .didx -> raw stream");
  AddStoreOption(sub, &a->store);
  AddNamespaceOption(sub, &a->ns);
  sub->add_option("SNAPSHOT", a->snapshot, "snapshot (vm/100/2024-05-01T10:00:00Z)")->required();
  sub->add_option("ARCHIVE", a->archive,
                  "archive name, with or without .fidx/.didx/.blob (drive-scsi0.img, "
                  "qemu-server.conf, root.pxar)")
      ->required();
  sub->add_option("TARGET", a->target,
                  "target file (must not exist) or, for pxar archives, target directory; '-' = "
                  "standard output (pxar archives are not extracted then)")
      ->required();
  sub->add_option("--keyfile", a->keyfile, "encryption key file (PBS key file format)");
  sub->add_option("--pattern", a->patterns,
                  "path or match pattern to limit files that get restored (pxar; PBS match "
                  "syntax: 'etc/**', '!*.log', trailing '/' = directories only)");
  sub->add_flag("--allow-existing-dirs", a->allow_existing_dirs,
                "do not fail if directories already exist");
  sub->add_flag("--overwrite", a->overwrite,
                "overwrite already existing files, symlinks and hardlinks");
  sub->add_flag("--overwrite-files", a->overwrite_files, "overwrite already existing files");
  sub->add_flag("--overwrite-symlinks", a->overwrite_symlinks,
                "overwrite already existing entries by archives symlink");
  sub->add_flag("--overwrite-hardlinks", a->overwrite_hardlinks,
                "overwrite already existing entries by archives hardlink");
  sub->add_flag("--ignore-acls", a->ignore_acls, "ignore acl settings");
  sub->add_flag("--ignore-xattrs", a->ignore_xattrs, "ignore xattr settings");
  sub->add_flag("--ignore-ownership", a->ignore_ownership, "ignore owner settings (no chown)");
  sub->add_flag("--ignore-permissions", a->ignore_permissions,
                "ignore permission settings (no chmod)");
  sub->add_option("--prelude-target", a->prelude_target,
                  "path to restore the prelude to (pxar v2 archives only)");
  sub->callback([&g, a] { g.exit_code = RunRestore(g, *a); });
}

}  // namespace

PBSKIT_REGISTER_COMMAND(51, Setup);

}  // namespace pbskit::cli
