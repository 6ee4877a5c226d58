// `pbskit snapshot ls --store S [--ns NS] SNAPSHOT ARCHIVE [PATH]`: one directory of a pxar
// archive, read through the snapshot's catalog (like the catalog shell's `ls`) or, without a
// catalog (split archives), from the archive's metadata. Text lines in the form of
// `proxmox-backup-client catalog dump`; JSON as PBS's catalog API entries.
#include <iostream>
#include <optional>

#include "keyfile.h"
#include "output.h"
#include "pbskit/formats/catalog.h"
#include "pbskit/formats/crypto.h"
#include "pbskit/datastore/pxar_archive.h"
#include "registry.h"
#include "store_args.h"

namespace pbskit::cli {
namespace {

struct LsArgs {
  std::string store;
  std::string ns;
  std::string snapshot;
  std::string archive;
  std::string path = "/";
  std::string keyfile;
};

int RunLs(GlobalOptions& g, const LsArgs& a) {
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
  auto listing = ListPxarArchive(opened->store, ref->ns, ref->dir, a.archive, a.path,
                                            crypt ? &*crypt : nullptr);
  if (!listing.ok()) {
    Code c = listing.status().code();
    return ReportError(listing.status(),
                       c == Code::kNotFound || c == Code::kInvalidArgument ? 2 : 1);
  }
  if (g.output_format != "text") {
    boost::json::array out;
    for (const PxarListEntry& e : listing->entries) {
      boost::json::object o;
      std::string full = "/" + listing->archive + e.path;
      o["filepath"] = Base64Encode(
          std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(full.data()), full.size()));
      o["text"] = e.name;
      o["type"] = std::string(1, e.type);
      o["leaf"] = e.type != 'd';
      if (e.size) o["size"] = *e.size;
      if (e.mtime) o["mtime"] = *e.mtime;
      out.push_back(std::move(o));
    }
    PrintJson(std::cout, out, g.output_format);
    return 0;
  }
  std::string text;
  for (const PxarListEntry& e : listing->entries) {
    text.push_back(e.type);
    text.push_back(' ');
    AppendQuotedPath(e.path, &text);
    if (e.size) text += " " + std::to_string(*e.size);
    if (e.mtime) text += " " + Rfc3339Utc(*e.mtime);
    text.push_back('\n');
  }
  std::cout << text;
  return 0;
}

void Setup(CLI::App& app, GlobalOptions& g) {
  CLI::App* snap = nullptr;
  try {
    snap = app.get_subcommand("snapshot");
  } catch (const CLI::OptionNotFound&) {
    snap = app.add_subcommand("snapshot", "list and manage backup snapshots");
  }
  auto a = std::make_shared<LsArgs>();
  auto* ls = snap->add_subcommand(
      "ls", "list a directory of a pxar archive of a snapshot (through the catalog when present)");
  AddStoreOption(ls, &a->store);
  AddNamespaceOption(ls, &a->ns);
  ls->add_option("snapshot", a->snapshot,
                 "snapshot: <type>/<id>/<time> (with --ns) or ns/<a>/.../<type>/<id>/<time>")
      ->required();
  ls->add_option("archive", a->archive, "pxar archive (root.pxar, root.mpxar, root.pxar.didx)")
      ->required();
  ls->add_option("path", a->path, "directory (or file) inside the archive, default /");
  ls->add_option("--keyfile", a->keyfile, "encryption key file (PBS key file format)");
  ls->callback([&g, a] { g.exit_code = RunLs(g, *a); });
}

}  // namespace
}  // namespace pbskit::cli

PBSKIT_REGISTER_COMMAND(41, pbskit::cli::Setup);
