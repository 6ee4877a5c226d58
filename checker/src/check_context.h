// Shared state of one checker run (private to checker/src).
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "pbskit/checker/checker.h"
#include "pbskit/checker/host.h"
#include "pbskit/checker/report.h"
#include "pbskit/formats/section_config.h"

namespace pbskit::checker {

struct CheckContext {
  const CheckOptions& options;
  Host host;
  Report report;
  bool upgraded = false;                             // set by the meta-package check
  std::optional<std::map<std::string, std::string>> installed;  // dpkg status, when readable
  std::string kernel_release;                        // running kernel, "" if unknown

  // Parsed /etc/proxmox-backup/<name> (lenient; errors in config_errors). Missing = empty.
  std::map<std::string, SectionConfig> configs;
  std::map<std::string, std::vector<SectionConfigError>> config_errors;
  std::map<std::string, bool> config_present;

  explicit CheckContext(const CheckOptions& o) : options(o), host(o.root) {}
  // Whether the host's commands can be run (live system, or options.run_command given).
  bool CanRun() const { return host.live() || static_cast<bool>(options.run_command); }
  // Runs a command through options.run_command, else on the live system (Host::Run).
  Result<CommandOutput> Run(const std::vector<std::string>& argv) const {
    return options.run_command ? options.run_command(argv) : host.Run(argv);
  }
  // Free space of host path `abs` through options.space, else Host::Space (Unsupported for a
  // host tree).
  Result<FsSpace> Space(const std::string& abs) const {
    return options.space ? options.space(abs) : host.Space(abs);
  }
  // Whether datastores get the real atime probe (live system or options.probe_atime given).
  bool ProbesAtime() const {
    return options.atime_probe && (host.live() || static_cast<bool>(options.probe_atime));
  }
  // Loads a section-config file once. Returns the parsed config (possibly partial).
  const SectionConfig& Config(const std::string& name);
};

// Upstream pbs3to4 checks (system_checks.cc).
Status CheckPackages(CheckContext& ctx);
Status CheckMisc(CheckContext& ctx);
// pbskit's additional checks.
Status CheckConfigFiles(CheckContext& ctx);     // config_checks.cc
Status CheckDatastores(CheckContext& ctx);      // datastore_checks.cc
Status CheckJobsAndRemotes(CheckContext& ctx);  // datastore_checks.cc

}  // namespace pbskit::checker
