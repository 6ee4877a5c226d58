// Subcommand registry. Each cli/cmd_*.cc registers its subcommands with PBSKIT_REGISTER_COMMAND;
// main() builds the CLI11 app from them in `order`, parses, and returns the exit status the
// subcommand left in GlobalOptions::exit_code.
//
// Exit status contract (documented in `pbskit --help`):
//   0  success
//   1  the operation ran and found problems (verify errors, failed checks, failed restore ...)
//   2  usage or configuration error (bad arguments, unknown datastore, unreadable config)
#pragma once

#include <CLI/CLI.hpp>
#include <string>

namespace pbskit::cli {

struct GlobalOptions {
  std::string config_dir;     // --config-dir / PBSKIT_CONFIG_DIR, default ./pbskit-data/etc
  std::string state_dir;      // --state-dir / PBSKIT_STATE_DIR, default ./pbskit-data/state
  std::string output_format;  // --output-format text|json|json-pretty (default text)
  int exit_code = 0;
};

using CommandSetup = void (*)(CLI::App& app, GlobalOptions& globals);

struct Registrar {
  Registrar(int order, CommandSetup setup);
};

}  // namespace pbskit::cli

#define PBSKIT_REGISTER_COMMAND(order, fn) \
  static ::pbskit::cli::Registrar PBSKIT_CLI_CONCAT(_pbskit_registrar_, __LINE__)(order, fn)
#define PBSKIT_CLI_CONCAT_INNER(a, b) a##b
#define PBSKIT_CLI_CONCAT(a, b) PBSKIT_CLI_CONCAT_INNER(a, b)
