// `pbskit restore --store S [--ns NS] SNAPSHOT ARCHIVE TARGET [--keyfile K]`: exact bytes back,
// every chunk checked on the way (proxmox-backup-client restore semantics for images, raw
// streams and blobs).
#include <chrono>
#include <cstdio>
#include <iostream>
#include <optional>

#include "keyfile.h"
#include "output.h"
#include "pbskit/datastore/archive_reader.h"
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
};

int RunRestore(GlobalOptions& g, const RestoreArgs& a) {
  auto ref = ParseSnapshotArg(a.ns, a.snapshot);
  if (!ref.ok()) return ReportError(ref.status(), 2);
  std::optional<CryptConfig> crypt;
  if (!a.keyfile.empty()) {
    auto c = LoadCryptConfig(a.keyfile);
    if (!c.ok()) return ReportError(c.status(), ExitCodeFor(c.status()));
    crypt.emplace(*c);
  }
  auto opened = OpenStoreArg(g, a.store);
  if (!opened.ok()) return ReportStoreError(opened.status());

  const std::string archive = ServerArchiveName(a.archive);
  auto t0 = std::chrono::steady_clock::now();
  auto reader = ArchiveReader::Open(opened->store, ref->ns, ref->dir, archive,
                                    crypt ? &*crypt : nullptr);
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

  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (secs <= 0) secs = 1e-6;
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
      "restore an archive of a snapshot: .fidx -> image, .didx -> raw stream, .blob -> file");
  AddStoreOption(sub, &a->store);
  AddNamespaceOption(sub, &a->ns);
  sub->add_option("SNAPSHOT", a->snapshot, "snapshot (vm/100/2024-05-01T10:00:00Z)")->required();
  sub->add_option("ARCHIVE", a->archive,
                  "archive name, with or without .fidx/.didx/.blob (drive-scsi0.img, "
                  "qemu-server.conf, root.pxar)")
      ->required();
  sub->add_option("TARGET", a->target, "target file (must not exist; '-' = standard output)")
      ->required();
  sub->add_option("--keyfile", a->keyfile, "encryption key file (PBS key file format)");
  sub->callback([&g, a] { g.exit_code = RunRestore(g, *a); });
}

}  // namespace

PBSKIT_REGISTER_COMMAND(51, Setup);

}  // namespace pbskit::cli
