// `pbskit check`: the pbs3to4 checklist (same checks, order, wording and levels) followed by
// the datastore and configuration checks pbs3to4 lacks. See docs/checker.md.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>

#include "pbskit/checker/host.h"
#include "pbskit/checker/report.h"
#include "pbskit/formats/section_config.h"
#include "pbskit/formats/status.h"

namespace pbskit::checker {

// Upgrade parameters of pbs3to4 (UPGRADE-CHECKS.md §3).
struct UpgradeTarget {
  std::string old_suite = "bookworm";
  std::string new_suite = "trixie";
  std::string meta_package = "proxmox-backup";
  int min_major = 3, min_minor = 4, min_pkgrel = 0;
  std::vector<std::string> services = {"proxmox-backup.service", "proxmox-backup-proxy.service"};
};

// Asks a remote (a remote.cfg section) for its version ("3.2.4" or "3.2-4"); used for sync
// jobs. May be empty: then only versions given in CheckOptions::remote_versions are known.
using RemoteVersionQuery = std::function<Result<std::string>(const SectionConfigEntry& remote)>;

// Runs a command on the checked host (`systemctl is-active`, `dkms status`, `proxmox-boot-tool
// status`, `debconf-show`) and returns its stdout; NotFound when it cannot be executed.
using CommandRunner = std::function<Result<CommandOutput>(const std::vector<std::string>& argv)>;
// Free space of the file system holding host path `abs` (statvfs).
using SpaceQuery = std::function<Result<FsSpace>(const std::string& abs)>;
// The atime probe of a datastore directory (a local path); see ProbeAtimeUpdates.
using AtimeProbe = std::function<Result<bool>(const std::string& dir)>;

struct CheckOptions {
  // Host tree root; "" or "/" checks the live system.
  std::string root;
  UpgradeTarget target;
  // Remote name -> version, e.g. from `--remote-version offsite=3.2.4`; wins over the query.
  std::map<std::string, std::string> remote_versions;
  // Asked for every sync job's remote without a version in remote_versions (the CLI sets it on
  // the live system only). Unset: such jobs are a SKIP.
  RemoteVersionQuery query_remote_version;
  // The host's commands. Unset: the live system runs them (Host::Run); a host tree runs none
  // and reads the files those commands consult instead.
  CommandRunner run_command;
  // Free space. Unset: statvfs on the live system; a host tree reports SKIP.
  SpaceQuery space;
  // Unset: ProbeAtimeUpdates on the live system; a host tree is not probed.
  AtimeProbe probe_atime;
  // Live system only: probe atime updates in every datastore with a temporary file.
  bool atime_probe = true;
  // > 0: verify this percentage of each datastore's finished snapshots (100 = all) with the
  // datastore engine's verify, which records verify_state and renames corrupt chunks as PBS does.
  int verify_sample_percent = 0;
  // Free-space thresholds (WARN below).
  uint64_t min_free_root = 5ull << 30;
  uint64_t min_free_datastore = 1ull << 30;
  int min_free_datastore_percent = 5;
};

// Whether running kernel `release` (uname -r) suits the upgrade. Versions are compared
// numerically (pbs3to4 matches regexes, so "6.20" passes as "6.2"): before the upgrade 6.2, 6.5,
// 6.8, 6.11 and 6.14 kernels are suitable; after it 6.14.6 and newer. A '~' (pre-release)
// version never is. Pure.
bool KernelSuitable(const std::string& release, bool upgraded);

// The real atime probe (the idea of PBS's GC atime safety check, FORMATS.md §8.4): creates a
// temporary file in `dir`, sets its atime two days back, then to now, and reports whether the
// second stat shows the newer atime. The file is removed again. Unsupported when the file cannot
// be created (read-only, permissions), IoError when the timestamp calls fail.
Result<bool> ProbeAtimeUpdates(const std::string& dir);

// Runs every check and returns the report. Requires nothing else; reads only (except the
// atime probe's temporary file on the live system, removed again). Not thread-safe w.r.t.
// concurrent changes of the host. Non-OK only for hard errors where pbs3to4 aborts too
// (unreadable /etc/apt/sources.list.d: IoError).
Result<Report> RunChecks(const CheckOptions& options);

}  // namespace pbskit::checker
