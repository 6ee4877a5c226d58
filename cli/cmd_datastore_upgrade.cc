// `pbskit datastore upgrade PATH [--dry-run]`: brings a datastore written by an older PBS version
// in place to what PBS 4.x expects, listing every change.
#include <iostream>
#include <memory>

#include "output.h"
#include "pbskit/datastore/datastore_config.h"
#include "pbskit/upgrade/datastore_upgrade.h"
#include "registry.h"

namespace pbskit::cli {
namespace {

struct UpgradeArgs {
  std::string path;
  bool dry_run = false;
  std::string owner = "root@pam";
};

int RunUpgrade(const GlobalOptions& g, const UpgradeArgs& a) {
  std::string path = a.path;
  if (path.find('/') == std::string::npos) {
    // A configured datastore name is accepted as well as a path.
    auto cfg = DatastoreConfig::Load(g.config_dir);
    if (cfg.ok()) {
      if (const auto* e = cfg->Find(path)) path = e->path();
    }
  }
  DatastoreUpgradeOptions o;
  o.dry_run = a.dry_run;
  o.default_owner = a.owner;
  auto r = UpgradeDatastore(path, o);
  if (!r.ok()) return ReportError(r.status(), r.status().IsNotFound() ? 2 : 1);

  const bool text = g.output_format.empty() || g.output_format == "text";
  if (!text) {
    boost::json::object j;
    j["path"] = path;
    j["dry-run"] = r->dry_run;
    boost::json::array changes, problems, notes;
    for (const auto& c : r->changes) {
      changes.push_back(boost::json::object{{"path", c.path}, {"change", c.description}});
    }
    for (const auto& p : r->problems) problems.emplace_back(p);
    for (const auto& n : r->notes) notes.emplace_back(n);
    j["changes"] = std::move(changes);
    j["problems"] = std::move(problems);
    j["notes"] = std::move(notes);
    j["namespaces"] = r->namespaces;
    j["groups"] = r->groups;
    j["snapshots"] = r->snapshots;
    PrintJson(std::cout, j, g.output_format);
    return r->problems.empty() ? 0 : 1;
  }
  const char* verb = r->dry_run ? "would " : "";
  for (const auto& c : r->changes) std::cout << verb << c.description << ": " << c.path << "\n";
  for (const auto& p : r->problems) std::cout << "problem: " << p << "\n";
  for (const auto& n : r->notes) std::cout << "note: " << n << "\n";
  std::cout << "checked " << r->namespaces << " namespace(s), " << r->groups << " group(s), "
            << r->snapshots << " snapshot(s)\n";
  if (r->changes.empty()) {
    std::cout << "datastore " << path << " already matches the PBS 4.x layout\n";
  } else if (r->dry_run) {
    std::cout << r->changes.size() << " change(s) needed (dry run, nothing written)\n";
  } else {
    std::cout << r->changes.size() << " change(s) made\n";
  }
  if (!r->problems.empty()) {
    std::cout << r->problems.size() << " problem(s) need attention by hand\n";
    return 1;
  }
  return 0;
}

void Setup(CLI::App& app, GlobalOptions& g) {
  CLI::App* ds = nullptr;
  try {
    ds = app.get_subcommand("datastore");
  } catch (const CLI::OptionNotFound&) {
    ds = app.add_subcommand("datastore", "create and list datastores (datastore.cfg)");
    ds->require_subcommand(1);
  }
  auto a = std::make_shared<UpgradeArgs>();
  auto* sub = ds->add_subcommand(
      "upgrade",
      "bring a datastore written by an older PBS version in place to the PBS 4.x layout "
      "(never touches chunks, indexes or manifests)");
  sub->add_option("PATH", a->path, "datastore directory (or a configured datastore name)")
      ->required();
  sub->add_flag("--dry-run", a->dry_run, "only list what would change");
  sub->add_option("--owner", a->owner,
                  "owner written for groups without an owner file (default root@pam)");
  sub->callback([&g, a] { g.exit_code = RunUpgrade(g, *a); });
}

}  // namespace
}  // namespace pbskit::cli

// After cli/cmd_datastore.cc (10), which creates the "datastore" command.
PBSKIT_REGISTER_COMMAND(11, pbskit::cli::Setup);
