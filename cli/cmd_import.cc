// `pbskit import vzdump FILE... --store S [--ns NS] [--salvage]`: imports Proxmox VE vzdump VM
// archives (.vma, .vma.zst, .vma.gz, .vma.lzo) and container archives (.tar, .tar.zst, .tar.gz,
// .tar.lzo) as PBS snapshots.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iomanip>
#include <iostream>
#include <memory>
#include <optional>

#include "output.h"
#include "pbskit/formats/names.h"
#include "pbskit/importers/vzdump_import.h"
#include "pbskit/importers/vzdump_lxc.h"
#include "registry.h"
#include "store_args.h"

namespace pbskit::cli {
namespace {

struct VzdumpArgs {
  std::vector<std::string> files;
  std::string store;
  std::string ns;
  bool salvage = false;
  std::string owner = "root@pam";
  std::string time_zone;
  std::string backup_id;
  std::string backup_time;
  // container archives
  std::string tmpdir;
  std::vector<std::string> exclude_paths;
  bool no_stdexcludes = false;
};

// A container archive by name: vzdump-lxc-*.tar*, any *.tar, *.tar.<compression>, *.tgz.
bool IsContainerArchive(const std::string& file) {
  std::string base = BaseName(file);
  auto name = ParseVzdumpFileName(base);
  if (name.ok()) return name->format != "vma";
  // Any tar, also with a compression vzdump does not write (refused with that reason).
  if (base.find(".tar.") != std::string::npos) return true;
  for (const std::string e : {".tar", ".tgz"}) {
    if (base.size() > e.size() && base.compare(base.size() - e.size(), e.size(), e) == 0)
      return true;
  }
  return false;
}

// Progress of one import phase: a bar with rate and ETA redrawn in place on a terminal, a
// plain line every 10 seconds otherwise.
class Progress {
 public:
  Progress(std::string label, bool tty) : label_(std::move(label)), tty_(tty) {}
  void Update(const char* phase, uint64_t done, uint64_t total) {
    auto now = std::chrono::steady_clock::now();
    if (phase_ != phase) {
      phase_ = phase;
      start_ = now;
      last_line_ = now;
    }
    double secs = std::chrono::duration<double>(now - start_).count();
    double rate = secs > 0.2 ? static_cast<double>(done) / secs : 0;
    double frac = total ? std::min(1.0, static_cast<double>(done) / static_cast<double>(total)) : 0;
    std::string eta = "--";
    if (rate > 0 && total > done) {
      auto left = static_cast<uint64_t>(static_cast<double>(total - done) / rate);
      char b[32];
      std::snprintf(b, sizeof b, "%llu:%02llu", static_cast<unsigned long long>(left / 60),
                    static_cast<unsigned long long>(left % 60));
      eta = b;
    }
    std::string rate_s = rate > 0 ? HumanBytes(static_cast<uint64_t>(rate)) + "/s" : "-";
    if (tty_) {
      const int width = 24;
      int fill = static_cast<int>(frac * width);
      std::string bar = std::string(fill, '#') + std::string(width - fill, '-');
      std::fprintf(stderr, "\r\033[K%s: %-6s [%s] %5.1f%% %s ETA %s", label_.c_str(), phase,
                   bar.c_str(), 100 * frac, rate_s.c_str(), eta.c_str());
      std::fflush(stderr);
    } else if (now - last_line_ >= std::chrono::seconds(10)) {
      last_line_ = now;
      std::fprintf(stderr, "%s: %s %s of %s (%.1f%%), %s, ETA %s\n", label_.c_str(), phase,
                   HumanBytes(done).c_str(), HumanBytes(total).c_str(), 100 * frac,
                   rate_s.c_str(), eta.c_str());
    }
  }
  void Clear() {
    if (tty_ && !phase_.empty()) std::fprintf(stderr, "\r\033[K");
  }

 private:
  std::string label_;
  bool tty_;
  std::string phase_;
  std::chrono::steady_clock::time_point start_, last_line_;
};

// One container archive; prints the text summary or appends the JSON object.
int ImportContainer(const std::shared_ptr<DataStore>& store, const std::string& file,
                    const VzdumpArgs& a, const VzdumpImportOptions& common, bool text,
                    boost::json::array* out) {
  VzdumpLxcImportOptions o;
  o.common = common;
  o.common.progress = nullptr;
  o.temp_dir = a.tmpdir;
  o.exclude_paths = a.exclude_paths;
  o.stdexcludes = !a.no_stdexcludes;
  Progress progress(BaseName(file), StderrIsTerminal());
  o.progress = [&progress](const char* phase, uint64_t done, uint64_t total) {
    progress.Update(phase, done, total);
  };
  auto r = ImportVzdumpLxc(store, file, o);
  progress.Clear();
  if (!r.ok()) return ReportError(r.status().WithContext(file), 1);
  const VzdumpImportResult& c = r->common;
  std::string snap = c.dir.ToString();
  if (!c.ns.IsRoot()) snap = "ns/" + c.ns.ToString() + ": " + snap;
  const LxcTarStats& t = r->tar;
  const double ratio = c.stored_bytes ? static_cast<double>(c.image_bytes) /
                                            static_cast<double>(c.stored_bytes)
                                      : 0.0;
  if (text) {
    std::cout << "imported " << BaseName(file) << " as " << snap << "\n"
              << "  compression: " << VzdumpCompressionName(c.compression) << ", read "
              << HumanBytes(c.file_bytes) << " (" << HumanBytes(c.archive_bytes)
              << " tar data), " << t.entries << " entries, " << t.files << " files ("
              << HumanBytes(t.data_bytes) << "), " << t.hardlinks << " hard links\n"
              << "  root.pxar: " << HumanBytes(c.image_bytes) << "\n"
              << "  chunks: " << c.chunks_new << " new (" << HumanBytes(c.stored_bytes)
              << " stored";
    if (ratio > 0) std::cout << ", compression ratio " << std::fixed << std::setprecision(2) << ratio;
    std::cout << "), " << c.chunks_reused << " reused\n"
              << "  archives:";
    for (const auto& ar : c.archives) std::cout << " " << ar;
    std::cout << "\n";
    for (const auto& w : r->warnings) std::cout << "  warning: " << w << "\n";
    if (!c.damage.empty()) {
      std::cout << "  salvaged damaged archive: " << c.damage << "\n";
      for (const auto& gap : c.gaps) std::cout << "    " << gap << "\n";
    }
    return 0;
  }
  boost::json::object j;
  j["file"] = file;
  if (!c.ns.IsRoot()) j["ns"] = c.ns.ToString();
  j["backup-type"] = "ct";
  j["backup-id"] = c.dir.group.id;
  j["backup-time"] = c.dir.time;
  j["compression"] = VzdumpCompressionName(c.compression);
  j["file-bytes"] = c.file_bytes;
  j["archive-bytes"] = c.archive_bytes;
  j["pxar-bytes"] = c.image_bytes;
  j["entries"] = t.entries;
  j["files"] = t.files;
  j["hardlinks"] = t.hardlinks;
  j["data-bytes"] = t.data_bytes;
  j["chunks-new"] = c.chunks_new;
  j["chunks-reused"] = c.chunks_reused;
  j["stored-bytes"] = c.stored_bytes;
  boost::json::array files;
  for (const auto& ar : c.archives) files.emplace_back(ar);
  j["archives"] = std::move(files);
  boost::json::array warnings;
  for (const auto& w : r->warnings) warnings.emplace_back(w);
  j["warnings"] = std::move(warnings);
  if (!c.damage.empty()) {
    j["damage"] = c.damage;
    boost::json::array gaps;
    for (const auto& gap : c.gaps) gaps.emplace_back(gap);
    j["gaps"] = std::move(gaps);
  }
  out->push_back(std::move(j));
  return 0;
}

int RunVzdump(const GlobalOptions& g, const VzdumpArgs& a) {
  auto opened = OpenStoreArg(g, a.store);
  if (!opened.ok()) return ReportStoreError(opened.status());
  auto ns = ParseNamespaceArg(a.ns);
  if (!ns.ok()) return ReportError(ns.status(), 2);
  VzdumpImportOptions o;
  o.ns = *ns;
  o.auth_id = a.owner;
  o.salvage = a.salvage;
  o.time_zone = a.time_zone;
  if (!a.backup_id.empty()) o.backup_id = a.backup_id;
  if (!a.backup_time.empty()) {
    auto t = ParseBackupTime(a.backup_time);
    if (!t.ok()) return ReportError(t.status(), 2);
    o.backup_time = *t;
  }
  if (a.files.size() > 1 && (o.backup_id || o.backup_time))
    return ReportError(Status::InvalidArgument("--backup-id/--backup-time need a single FILE"), 2);
  const bool tty = StderrIsTerminal();
  const bool text = g.output_format.empty() || g.output_format == "text";
  boost::json::array out;
  int rc = 0;
  for (const auto& file : a.files) {
    if (IsContainerArchive(file)) {
      rc = std::max(rc, ImportContainer(opened->store, file, a, o, text, &out));
      continue;
    }
    if (tty) {
      o.progress = [&file](uint64_t done, uint64_t total) {
        if (total == 0) return;
        std::fprintf(stderr, "\r%s: %s of %s (%.1f%%)   ", BaseName(file).c_str(),
                     HumanBytes(done).c_str(), HumanBytes(total).c_str(),
                     100.0 * static_cast<double>(done) / static_cast<double>(total));
        std::fflush(stderr);
      };
    }
    auto r = ImportVzdump(opened->store, file, o);
    if (tty) std::fprintf(stderr, "\r\033[K");
    if (!r.ok()) {
      rc = std::max(rc, ReportError(r.status().WithContext(file), 1));
      continue;
    }
    std::string snap = r->dir.ToString();
    if (!r->ns.IsRoot()) snap = "ns/" + r->ns.ToString() + ": " + snap;
    if (text) {
      std::cout << "imported " << BaseName(file) << " as " << snap << "\n"
                << "  compression: " << VzdumpCompressionName(r->compression)
                << ", read " << HumanBytes(r->file_bytes) << " (" << HumanBytes(r->archive_bytes)
                << " VMA data), images " << HumanBytes(r->image_bytes) << "\n"
                << "  chunks: " << r->chunks_new << " new (" << HumanBytes(r->stored_bytes)
                << " stored), " << r->chunks_reused << " reused\n"
                << "  archives:";
      for (const auto& ar : r->archives) std::cout << " " << ar;
      std::cout << "\n";
      if (!r->damage.empty()) {
        std::cout << "  salvaged damaged archive: " << r->damage << "\n";
        for (const auto& gap : r->gaps) std::cout << "    " << gap << "\n";
      }
    } else {
      boost::json::object j;
      j["file"] = file;
      if (!r->ns.IsRoot()) j["ns"] = r->ns.ToString();
      j["backup-type"] = "vm";
      j["backup-id"] = r->dir.group.id;
      j["backup-time"] = r->dir.time;
      j["compression"] = VzdumpCompressionName(r->compression);
      j["file-bytes"] = r->file_bytes;
      j["archive-bytes"] = r->archive_bytes;
      j["image-bytes"] = r->image_bytes;
      j["chunks-new"] = r->chunks_new;
      j["chunks-reused"] = r->chunks_reused;
      j["stored-bytes"] = r->stored_bytes;
      boost::json::array files;
      for (const auto& ar : r->archives) files.emplace_back(ar);
      j["files"] = std::move(files);
      if (!r->damage.empty()) {
        j["damage"] = r->damage;
        boost::json::array gaps;
        for (const auto& gap : r->gaps) gaps.emplace_back(gap);
        j["gaps"] = std::move(gaps);
      }
      out.push_back(std::move(j));
    }
  }
  if (!text) PrintJson(std::cout, out, g.output_format);
  return rc;
}

void Setup(CLI::App& app, GlobalOptions& g) {
  auto* imp = app.add_subcommand("import", "Import backups made outside this datastore");
  imp->require_subcommand(1);

  auto va = std::make_shared<VzdumpArgs>();
  auto* vz = imp->add_subcommand(
      "vzdump",
      "Import Proxmox VE vzdump archives: VMs (vzdump-qemu-<vmid>-<time>.vma[.zst|.gz|.lzo]) and "
      "containers (vzdump-lxc-<vmid>-<time>.tar[.zst|.gz|.lzo])");
  vz->add_option("FILE", va->files, "vzdump archive(s)")->required();
  AddStoreOption(vz, &va->store);
  AddNamespaceOption(vz, &va->ns);
  vz->add_flag("--salvage", va->salvage,
               "Import damaged or truncated archives; missing data becomes zeros and the gaps "
               "are listed in the snapshot notes");
  vz->add_option("--owner", va->owner, "Owner (auth-id) of a newly created group")
      ->default_val("root@pam");
  vz->add_option("--time-zone", va->time_zone,
                 "Time zone of the node that wrote the archive (its names use local time); "
                 "default: this machine's");
  vz->add_option("--backup-id", va->backup_id, "Backup id instead of the VMID of the file name");
  vz->add_option("--backup-time", va->backup_time,
                 "Backup time (RFC 3339) instead of the time of the file name");
  vz->add_option("--tmpdir", va->tmpdir,
                 "Containers: directory for the spool of file contents while the tar is "
                 "reordered (default: $TMPDIR, else /var/tmp)");
  vz->add_option("--exclude-path", va->exclude_paths,
                 "Containers: an exclude-path pattern the backup ran with (for "
                 ".pxarexclude-cli, as proxmox-backup-client records it); repeatable");
  vz->add_flag("--no-stdexcludes", va->no_stdexcludes,
               "Containers: the backup ran with stdexcludes 0 (no /tmp, /var/tmp, /var/run "
               "patterns in .pxarexclude-cli)");
  vz->callback([&g, va] { g.exit_code = RunVzdump(g, *va); });
}

}  // namespace
}  // namespace pbskit::cli

PBSKIT_REGISTER_COMMAND(85, pbskit::cli::Setup);
