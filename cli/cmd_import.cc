// `pbskit import vzdump FILE... --store S [--ns NS] [--salvage]`: imports Proxmox VE vzdump VM
// archives (.vma, .vma.zst, .vma.gz, .vma.lzo) as PBS snapshots.
#include <cstdio>
#include <iostream>
#include <memory>
#include <optional>

#include "output.h"
#include "pbskit/formats/names.h"
#include "pbskit/importers/vzdump_import.h"
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
};

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
      "vzdump", "Import Proxmox VE vzdump VM archives (vzdump-qemu-<vmid>-<time>.vma[.zst|.gz|.lzo])");
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
  vz->callback([&g, va] { g.exit_code = RunVzdump(g, *va); });
}

}  // namespace
}  // namespace pbskit::cli

PBSKIT_REGISTER_COMMAND(85, pbskit::cli::Setup);
