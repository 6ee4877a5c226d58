// pbskit: one binary, many subcommands. This file only wires the registry to CLI11.
#include <algorithm>
#include <string>
#include <cstdlib>
#include <iostream>
#include <utility>
#include <vector>

#include "registry.h"

namespace pbskit::cli {
namespace {

std::vector<std::pair<int, CommandSetup>>& Commands() {
  static std::vector<std::pair<int, CommandSetup>> commands;
  return commands;
}

std::string EnvOr(const char* name, const char* fallback) {
  const char* v = std::getenv(name);
  return v && *v ? v : fallback;
}

}  // namespace

Registrar::Registrar(int order, CommandSetup setup) { Commands().emplace_back(order, setup); }

}  // namespace pbskit::cli

int main(int argc, char** argv) {
  using namespace pbskit::cli;
  GlobalOptions globals;
  globals.config_dir = EnvOr("PBSKIT_CONFIG_DIR", "./pbskit-data/etc");
  globals.state_dir = EnvOr("PBSKIT_STATE_DIR", "./pbskit-data/state");
  globals.output_format = "text";

  CLI::App app{"pbskit - read, verify, serve and migrate Proxmox Backup Server datastores",
               "pbskit"};
  app.footer(
      "Exit status: 0 success, 1 the operation found problems (e.g. verify errors),\n"
      "2 usage or configuration error.");
  app.require_subcommand(1);
  app.fallthrough();  // global options may follow the subcommand
  app.set_version_flag("--version", std::string("pbskit ") + PBSKIT_VERSION);
  app.add_option("--config-dir", globals.config_dir,
                 "configuration directory (env PBSKIT_CONFIG_DIR)")
      ->capture_default_str();
  app.add_option("--state-dir", globals.state_dir,
                 "state directory: task logs, tape inventory (env PBSKIT_STATE_DIR)")
      ->capture_default_str();
  app.add_option("--output-format", globals.output_format, "output format")
      ->check(CLI::IsMember({"text", "json", "json-pretty"}))
      ->capture_default_str();

  auto commands = Commands();
  std::stable_sort(commands.begin(), commands.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  for (auto& [order, setup] : commands) setup(app, globals);

  // Installed as `pbs3to4` (a link to pbskit), it behaves as `pbskit check`.
  std::vector<std::string> args;
  for (int i = argc - 1; i >= 1; i--) args.emplace_back(argv[i]);  // CLI11 wants them reversed
  std::string self = argv[0];
  if (self.substr(self.find_last_of('/') + 1) == "pbs3to4") args.emplace_back("check");

  try {
    app.parse(args);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  }
  return globals.exit_code;
}
