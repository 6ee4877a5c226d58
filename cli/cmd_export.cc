// `pbskit export --store S [--ns NS] SNAPSHOT ARCHIVE FILE.tar[.zst]`: a pxar archive of a
// snapshot (unified or split) as a POSIX pax tar written with libarchive, for users leaving the
// format. Every chunk is checked on the way; FILE '-' writes to standard output. A file target
// is written beside its final name and renamed into place only when complete.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <iostream>
#include <optional>

#include "keyfile.h"
#include "output.h"
#include "pbskit/datastore/pxar_archive.h"
#include "pbskit/datastore/pxar_export.h"
#include "registry.h"
#include "store_args.h"

namespace pbskit::cli {
namespace {

struct ExportArgs {
  std::string store;
  std::string ns;
  std::string snapshot;
  std::string archive;
  std::string target;
  std::string keyfile;
  std::string compress;  // "", "zstd", "none"
};

bool EndsWith(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

int RunExport(GlobalOptions& g, const ExportArgs& a) {
  auto ref = ParseSnapshotArg(a.ns, a.snapshot);
  if (!ref.ok()) return ReportError(ref.status(), 2);
  if (!IsPxarArchiveName(a.archive))
    return ReportError(
        Status::InvalidArgument("unable to export '" + a.archive +
                                "' as tar: only pxar archives (.pxar, .mpxar/.ppxar) hold file "
                                "trees; use 'pbskit restore' for images, blobs and other streams"),
        2);
  bool zstd = EndsWith(a.target, ".zst") || EndsWith(a.target, ".tzst");
  if (a.compress == "zstd") zstd = true;
  if (a.compress == "none") zstd = false;
  std::optional<CryptConfig> crypt;
  if (!a.keyfile.empty()) {
    auto c = LoadCryptConfig(a.keyfile);
    if (!c.ok()) return ReportError(c.status(), ExitCodeFor(c.status()));
    crypt.emplace(*c);
  }
  auto opened = OpenStoreArg(g, a.store);
  if (!opened.ok()) return ReportStoreError(opened.status());
  auto t0 = std::chrono::steady_clock::now();
  auto archive = StorePxarArchive::Open(opened->store, ref->ns, ref->dir, a.archive,
                                                   crypt ? &*crypt : nullptr, {});
  if (!archive.ok()) {
    Code c = archive.status().code();
    return ReportError(archive.status(),
                       c == Code::kNotFound || c == Code::kInvalidArgument ? 2 : 1);
  }

  int fd = 1;
  std::string tmp;
  if (a.target != "-") {
    struct stat st;
    if (::lstat(a.target.c_str(), &st) == 0)
      return ReportError(
          Status::AlreadyExists("unable to create target file \"" + a.target + "\" - File exists"),
          2);
    tmp = a.target + ".tmp_XXXXXX";
    fd = ::mkstemp(tmp.data());
    if (fd < 0)
      return ReportError(
          Status::FromErrno(errno, "unable to create target file \"" + a.target + "\""), 1);
    ::fchmod(fd, 0644);
  }
  PxarExportOptions o;
  o.format = zstd ? PxarExportFormat::kTarZstd : PxarExportFormat::kTar;
  o.warn = [](const std::string& w) { std::cerr << "Warning: " << w << "\n"; };
  auto stats = ExportPxar((*archive)->decoder(), fd, o);
  Status result = stats.status();
  if (!tmp.empty()) {
    if (result.ok() && ::fsync(fd) != 0) result = Status::FromErrno(errno, "fsync " + tmp);
    if (::close(fd) != 0 && result.ok()) result = Status::FromErrno(errno, "close " + tmp);
    if (result.ok() && ::rename(tmp.c_str(), a.target.c_str()) != 0)
      result = Status::FromErrno(errno, "rename " + tmp + " to " + a.target);
    if (!result.ok()) ::unlink(tmp.c_str());
  }
  if (!result.ok())
    return ReportError(Status(result.code(), "error exporting archive - " + result.message()), 1);
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  char line[256];
  std::snprintf(line, sizeof line,
                "export complete (members=%llu, files=%llu, file bytes=%llu, hardlinks=%llu, "
                "%s, duration=%.2fs)",
                static_cast<unsigned long long>(stats->entries),
                static_cast<unsigned long long>(stats->files),
                static_cast<unsigned long long>(stats->file_bytes),
                static_cast<unsigned long long>(stats->hardlinks), zstd ? "zstd" : "uncompressed",
                secs);
  std::cerr << line << "\n";
  return 0;
}

void Setup(CLI::App& app, GlobalOptions& g) {
  auto a = std::make_shared<ExportArgs>();
  auto* sub = app.add_subcommand(
      "export", "write a pxar archive of a snapshot as a tar file (pax format; .zst = zstd)");
  AddStoreOption(sub, &a->store);
  AddNamespaceOption(sub, &a->ns);
  sub->add_option("SNAPSHOT", a->snapshot, "snapshot (host/web/2024-05-03T08:00:00Z)")->required();
  sub->add_option("ARCHIVE", a->archive, "pxar archive (root.pxar, root.mpxar, root.pxar.didx)")
      ->required();
  sub->add_option("FILE", a->target,
                  "tar file to write (must not exist; ending .zst = zstd compressed; '-' = "
                  "standard output)")
      ->required();
  sub->add_option("--keyfile", a->keyfile, "encryption key file (PBS key file format)");
  sub->add_option("--compress", a->compress, "compression: zstd or none (default: by FILE name)")
      ->check(CLI::IsMember({"zstd", "none"}));
  sub->callback([&g, a] { g.exit_code = RunExport(g, *a); });
}

}  // namespace

PBSKIT_REGISTER_COMMAND(52, Setup);

}  // namespace pbskit::cli
