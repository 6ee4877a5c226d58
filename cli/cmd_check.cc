// `pbskit check` (also run as `pbs3to4`): the 3-to-4 upgrade checklist.
#include <sys/stat.h>

#include <fstream>
#include <iostream>

#include "output.h"
#include "pbskit/checker/checker.h"
#include "pbskit/checker/config_backup.h"
#include "registry.h"

namespace {

struct CheckArgs {
  std::string root;
  std::string color = "auto";
  std::string junit;
  std::vector<std::string> remote_versions;
  bool no_atime_probe = false;
  bool verify = false;
  int sample = 100;
  std::string backup_config;
  std::string restore_config;
  bool yes = false;
};

// --restore-config: verify the archive, show what it restores, ask, write.
int RestoreConfig(const CheckArgs& a) {
  using namespace pbskit;
  auto files = checker::ReadConfigBackup(a.restore_config);
  if (!files.ok()) return cli::ReportError(files.status(), 2);
  std::string root = a.root.empty() ? "/" : a.root;
  std::cerr << "archive " << a.restore_config << ": " << files->size()
            << " file(s), SHA-256 sums verified\n";
  for (const auto& f : *files) std::cerr << "  " << f.path << "\n";
  if (!a.yes) {
    std::cerr << "Restore these files to '" << root << "', replacing existing ones? [y/N]: "
              << std::flush;
    std::string answer;
    std::getline(std::cin, answer);
    if (answer != "y" && answer != "Y" && answer != "yes") {
      std::cerr << "Aborted.\n";
      return 1;
    }
  }
  Status st = checker::RestoreConfigFiles(*files, root);
  if (!st.ok()) return cli::ReportError(st, 1);
  std::cerr << "restored " << files->size() << " file(s)\n";
  return 0;
}

int RunCheck(const CheckArgs& a, const pbskit::cli::GlobalOptions& g) {
  using namespace pbskit;
  if (!a.restore_config.empty()) return RestoreConfig(a);
  checker::CheckOptions opts;
  opts.root = a.root;
  opts.atime_probe = !a.no_atime_probe;
  if (a.verify) opts.verify_sample_percent = a.sample;
  for (const auto& rv : a.remote_versions) {
    size_t eq = rv.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == rv.size()) {
      return cli::ReportError(
          Status::InvalidArgument("--remote-version expects NAME=VERSION, got '" + rv + "'"), 2);
    }
    opts.remote_versions[rv.substr(0, eq)] = rv.substr(eq + 1);
  }
  if (!a.root.empty() && a.root != "/") {
    struct stat st;
    if (::stat(a.root.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
      return cli::ReportError(Status::NotFound("--root " + a.root + ": not a directory"), 2);
    }
  }
  if (!a.backup_config.empty()) {
    checker::Host host(a.root);
    auto files = checker::CollectConfigFiles(host);
    if (!files.ok()) return cli::ReportError(files.status(), 2);
    Status st = checker::WriteConfigBackup(*files, a.backup_config);
    if (!st.ok()) return cli::ReportError(st, 2);
    std::cerr << "config backup: " << files->size() << " file(s) written to " << a.backup_config
              << " (with SHA-256 manifest)\n";
  }
  auto report = checker::RunChecks(opts);
  if (!report.ok()) return cli::ReportError(report.status(), 2);
  if (!a.junit.empty()) {
    std::ofstream out(a.junit, std::ios::binary | std::ios::trunc);
    out << report->RenderJunit();
    out.close();
    if (!out) {
      return cli::ReportError(Status::IoError("unable to write JUnit report " + a.junit), 2);
    }
  }
  if (g.output_format == "text") {
    bool color = a.color == "always" || (a.color == "auto" && cli::StdoutIsTerminal());
    std::cout << report->RenderText(color) << std::flush;
  } else {
    cli::PrintJson(std::cout, report->ToJson(), g.output_format);
  }
  return report->ExitCode();
}

void Setup(CLI::App& app, pbskit::cli::GlobalOptions& g) {
  auto args = std::make_shared<CheckArgs>();
  auto* sub = app.add_subcommand(
      "check",
      "Check a PBS 3.x host before the upgrade to 4.x (the pbs3to4 checklist plus datastore and "
      "configuration checks). Installed as 'pbs3to4' it runs this command.");
  sub->footer(
      "Exit status: 0 all checks passed (SKIP and NOTICE allowed), 1 at least one WARN or FAIL,\n"
      "2 the checks could not run (bad arguments, unreadable host).");
  sub->add_option("--root", args->root,
                  "check a host tree (a copy of a host's files at their real paths) instead of "
                  "the live system");
  sub->add_option("--color", args->color, "colour the text output: auto (only on a terminal), "
                                          "always (like pbs3to4), never")
      ->check(CLI::IsMember({"auto", "always", "never"}))
      ->capture_default_str();
  sub->add_option("--junit", args->junit, "also write the results as JUnit XML to FILE");
  sub->add_option("--remote-version", args->remote_versions,
                  "NAME=VERSION: version of remote NAME for the sync-job checks (instead of asking "
                  "the remote; needed for host trees)");
  sub->add_flag("--no-atime-probe", args->no_atime_probe,
                "do not probe atime updates with a temporary file in each datastore");
  sub->add_flag("--verify-datastores", args->verify,
                "verify each datastore's snapshots first, as the upgrade guide asks (records "
                "verify results and renames corrupt chunks like a PBS verify job)");
  sub->add_option("--sample", args->sample,
                  "with --verify-datastores: verify only PERCENT of the snapshots, evenly spread")
      ->check(CLI::Range(1, 100))
      ->capture_default_str();
  sub->add_option("--backup-config", args->backup_config,
                  "first save /etc/proxmox-backup, the APT sources and the other files the checks "
                  "read to FILE.tar.zst (with a SHA-256 manifest), then run the checks");
  sub->add_option("--restore-config", args->restore_config,
                  "verify FILE.tar.zst from --backup-config and put its files back (below --root "
                  "if given) after confirming; runs no checks");
  sub->add_flag("--yes", args->yes, "with --restore-config: do not ask for confirmation");
  sub->allow_extras();  // pbs3to4 ignores every argument; stay compatible with scripts
  sub->callback([args, &g] { g.exit_code = RunCheck(*args, g); });
}

}  // namespace

PBSKIT_REGISTER_COMMAND(70, Setup);
