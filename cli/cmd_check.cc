// `pbskit check` (also run as `pbs3to4`): the 3-to-4 upgrade checklist.
#include <sys/stat.h>

#include <fstream>
#include <iostream>

#include "output.h"
#include "pbskit/checker/checker.h"
#include "pbskit/checker/config_backup.h"
#include "pbskit/formats/crypto.h"
#include "pbskit/server/http_client.h"
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

// Asks a remote.cfg remote for its version (GET /api2/json/version), authenticating the way a
// sync job does: API token when the auth-id names one, else a ticket login. The password in
// remote.cfg is stored base64-encoded. The remote's certificate must be pinned by fingerprint.
pbskit::Result<std::string> QueryRemoteVersion(const pbskit::SectionConfigEntry& remote) {
  using namespace pbskit;
  server::HttpClientOptions o;
  const std::string* host = remote.Get("host");
  const std::string* auth_id = remote.Get("auth-id");
  const std::string* fingerprint = remote.Get("fingerprint");
  const std::string* password = remote.Get("password");
  if (!host || !auth_id) return Status::InvalidArgument("remote.cfg lacks host or auth-id");
  if (!fingerprint) {
    return Status::Unsupported("no certificate fingerprint in remote.cfg (pbskit only connects "
                               "to pinned remotes)");
  }
  o.host = *host;
  if (const std::string* port = remote.Get("port")) {
    int n = 0;
    for (char c : *port) n = (c >= '0' && c <= '9' && n < 65536) ? n * 10 + (c - '0') : 65536;
    if (port->empty() || n < 1 || n > 65535) {
      return Status::InvalidArgument("invalid port '" + *port + "' in remote.cfg");
    }
    o.port = static_cast<uint16_t>(n);
  }
  o.fingerprint = *fingerprint;
  o.timeout_seconds = 10;
  std::string secret;
  if (password) {
    auto decoded = Base64Decode(*password);
    if (!decoded.ok()) return Status::InvalidArgument("password in remote.cfg is not base64");
    secret.assign(decoded->begin(), decoded->end());
  }
  PBSKIT_ASSIGN_OR_RETURN(auto client, server::HttpClient::Connect(o));
  if (auth_id->find('!') != std::string::npos) {
    client->UseToken(*auth_id, secret);
  } else {
    PBSKIT_RETURN_IF_ERROR(client->Login(*auth_id, secret));
  }
  PBSKIT_ASSIGN_OR_RETURN(boost::json::value data, client->Call("GET", "/version"));
  const auto* obj = data.if_object();
  const auto* version = obj ? obj->if_contains("version") : nullptr;
  const auto* release = obj ? obj->if_contains("release") : nullptr;
  if (!version || !version->is_string()) {
    return Status::Corruption("unexpected /version answer from " + *host);
  }
  std::string v(version->as_string());
  if (release && release->is_string()) v += "." + std::string(release->as_string());
  return v;
}

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
  // Remotes are asked only from the live system; a host tree is an offline copy.
  if (a.root.empty() || a.root == "/") opts.query_remote_version = QueryRemoteVersion;
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
  // pbs3to4 ignores its arguments; accept `--full` (known from pve8to9) so scripts written for
  // the checklist tools keep working. Other unknown arguments are usage errors (exit 2).
  static bool full_ignored = false;
  sub->add_flag("--full", full_ignored, "accepted and ignored, like pbs3to4 does")
      ->group("");
  sub->callback([args, &g] { g.exit_code = RunCheck(*args, g); });
}

}  // namespace

PBSKIT_REGISTER_COMMAND(70, Setup);
