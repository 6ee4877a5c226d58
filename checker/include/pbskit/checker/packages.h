// Debian package state read from files: the dpkg status database, APT's downloaded package
// lists and PBS's cached update list (/var/lib/proxmox-backup/pkg-state.json).
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "pbskit/checker/host.h"

namespace pbskit::checker {

// Compares Debian versions ([epoch:]upstream[-revision]) like dpkg --compare-versions.
// Returns <0, 0, >0.
int CompareDebianVersions(std::string_view a, std::string_view b);

struct InstalledPackage {
  std::string name;
  std::string version;
};

// Installed packages ("Status: install ok installed") from dpkg status text, by name.
std::map<std::string, std::string> ParseDpkgStatus(std::string_view text);

struct PackageUpdate {
  std::string package;
  std::string old_version;  // empty for a new dependency
  std::string version;
};

// The list pbs3to4 prints for "updates for the following packages are available", computed
// from /var/lib/dpkg/status and /var/lib/apt/lists/*_Packages (highest version wins; pinning
// is not evaluated), or taken from pkg-state.json when that is newer than both
// /var/cache/apt/pkgcache.bin and /var/lib/dpkg/status.
// Errors: NotFound when neither a usable state file nor any package list exists; IoError /
// Corruption for unreadable or malformed files (message names the file).
Result<std::vector<PackageUpdate>> ListAvailableUpdates(const Host& host);

}  // namespace pbskit::checker
