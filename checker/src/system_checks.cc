// The checks of pbs3to4, in its order and with its wording (UPGRADE-CHECKS.md §4-5). Where a
// host tree cannot answer what the live system would (a command's output), the check reports
// SKIP naming the path it looked for.
#include <sys/utsname.h>

#include <regex>

#include "check_context.h"
#include "pbskit/checker/apt_sources.h"
#include "pbskit/checker/packages.h"

namespace pbskit::checker {
namespace {

std::string Join(const std::vector<std::string>& v, const std::string& sep) {
  std::string out;
  for (size_t i = 0; i < v.size(); ++i) out += (i ? sep : "") + v[i];
  return out;
}

std::string Upper(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

enum class UnitState { kActive, kInactive, kFailed, kOther, kUnknown };

constexpr char kUnitDir[] = "/run/systemd/units";

// `systemctl is-active <unit>` where commands run; for a tree, systemd's runtime record
// /run/systemd/units/invocation:<unit> (present while the unit runs). kUnknown when neither
// source exists.
UnitState ActiveState(CheckContext& ctx, const std::string& unit) {
  if (ctx.CanRun()) {
    auto r = ctx.Run({"systemctl", "is-active", unit});
    if (!r.ok()) return UnitState::kUnknown;
    if (r->out == "active\n") return UnitState::kActive;
    if (r->out == "inactive\n") return UnitState::kInactive;
    if (r->out == "failed\n") return UnitState::kFailed;
    return UnitState::kOther;
  }
  if (!ctx.host.IsDir(kUnitDir)) return UnitState::kUnknown;
  return ctx.host.Exists(std::string(kUnitDir) + "/invocation:" + unit) ? UnitState::kActive
                                                                         : UnitState::kInactive;
}

std::string UnitUnknownReason(const CheckContext& ctx) {
  return ctx.CanRun() ? "'systemctl' could not be executed"
                         : std::string(kUnitDir) + " not found in the host tree";
}

void CheckUpgradablePackages(CheckContext& ctx) {
  ctx.report.Info("package-updates", "Checking for package updates..");
  auto updates = ListAvailableUpdates(ctx.host);
  if (!updates.ok()) {
    if (updates.status().IsNotFound()) {
      ctx.report.Skip("package-updates", "unable to list package updates: " +
                                             updates.status().message());
      return;
    }
    ctx.report.Warn("package-updates", updates.status().message());
    ctx.report.Fail("package-updates", "unable to retrieve list of package updates!");
    return;
  }
  if (updates->empty()) {
    ctx.report.Pass("package-updates", "all packages up-to-date");
    return;
  }
  std::vector<std::string> names;
  for (const auto& u : *updates) names.push_back(u.package);
  ctx.report.Warn("package-updates", "updates for the following packages are available:\n      " +
                                         Join(names, ", "));
}

void CheckMetaPackageVersion(CheckContext& ctx) {
  const UpgradeTarget& t = ctx.options.target;
  ctx.report.Info("package-version", "Checking " + t.meta_package + " package version..");
  if (!ctx.installed) {
    ctx.report.Skip("package-version",
                    "unable to check '" + t.meta_package + "': /var/lib/dpkg/status not found");
    return;
  }
  auto it = ctx.installed->find(t.meta_package);
  if (it == ctx.installed->end()) {
    ctx.report.Fail("package-version", "'" + t.meta_package + "' package not found!");
    return;
  }
  static const std::regex kVersion(R"(^(\d+)\.(\d+)[.-](\d+))");
  std::smatch m;
  if (!std::regex_search(it->second, m, kVersion)) {
    ctx.report.Fail("package-version", "could not match the '" + t.meta_package +
                                           "' package version, is it installed?");
    return;
  }
  long maj = std::stol(m[1].str().substr(0, 9)), min = std::stol(m[2].str().substr(0, 9)),
       rel = std::stol(m[3].str().substr(0, 9));
  std::string min_version = std::to_string(t.min_major) + "." + std::to_string(t.min_minor) +
                            "." + std::to_string(t.min_pkgrel);
  if ((maj > t.min_major && t.min_major != 0) || (t.min_major == 0 && min > t.min_minor)) {
    ctx.report.Pass("package-version",
                    "Already upgraded to " + std::to_string(maj) + "." + std::to_string(min));
    ctx.upgraded = true;
  } else if (maj >= t.min_major && min >= t.min_minor && rel >= t.min_pkgrel) {
    ctx.report.Pass("package-version", "'" + t.meta_package + "' has version >= " + min_version);
  } else {
    ctx.report.Fail("package-version", "'" + t.meta_package +
                                           "' package is too old, please upgrade to >= " +
                                           min_version);
  }
}

void CheckKernel(CheckContext& ctx) {
  ctx.report.Info("kernel", "Check running kernel version..");
  if (ctx.kernel_release.empty()) {
    if (ctx.host.live()) {
      ctx.report.Fail("kernel", "unable to determine running kernel version.");
    } else {
      ctx.report.Skip("kernel", "unable to determine running kernel version: "
                                "/proc/sys/kernel/osrelease not found in the host tree");
    }
    return;
  }
  const std::string& v = ctx.kernel_release;
  if (KernelSuitable(v, ctx.upgraded)) {
    if (ctx.upgraded) {
      ctx.report.Pass("kernel", "running new kernel '" + v + "' after upgrade.");
    } else {
      ctx.report.Pass("kernel", "running kernel '" + v + "' is considered suitable for upgrade.");
    }
    return;
  }
  std::string kinstalled = ctx.upgraded ? "proxmox-kernel-6.14" : "proxmox-kernel-6.8";
  if (ctx.installed && ctx.installed->count(kinstalled)) {
    ctx.report.Warn("kernel", "a suitable kernel '" + kinstalled +
                                  "' is installed, but an unsuitable '" + v +
                                  "' is booted, missing reboot?!");
  } else {
    ctx.report.Warn("kernel", "unexpected running and installed kernel '" + v + "'.");
  }
}

void CheckServices(CheckContext& ctx) {
  ctx.report.Info("services", "Checking " + ctx.options.target.meta_package + " daemon services..");
  for (const auto& unit : ctx.options.target.services) {
    const std::string again = "\n    Please check the service for errors and start it.";
    switch (ActiveState(ctx, unit)) {
      case UnitState::kActive:
        ctx.report.Pass("services", "systemd unit '" + unit + "' is in state 'active'");
        break;
      case UnitState::kInactive:
        ctx.report.Fail("services", "systemd unit '" + unit + "' is in state 'inactive'" + again);
        break;
      case UnitState::kFailed:
        ctx.report.Fail("services", "systemd unit '" + unit + "' is in state 'failed'" + again);
        break;
      case UnitState::kOther:
        ctx.report.Fail("services", "systemd unit '" + unit + "' is not in state 'active'" + again);
        break;
      case UnitState::kUnknown:
        ctx.report.Skip("services", "state of systemd unit '" + unit + "' unknown: " +
                                        UnitUnknownReason(ctx));
        break;
    }
  }
}

void CheckTimeSync(CheckContext& ctx) {
  ctx.report.Info("time-sync", "Checking for supported & active NTP service..");
  UnitState timesyncd = ActiveState(ctx, "systemd-timesyncd.service");
  if (timesyncd == UnitState::kUnknown) {
    ctx.report.Skip("time-sync", "state of time synchronisation units unknown: " +
                                     UnitUnknownReason(ctx));
    return;
  }
  if (timesyncd == UnitState::kActive) {
    ctx.report.Warn(
        "time-sync",
        "systemd-timesyncd is not the best choice for time-keeping on servers, due to only "
        "applying updates on boot.\n       While not necessary for the upgrade it's recommended "
        "to use one of:\n        * chrony (Default in new Proxmox product installations)\n"
        "        * ntpsec\n        * openntpd");
  } else if (ActiveState(ctx, "ntp.service") == UnitState::kActive) {
    // pbs3to4 still says "for Bookworm" here (inherited from pbs2to3); name both suites.
    ctx.report.Info("time-sync",
                    "Debian deprecated and removed the ntp package with Bookworm, the system "
                    "will automatically migrate to the 'ntpsec' replacement package on the "
                    "upgrade to Trixie.");
  } else if (ActiveState(ctx, "chrony.service") == UnitState::kActive ||
             ActiveState(ctx, "openntpd.service") == UnitState::kActive ||
             ActiveState(ctx, "ntpsec.service") == UnitState::kActive) {
    ctx.report.Pass("time-sync", "Detected active time synchronisation unit");
  } else {
    ctx.report.Warn("time-sync",
                    "No (active) time synchronisation daemon (NTP) detected, but synchronized "
                    "systems are important!");
  }
}

Status CheckAptRepos(CheckContext& ctx) {
  const UpgradeTarget& t = ctx.options.target;
  ctx.report.Info("apt-repositories", "Checking for package repository suite mismatches..");
  PBSKIT_ASSIGN_OR_RETURN(AptSources sources, ReadAptSources(ctx.host));
  // pbs3to4 drops these silently; APT itself refuses to run with them.
  for (const auto& e : sources.errors) {
    if (e.line == 0 && e.message.rfind("invalid", 0) == 0) {
      // APT skips such names too ("Ignoring file ... invalid filename extension").
      ctx.report.Notice("apt-repositories", "ignoring " + e.ToString() + " (APT ignores it too)");
      continue;
    }
    ctx.report.Warn("apt-repositories", "unable to parse " + e.ToString() +
                                            "\n      APT refuses to work with this file, fix or "
                                            "remove it before upgrading!");
  }
  bool strange = false;
  std::optional<std::pair<std::string, std::string>> found;
  std::vector<std::pair<std::string, std::string>> mismatches;
  for (const auto& file : sources.files) {
    for (const auto& repo : file.repositories) {
      if (!repo.enabled) continue;
      if (repo.types.size() == 1 && repo.types[0] == "deb-src") continue;
      for (const auto& full : repo.suites) {
        std::string suite = full.substr(0, full.find_first_of("-/"));
        if (suite != t.old_suite && suite != t.new_suite) {
          ctx.report.Notice("apt-repositories",
                            "found unusual suite '" + suite + "', neither old '" + t.old_suite +
                                "' nor new '" + t.new_suite + "'..\n        Affected file " +
                                file.path +
                                "\n        Please assure this is shipping compatible packages "
                                "for the upgrade!");
          strange = true;
          continue;
        }
        if (!found) {
          found = {suite, file.path};
        } else if (suite != found->first) {
          if (mismatches.empty()) mismatches.push_back(*found);
          mismatches.emplace_back(suite, file.path);
        }
      }
    }
  }
  if (mismatches.empty() && !strange) {
    ctx.report.Pass("apt-repositories", "found no suite mismatch");
  } else if (mismatches.empty()) {
    ctx.report.Notice("apt-repositories",
                      "found no suite mismatches, but found at least one strange suite");
  } else {
    std::string msg =
        "Found mixed old and new packages repository suites, fix before upgrading!\n      "
        "Mismatches:";
    for (const auto& [suite, path] : mismatches) {
      msg += "\n      found suite '" + suite + "' at '" + path + "'";
    }
    msg += "\n";
    ctx.report.Fail("apt-repositories", msg);
  }
  return Status::OK();
}

// grub2/force_efi_extra_removable from debconf: `debconf-show` live, config.dat for a tree.
// Returns nullopt when unknown.
std::optional<bool> ForceEfiExtraRemovable(CheckContext& ctx, std::string* why) {
  if (ctx.CanRun()) {
    auto r = ctx.Run({"debconf-show", "--db", "configdb", "grub-efi-amd64", "grub-pc"});
    if (!r.ok()) {
      *why = r.status().message();
      return std::nullopt;
    }
    static const std::regex kRe(R"(grub2/force_efi_extra_removable: +true(?:\n|$))");
    return std::regex_search(r->out, kRe);
  }
  const std::string path = "/var/cache/debconf/config.dat";
  auto text = ctx.host.ReadFile(path);
  if (!text.ok()) {
    *why = path + " not found in the host tree";
    return std::nullopt;
  }
  // config.dat stanzas: "Name: grub2/force_efi_extra_removable" ... "Value: true".
  size_t pos = text->find("Name: grub2/force_efi_extra_removable\n");
  if (pos == std::string::npos) return false;
  size_t end = text->find("\n\n", pos);
  std::string stanza = text->substr(pos, end == std::string::npos ? std::string::npos : end - pos);
  return stanza.find("\nValue: true") != std::string::npos;
}

void CheckBootloader(CheckContext& ctx) {
  ctx.report.Info("bootloader", "Checking bootloader configuration...");
  bool sd_boot = ctx.host.IsFile("/usr/share/doc/systemd-boot/changelog.Debian.gz");
  if (!ctx.host.IsDir("/sys/firmware/efi")) {
    if (sd_boot) {
      ctx.report.Warn("bootloader",
                      "systemd-boot package installed on legacy-boot system is not necessary, "
                      "consider removing it");
    } else {
      ctx.report.Skip("bootloader",
                      "System booted in legacy-mode - no need for additional packages.");
    }
    return;
  }
  bool ok = true;
  if (ctx.host.IsFile("/etc/kernel/proxmox-boot-uuids")) {
    if (!ctx.upgraded) {
      if (!ctx.CanRun()) {
        ctx.report.Skip("bootloader",
                        "'proxmox-boot-tool status' cannot run for a host tree; ESPs are listed "
                        "in /etc/kernel/proxmox-boot-uuids");
        return;
      }
      auto r = ctx.Run({"proxmox-boot-tool", "status"});
      if (!r.ok()) {
        ctx.report.Skip("bootloader", "failed to retrieve proxmox-boot-tool status - " +
                                          r.status().message());
        return;
      }
      static const std::regex kRe(R"(configured with:.* (uefi|systemd-boot) \(versions:)");
      if (std::regex_search(r->out, kRe)) {
        ctx.report.Skip("bootloader", "not yet upgraded, systemd-boot still needed for bootctl");
        return;
      }
    }
  } else {
    if (!ctx.host.IsFile("/usr/share/doc/grub-efi-amd64/changelog.Debian.gz")) {
      ctx.report.Warn("bootloader",
                      "System booted in uefi mode but grub-efi-amd64 meta-package not installed, "
                      "new grub versions will not be installed to /boot/efi!\n"
                      "                     Install grub-efi-amd64.");
      ok = false;
    }
    if (ctx.host.IsFile("/boot/efi/EFI/BOOT/BOOTX64.efi")) {
      std::string why;
      auto removable = ForceEfiExtraRemovable(ctx, &why);
      if (!removable) {
        ctx.report.Skip("bootloader", "unable to read debconf settings of grub-efi-amd64: " + why);
        ok = false;
      } else if (!*removable) {
        ctx.report.Warn(
            "bootloader",
            "Removable bootloader found at '/boot/efi/EFI/BOOT/BOOTX64.efi', but GRUB packages "
            "not set up to update it!\nRun the following command:\necho 'grub-efi-amd64 "
            "grub2/force_efi_extra_removable boolean true' | debconf-set-selections -v -u\nThen "
            "reinstall GRUB with 'apt install --reinstall grub-efi-amd64'");
        ok = false;
      }
    }
  }
  if (sd_boot) {
    ctx.report.Fail("bootloader",
                    "systemd-boot meta-package installed. This will cause problems on upgrades of "
                    "other boot-related packages.\nRemove the 'systemd-boot' package.\nPlease "
                    "consult the upgrade guide for further information!");
    ok = false;
  }
  if (ok) ctx.report.Pass("bootloader", "bootloader packages installed correctly");
}

void CheckDkms(CheckContext& ctx) {
  size_t modules = 0;
  if (ctx.CanRun()) {
    // pbs3to4 passes uname's output with its trailing newline; pass the plain release.
    auto r = ctx.Run({"dkms", "status", "-k", ctx.kernel_release});
    if (!r.ok()) {
      ctx.report.Skip("dkms", "could not get dkms status");
      return;
    }
    size_t pos = 0;
    while (pos < r->out.size()) {
      size_t nl = r->out.find('\n', pos);
      ++modules;
      pos = nl == std::string::npos ? r->out.size() : nl + 1;
    }
  } else {
    // dkms keeps its state in /var/lib/dkms/<module>/<version>/.
    const std::string base = "/var/lib/dkms";
    auto mods = ctx.host.ListDir(base);
    if (!mods.ok()) {
      ctx.report.Skip("dkms", "could not get dkms status: " + base + " not found in the host tree");
      return;
    }
    for (const auto& m : *mods) {
      if (!ctx.host.IsDir(base + "/" + m)) continue;
      auto versions = ctx.host.ListDir(base + "/" + m);
      if (!versions.ok()) continue;
      for (const auto& v : *versions) {
        if (v.rfind("kernel-", 0) == 0 || !ctx.host.IsDir(base + "/" + m + "/" + v)) continue;
        ++modules;
      }
    }
  }
  if (modules == 0) {
    ctx.report.Pass("dkms", "no dkms modules found");
  } else {
    ctx.report.Warn("dkms", "dkms modules found, this might cause issues during upgrade.");
  }
}

}  // namespace

bool KernelSuitable(const std::string& release, bool upgraded) {
  static const std::regex kRe(R"(^(\d+)\.(\d+)(?:\.(\d+))?)");
  std::smatch m;
  if (!std::regex_search(release, m, kRe)) return false;
  if (release.find('~') != std::string::npos) return false;
  auto num = [](const std::string& s) { return s.empty() ? 0L : std::stol(s.substr(0, 9)); };
  long maj = num(m[1].str()), min = num(m[2].str()), patch = num(m[3].str());
  if (!upgraded) {
    return maj == 6 && (min == 2 || min == 5 || min == 8 || min == 11 || min == 14);
  }
  if (maj > 6) return true;
  return maj == 6 && (min > 14 || (min == 14 && patch >= 6));
}

Status CheckPackages(CheckContext& ctx) {
  ctx.report.Header("CHECKING VERSION INFORMATION FOR " + Upper(ctx.options.target.meta_package) +
                    " PACKAGES");
  CheckUpgradablePackages(ctx);
  if (auto status = ctx.host.ReadFile("/var/lib/dpkg/status"); status.ok()) {
    ctx.installed = ParseDpkgStatus(*status);
  }
  if (ctx.host.live()) {
    struct utsname u;
    if (::uname(&u) == 0) ctx.kernel_release = u.release;
  } else if (auto rel = ctx.host.ReadFile("/proc/sys/kernel/osrelease"); rel.ok()) {
    ctx.kernel_release = *rel;
    while (!ctx.kernel_release.empty() &&
           (ctx.kernel_release.back() == '\n' || ctx.kernel_release.back() == ' ')) {
      ctx.kernel_release.pop_back();
    }
  }
  CheckMetaPackageVersion(ctx);
  CheckKernel(ctx);
  return Status::OK();
}

Status CheckMisc(CheckContext& ctx) {
  ctx.report.Header("MISCELLANEOUS CHECKS");
  CheckServices(ctx);
  CheckTimeSync(ctx);
  PBSKIT_RETURN_IF_ERROR(CheckAptRepos(ctx));
  CheckBootloader(ctx);
  CheckDkms(ctx);
  return Status::OK();
}

}  // namespace pbskit::checker
