// Outcome tests for the checks the golden host trees do not cover, on small trees built in a
// TempDir (each test starts from a minimal healthy 3.4 host and changes one thing).
#include "pbskit/checker/checker.h"

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <map>

#include <gtest/gtest.h>

#include "pbskit/formats/fixed_index.h"
#include "pbskit/formats/hex.h"
#include "test_support.h"

namespace pbskit::checker {
namespace {

class Tree {
 public:
  Tree() {
    Write("var/lib/dpkg/status",
          "Package: proxmox-backup\nStatus: install ok installed\nVersion: 3.4.1\n\n"
          "Package: proxmox-kernel-6.8\nStatus: install ok installed\nVersion: 6.8.12-9\n");
    Write("var/lib/apt/lists/x_Packages", "Package: proxmox-backup\nVersion: 3.4.1\n");
    Write("proc/sys/kernel/osrelease", "6.8.12-9-pve\n");
    for (const char* u : {"proxmox-backup.service", "proxmox-backup-proxy.service",
                          "chrony.service"}) {
      Write(std::string("run/systemd/units/invocation:") + u, "");
    }
    Write("etc/apt/sources.list", "deb http://deb.debian.org/debian bookworm main\n");
    Write("var/lib/dkms/dkms_dbversion", "3\n");
    Write("run/proxmox-backup/.keep", "");
    Write("var/log/proxmox-backup/tasks/active", "");
    Write("proc/mounts", "/dev/sda1 / ext4 rw,relatime 0 0\n");
  }
  void Write(const std::string& rel, const std::string& text) {
    std::string path = dir_ / rel;
    std::string parent = path.substr(0, path.rfind('/'));
    std::string cmd;
    for (size_t p = dir_.path().size() + 1; p <= parent.size(); ++p) {
      if (p == parent.size() || parent[p] == '/') ::mkdir(parent.substr(0, p).c_str(), 0755);
    }
    test::WriteText(path, text);
  }
  void Remove(const std::string& rel) { ::unlink((dir_ / rel).c_str()); }
  void Datastore(const std::string& abs) {
    for (const char* p : {"0000", "7fff", "ffff"}) Write(abs.substr(1) + "/.chunks/" + p + "/.keep", "");
    Write(abs.substr(1) + "/.lock", "");
  }
  Report Run(CheckOptions o = {}) {
    o.root = dir_.path();
    auto r = RunChecks(o);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : Report();
  }
  const std::string& path() const { return dir_.path(); }

 private:
  test::TempDir dir_;
};

// "LEVEL: message" lines of one check.
std::vector<std::string> Lines(const Report& r, const std::string& check) {
  std::vector<std::string> out;
  for (const auto& l : r.lines()) {
    if (l.check == check && l.level != Level::kInfo) {
      out.push_back(std::string(LevelName(l.level)) + ": " + l.message);
    }
  }
  return out;
}

using V = std::vector<std::string>;

TEST(CheckerTest, HealthyMinimalHostHasNoWarnings) {
  Tree t;
  Report r = t.Run();
  EXPECT_EQ(r.ExitCode(), 0) << r.RenderText(false);
  EXPECT_EQ(r.counters().fail, 0);
}

TEST(CheckerTest, PackageUpdates) {
  Tree t;
  t.Remove("var/lib/apt/lists/x_Packages");
  EXPECT_EQ(Lines(t.Run(), "package-updates"),
            V{"SKIP: unable to list package updates: no APT package lists in /var/lib/apt/lists "
              "(run 'apt update')"});
  // An unreadable list is an error: pbs3to4 prints the error and a FAIL.
  t.Write("var/lib/apt/lists/y_Packages/.keep", "");
  auto lines = Lines(t.Run(), "package-updates");
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0].rfind("WARN: /var/lib/apt/lists/y_Packages: ", 0), 0u) << lines[0];
  EXPECT_EQ(lines[1], "FAIL: unable to retrieve list of package updates!");
}

TEST(CheckerTest, MetaPackageVersion) {
  Tree t;
  t.Write("var/lib/dpkg/status", "Package: other\nStatus: install ok installed\nVersion: 1\n");
  EXPECT_EQ(Lines(t.Run(), "package-version"), V{"FAIL: 'proxmox-backup' package not found!"});
  t.Write("var/lib/dpkg/status",
          "Package: proxmox-backup\nStatus: deinstall ok config-files\nVersion: 3.4.1\n");
  EXPECT_EQ(Lines(t.Run(), "package-version"), V{"FAIL: 'proxmox-backup' package not found!"});
  t.Write("var/lib/dpkg/status",
          "Package: proxmox-backup\nStatus: install ok installed\nVersion: git-snapshot\n");
  EXPECT_EQ(Lines(t.Run(), "package-version"),
            V{"FAIL: could not match the 'proxmox-backup' package version, is it installed?"});
  t.Write("var/lib/dpkg/status",
          "Package: proxmox-backup\nStatus: install ok installed\nVersion: 3.4-1\n");
  EXPECT_EQ(Lines(t.Run(), "package-version"), V{"PASS: 'proxmox-backup' has version >= 3.4.0"});
  t.Remove("var/lib/dpkg/status");
  EXPECT_EQ(Lines(t.Run(), "package-version"),
            V{"SKIP: unable to check 'proxmox-backup': /var/lib/dpkg/status not found"});
}

TEST(CheckerTest, KernelOutcomes) {
  Tree t;
  t.Write("proc/sys/kernel/osrelease", "6.1.10-1-pve\n");
  EXPECT_EQ(Lines(t.Run(), "kernel"),
            V{"WARN: a suitable kernel 'proxmox-kernel-6.8' is installed, but an unsuitable "
              "'6.1.10-1-pve' is booted, missing reboot?!"});
  t.Write("var/lib/dpkg/status",
          "Package: proxmox-backup\nStatus: install ok installed\nVersion: 3.4.1\n");
  EXPECT_EQ(Lines(t.Run(), "kernel"),
            V{"WARN: unexpected running and installed kernel '6.1.10-1-pve'."});
  t.Remove("proc/sys/kernel/osrelease");
  EXPECT_EQ(Lines(t.Run(), "kernel"),
            V{"SKIP: unable to determine running kernel version: /proc/sys/kernel/osrelease not "
              "found in the host tree"});
}

TEST(CheckerTest, KernelVersionsAreComparedNumerically) {
  // The crate's own vectors.
  for (const char* v : {"6.2.16-20-pve", "6.5.13-6-pve", "6.8.12-1-pve"}) {
    EXPECT_TRUE(KernelSuitable(v, false)) << v;
  }
  for (const char* v : {"6.1.10-1-pve", "5.19.17-2-pve"}) EXPECT_FALSE(KernelSuitable(v, false)) << v;
  for (const char* v : {"6.14.6-1-pve", "6.17.0-1-pve"}) EXPECT_TRUE(KernelSuitable(v, true)) << v;
  for (const char* v : {"6.12.1-1-pve", "6.2.1-1-pve"}) EXPECT_FALSE(KernelSuitable(v, true)) << v;
  // Where the regexes go wrong: "6.20" is not "6.2", "6.14.10" is newer than "6.14.6".
  EXPECT_FALSE(KernelSuitable("6.20.1-1-pve", false));
  EXPECT_TRUE(KernelSuitable("6.14.10-1-pve", true));
  EXPECT_FALSE(KernelSuitable("6.14.5-1-pve", true));
  EXPECT_TRUE(KernelSuitable("7.0.1-1-pve", true));
  EXPECT_FALSE(KernelSuitable("6.15.0~rc1-pve", true));
  EXPECT_FALSE(KernelSuitable("garbage", true));
}

TEST(CheckerTest, ServicesAndTimeSyncWithoutRuntimeState) {
  Tree t;
  for (const char* u : {"proxmox-backup.service", "proxmox-backup-proxy.service", "chrony.service"}) {
    t.Remove(std::string("run/systemd/units/invocation:") + u);
  }
  ::rmdir((t.path() + "/run/systemd/units").c_str());
  Report r = t.Run();
  EXPECT_EQ(Lines(r, "services"),
            (V{"SKIP: state of systemd unit 'proxmox-backup.service' unknown: /run/systemd/units "
               "not found in the host tree",
               "SKIP: state of systemd unit 'proxmox-backup-proxy.service' unknown: "
               "/run/systemd/units not found in the host tree"}));
  EXPECT_EQ(Lines(r, "time-sync"),
            V{"SKIP: state of time synchronisation units unknown: /run/systemd/units not found "
              "in the host tree"});
}

TEST(CheckerTest, TimeSyncOutcomes) {
  Tree t;
  t.Remove("run/systemd/units/invocation:chrony.service");
  EXPECT_EQ(Lines(t.Run(), "time-sync"),
            V{"WARN: No (active) time synchronisation daemon (NTP) detected, but synchronized "
              "systems are important!"});
  t.Write("run/systemd/units/invocation:ntp.service", "");
  Report r = t.Run();
  EXPECT_TRUE(Lines(r, "time-sync").empty());  // INFO only, not counted
  bool info = false;
  for (const auto& l : r.lines()) {
    if (l.check == "time-sync" && l.message.find("'ntpsec' replacement") != std::string::npos) {
      info = l.level == Level::kInfo;
    }
  }
  EXPECT_TRUE(info);
  t.Remove("run/systemd/units/invocation:ntp.service");
  t.Write("run/systemd/units/invocation:openntpd.service", "");
  EXPECT_EQ(Lines(t.Run(), "time-sync"), V{"PASS: Detected active time synchronisation unit"});
}

TEST(CheckerTest, AptStrangeSuiteOnly) {
  Tree t;
  t.Write("etc/apt/sources.list.d/vendor.list", "deb http://apt.example.com stable main\n");
  EXPECT_EQ(Lines(t.Run(), "apt-repositories"),
            (V{"NOTICE: found unusual suite 'stable', neither old 'bookworm' nor new 'trixie'..\n"
               "        Affected file /etc/apt/sources.list.d/vendor.list\n"
               "        Please assure this is shipping compatible packages for the upgrade!",
               "NOTICE: found no suite mismatches, but found at least one strange suite"}));
}

TEST(CheckerTest, AptDisabledAndSourceOnlyEntriesAreIgnored) {
  Tree t;
  t.Write("etc/apt/sources.list",
          "deb http://deb.debian.org/debian bookworm main\n"
          "# deb http://deb.debian.org/debian trixie main\n"
          "deb-src http://deb.debian.org/debian trixie main\n");
  EXPECT_EQ(Lines(t.Run(), "apt-repositories"), V{"PASS: found no suite mismatch"});
}

TEST(CheckerTest, BootloaderOutcomes) {
  Tree t;
  t.Write("usr/share/doc/systemd-boot/changelog.Debian.gz", "");
  EXPECT_EQ(Lines(t.Run(), "bootloader"),
            V{"WARN: systemd-boot package installed on legacy-boot system is not necessary, "
              "consider removing it"});
  t.Remove("usr/share/doc/systemd-boot/changelog.Debian.gz");
  t.Write("sys/firmware/efi/efivars/.keep", "");
  EXPECT_EQ(Lines(t.Run(), "bootloader"),
            V{"WARN: System booted in uefi mode but grub-efi-amd64 meta-package not installed, "
              "new grub versions will not be installed to /boot/efi!\n"
              "                     Install grub-efi-amd64."});
  t.Write("usr/share/doc/grub-efi-amd64/changelog.Debian.gz", "");
  EXPECT_EQ(Lines(t.Run(), "bootloader"), V{"PASS: bootloader packages installed correctly"});
  t.Write("boot/efi/EFI/BOOT/BOOTX64.efi", "");
  EXPECT_EQ(Lines(t.Run(), "bootloader"),
            V{"SKIP: unable to read debconf settings of grub-efi-amd64: "
              "/var/cache/debconf/config.dat not found in the host tree"});
  t.Write("var/cache/debconf/config.dat",
          "Name: grub2/force_efi_extra_removable\nValue: true\nOwners: grub-efi-amd64\n\n");
  EXPECT_EQ(Lines(t.Run(), "bootloader"), V{"PASS: bootloader packages installed correctly"});
  t.Write("etc/kernel/proxmox-boot-uuids", "1234-ABCD\n");
  EXPECT_EQ(Lines(t.Run(), "bootloader"),
            V{"SKIP: 'proxmox-boot-tool status' cannot run for a host tree; ESPs are listed in "
              "/etc/kernel/proxmox-boot-uuids"});
}

TEST(CheckerTest, DkmsWithoutState) {
  Tree t;
  t.Remove("var/lib/dkms/dkms_dbversion");
  ::rmdir((t.path() + "/var/lib/dkms").c_str());
  EXPECT_EQ(Lines(t.Run(), "dkms"),
            V{"SKIP: could not get dkms status: /var/lib/dkms not found in the host tree"});
}

TEST(CheckerTest, MarkersAndTasksUnknownInTree) {
  Tree t;
  ::rmdir((t.path() + "/run/proxmox-backup").c_str());
  t.Remove("run/proxmox-backup/.keep");
  ::rmdir((t.path() + "/run/proxmox-backup").c_str());
  t.Remove("var/log/proxmox-backup/tasks/active");
  Report r = t.Run();
  EXPECT_EQ(Lines(r, "old-locking"),
            V{"SKIP: old-locking marker unknown: /run/proxmox-backup not found in the host tree"});
  EXPECT_EQ(Lines(r, "running-tasks"),
            V{"SKIP: running tasks unknown: /var/log/proxmox-backup/tasks/active not found"});
}

TEST(CheckerTest, DatastoreExistenceOutcomes) {
  Tree t;
  EXPECT_EQ(Lines(t.Run(), "datastore-exists"),
            V{"SKIP: no datastores configured in /etc/proxmox-backup/datastore.cfg"});
  t.Write("etc/proxmox-backup/datastore.cfg",
          "datastore: a\n\tpath /srv/a\n\tnotification-mode notification-system\n\n"
          "datastore: b\n\tpath /srv/b\n\tnotification-mode notification-system\n\n"
          "datastore: c\n\tnotification-mode notification-system\n");
  t.Write("srv/a/vm/.keep", "");
  t.Datastore("/srv/b");
  t.Remove("srv/b/.chunks/7fff/.keep");
  ::rmdir((t.path() + "/srv/b/.chunks/7fff").c_str());
  Report r = t.Run();
  EXPECT_EQ(Lines(r, "datastore-exists"),
            (V{"FAIL: datastore 'a' (/srv/a) cannot be opened: no chunk store (/srv/a/.chunks "
               "missing)",
               "WARN: datastore 'b' (/srv/b) has an incomplete chunk store "
               "(/srv/b/.chunks/7fff missing): new chunks with missing prefixes cannot be stored",
               "PASS: datastore 'b' (/srv/b) exists and opens",
               "FAIL: datastore 'c' has no 'path' in datastore.cfg"}));
  // The missing path is a config error as well.
  bool reported = false;
  for (const auto& l : Lines(r, "config-files")) {
    reported |= l.find("property 'path' is missing") != std::string::npos;
  }
  EXPECT_TRUE(reported);
}

TEST(CheckerTest, FilesystemUnknownWithoutMounts) {
  Tree t;
  t.Remove("proc/mounts");
  t.Write("etc/proxmox-backup/datastore.cfg",
          "datastore: a\n\tnotification-mode notification-system\n\tpath /srv/a\n");
  t.Datastore("/srv/a");
  EXPECT_EQ(Lines(t.Run(), "datastore-filesystem"),
            V{"SKIP: datastore 'a': file system unknown, /proc/mounts not found"});
}

TEST(CheckerTest, DeprecatedS3ClientSection) {
  Tree t;
  t.Write("etc/proxmox-backup/s3.cfg",
          "s3client: minio1\n\taccess-key A\n\tendpoint e.example.com\n\tsecret-key S\n");
  Report r = t.Run();
  EXPECT_EQ(Lines(r, "config-deprecated"),
            V{"NOTICE: /etc/proxmox-backup/s3.cfg:1: section type 's3client' of 'minio1' is from "
              "a 4.0 beta; it is now 's3-endpoint' (the package upgrade rewrites it)"});
  EXPECT_EQ(Lines(r, "config-files"), V{"PASS: /etc/proxmox-backup/s3.cfg: parsed, 1 section(s)"});
}

TEST(CheckerTest, SyncRemoteVersionUnparseableAndQueried) {
  Tree t;
  t.Write("etc/proxmox-backup/remote.cfg",
          "remote: r1\n\tauth-id sync@pbs\n\thost h1\n\nremote: r2\n\tauth-id sync@pbs\n\thost h2\n");
  t.Write("etc/proxmox-backup/sync.cfg",
          "sync: j1\n\tremote r1\n\tremote-store s\n\tstore s\n\n"
          "sync: j2\n\tremote r2\n\tremote-store s\n\tstore s\n");
  CheckOptions o;
  o.remote_versions["r1"] = "banana";
  int queried = 0;
  o.query_remote_version = [&](const SectionConfigEntry&) -> Result<std::string> {
    ++queried;
    return std::string("4.2.3");
  };
  Report r = t.Run(o);
  // A given version wins over the query; the query answers for the rest.
  EXPECT_EQ(Lines(r, "sync-remote-version"),
            (V{"WARN: pull sync job 'j1' (remote 'r1'): cannot parse remote version 'banana'",
               "PASS: pull sync job 'j2' (remote 'r2'): remote runs 4.2.3"}));
  EXPECT_EQ(queried, 1);
  o.query_remote_version = [&](const SectionConfigEntry& remote) -> Result<std::string> {
    return Status::IoError("connection to " + *remote.Get("host") + " refused");
  };
  EXPECT_EQ(Lines(t.Run(o), "sync-remote-version")[1],
            "WARN: pull sync job 'j2' (remote 'r2'): unable to query the remote's version: "
            "connection to h2 refused");
  // Without a query (the CLI sets none for a host tree) the version is unknown.
  o.query_remote_version = nullptr;
  EXPECT_EQ(Lines(t.Run(o), "sync-remote-version")[1],
            "SKIP: pull sync job 'j2' (remote 'r2'): remote version unknown (give "
            "--remote-version r2=<version>)");
}

TEST(CheckerTest, AtimeProbeOnARealDirectory) {
  test::TempDir dir;
  auto r = ProbeAtimeUpdates(dir.path());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(*r);  // a scratch directory on a normal file system honours explicit updates
  auto missing = ProbeAtimeUpdates(dir / "nope");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), Code::kUnsupported);
}

TEST(CheckerTest, SampledVerifyOfARealDatastore) {
  Tree t;
  t.Write("etc/proxmox-backup/datastore.cfg",
          "datastore: fixture\n\tnotification-mode notification-system\n\tpath /srv/fixture\n");
  t.Write("srv/.keep", "");
  test::CopyTree(test::Fixture("pbs-3.2.4-datastore"), t.path() + "/srv/fixture");
  CheckOptions all;
  all.verify_sample_percent = 100;
  auto lines = Lines(t.Run(all), "datastore-verify");
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0].rfind("PASS: datastore 'fixture': verified ", 0), 0u) << lines[0];
  EXPECT_NE(lines[0].find(" snapshot(s), all ok"), std::string::npos) << lines[0];
  // A sample verifies fewer snapshots, but at least one.
  CheckOptions sample;
  sample.verify_sample_percent = 1;
  lines = Lines(t.Run(sample), "datastore-verify");
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0].rfind("PASS: datastore 'fixture': verified 1 of ", 0), 0u) << lines[0];
  // Without the option nothing is verified.
  EXPECT_TRUE(Lines(t.Run(), "datastore-verify").empty());
}

TEST(CheckerTest, JsonAndJunitCarryEveryLine) {
  Tree t;
  t.Remove("run/systemd/units/invocation:chrony.service");
  Report r = t.Run();
  auto json = r.ToJson().as_object();
  EXPECT_EQ(json.at("exit-code").as_int64(), 1);
  EXPECT_EQ(json.at("checks").as_array().size(), r.lines().size());
  EXPECT_EQ(json.at("summary").as_object().at("warnings").as_int64(), 1);
  std::string xml = r.RenderJunit();
  EXPECT_NE(xml.find("<failure type=\"WARN\" message=\"No (active) time synchronisation"),
            std::string::npos)
      << xml;
  EXPECT_NE(xml.find("<testsuite name=\"MISCELLANEOUS CHECKS\""), std::string::npos);
}

// ---- Outcomes that need the live system, reached through the CheckOptions seams ----

// A fake host command table: argv joined with ' ' -> stdout, or an error when absent.
struct FakeCommands {
  std::map<std::string, std::string> out;
  std::vector<std::string> calls;
  CommandRunner Runner() {
    return [this](const std::vector<std::string>& argv) -> Result<CommandOutput> {
      std::string line;
      for (const auto& a : argv) line += (line.empty() ? "" : " ") + a;
      calls.push_back(line);
      auto it = out.find(line);
      if (it == out.end()) return Status::NotFound("failed to execute '" + argv[0] + "'");
      return CommandOutput{0, it->second};
    };
  }
};

TEST(CheckerTest, ServiceStatesFromSystemctl) {
  Tree t;
  FakeCommands cmd;
  CheckOptions o;
  o.run_command = cmd.Runner();
  const std::string again = "\n    Please check the service for errors and start it.";
  struct Case {
    std::string state;  // `systemctl is-active` stdout
    std::string line;   // what the check prints for proxmox-backup.service
  };
  for (const Case& c :
       {Case{"active\n", "PASS: systemd unit 'proxmox-backup.service' is in state 'active'"},
        Case{"inactive\n",
             "FAIL: systemd unit 'proxmox-backup.service' is in state 'inactive'" + again},
        Case{"failed\n", "FAIL: systemd unit 'proxmox-backup.service' is in state 'failed'" + again},
        // systemd's other ActiveState values, and output that is not exactly a state line.
        Case{"activating\n",
             "FAIL: systemd unit 'proxmox-backup.service' is not in state 'active'" + again},
        Case{"deactivating\n",
             "FAIL: systemd unit 'proxmox-backup.service' is not in state 'active'" + again},
        Case{"reloading\n",
             "FAIL: systemd unit 'proxmox-backup.service' is not in state 'active'" + again},
        Case{"", "FAIL: systemd unit 'proxmox-backup.service' is not in state 'active'" + again},
        Case{"active", "FAIL: systemd unit 'proxmox-backup.service' is not in state 'active'" +
                           again}}) {
    SCOPED_TRACE(c.state);
    cmd.out["systemctl is-active proxmox-backup.service"] = c.state;
    cmd.out["systemctl is-active proxmox-backup-proxy.service"] = "active\n";
    cmd.out["systemctl is-active chrony.service"] = "active\n";
    EXPECT_EQ(Lines(t.Run(o), "services"),
              (V{c.line, "PASS: systemd unit 'proxmox-backup-proxy.service' is in state 'active'"}));
  }
  // A masked unit: `systemctl is-active` prints "inactive" (exit 3), which the check reads.
  cmd.out["systemctl is-active proxmox-backup-proxy.service"] = "inactive\n";
  EXPECT_EQ(Lines(t.Run(o), "services")[1],
            "FAIL: systemd unit 'proxmox-backup-proxy.service' is in state 'inactive'" + again);
  // systemctl cannot be executed: SKIP (pbs3to4 aborts the whole run).
  cmd.out.clear();
  Report r = t.Run(o);
  EXPECT_EQ(Lines(r, "services"),
            (V{"SKIP: state of systemd unit 'proxmox-backup.service' unknown: 'systemctl' could "
               "not be executed",
               "SKIP: state of systemd unit 'proxmox-backup-proxy.service' unknown: 'systemctl' "
               "could not be executed"}));
  EXPECT_EQ(Lines(r, "time-sync"),
            V{"SKIP: state of time synchronisation units unknown: 'systemctl' could not be "
              "executed"});
}

TEST(CheckerTest, TimeSyncFromSystemctl) {
  Tree t;
  FakeCommands cmd;
  CheckOptions o;
  o.run_command = cmd.Runner();
  for (const char* u : {"systemd-timesyncd", "ntp", "chrony", "openntpd", "ntpsec"}) {
    cmd.out[std::string("systemctl is-active ") + u + ".service"] = "inactive\n";
  }
  EXPECT_EQ(Lines(t.Run(o), "time-sync"),
            V{"WARN: No (active) time synchronisation daemon (NTP) detected, but synchronized "
              "systems are important!"});
  cmd.out["systemctl is-active ntpsec.service"] = "active\n";
  EXPECT_EQ(Lines(t.Run(o), "time-sync"), V{"PASS: Detected active time synchronisation unit"});
  cmd.out["systemctl is-active systemd-timesyncd.service"] = "active\n";
  auto lines = Lines(t.Run(o), "time-sync");
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0].rfind("WARN: systemd-timesyncd is not the best choice", 0), 0u);
}

TEST(CheckerTest, BootloaderWithCommands) {
  Tree t;
  FakeCommands cmd;
  CheckOptions o;
  o.run_command = cmd.Runner();
  t.Write("sys/firmware/efi/efivars/.keep", "");
  t.Write("usr/share/doc/grub-efi-amd64/changelog.Debian.gz", "");
  t.Write("boot/efi/EFI/BOOT/BOOTX64.efi", "");
  const std::string debconf = "debconf-show --db configdb grub-efi-amd64 grub-pc";
  // The removable ESP with and without the debconf flag, and debconf-show missing.
  cmd.out[debconf] = "  grub2/update_nvram: true\n* grub2/force_efi_extra_removable: true\n";
  EXPECT_EQ(Lines(t.Run(o), "bootloader"), V{"PASS: bootloader packages installed correctly"});
  cmd.out[debconf] = "* grub2/force_efi_extra_removable: false\n";
  auto lines = Lines(t.Run(o), "bootloader");
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0].rfind("WARN: Removable bootloader found at '/boot/efi/EFI/BOOT/BOOTX64.efi', "
                           "but GRUB packages not set up to update it!",
                           0),
            0u);
  cmd.out.erase(debconf);
  EXPECT_EQ(Lines(t.Run(o), "bootloader"),
            V{"SKIP: unable to read debconf settings of grub-efi-amd64: failed to execute "
              "'debconf-show'"});
  // ESPs managed by proxmox-boot-tool: its status decides before the upgrade.
  t.Write("etc/kernel/proxmox-boot-uuids", "1234-ABCD\n");
  EXPECT_EQ(Lines(t.Run(o), "bootloader"),
            V{"SKIP: failed to retrieve proxmox-boot-tool status - failed to execute "
              "'proxmox-boot-tool'"});
  cmd.out["proxmox-boot-tool status"] =
      "Re-executing '/usr/sbin/proxmox-boot-tool' in new private mount namespace..\n"
      "System currently booted with uefi\n"
      "1234-ABCD is configured with: uefi (versions: 6.8.12-9-pve)\n";
  EXPECT_EQ(Lines(t.Run(o), "bootloader"),
            V{"SKIP: not yet upgraded, systemd-boot still needed for bootctl"});
  cmd.out["proxmox-boot-tool status"] =
      "System currently booted with uefi\n1234-ABCD is configured with: grub (versions: "
      "6.8.12-9-pve)\n";
  EXPECT_EQ(Lines(t.Run(o), "bootloader"), V{"PASS: bootloader packages installed correctly"});
  // After the upgrade the tool is not asked; systemd-boot installed is a FAIL.
  t.Write("var/lib/dpkg/status",
          "Package: proxmox-backup\nStatus: install ok installed\nVersion: 4.0.14\n");
  t.Write("usr/share/doc/systemd-boot/changelog.Debian.gz", "");
  cmd.calls.clear();
  lines = Lines(t.Run(o), "bootloader");
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0].rfind("FAIL: systemd-boot meta-package installed.", 0), 0u) << lines[0];
  for (const auto& c : cmd.calls) EXPECT_NE(c, "proxmox-boot-tool status");
}

TEST(CheckerTest, DkmsFromCommand) {
  Tree t;
  FakeCommands cmd;
  CheckOptions o;
  o.run_command = cmd.Runner();
  // The release is passed without uname's trailing newline.
  cmd.out["dkms status -k 6.8.12-9-pve"] = "";
  EXPECT_EQ(Lines(t.Run(o), "dkms"), V{"PASS: no dkms modules found"});
  cmd.out["dkms status -k 6.8.12-9-pve"] = "zfs/2.2.7, 6.8.12-9-pve, x86_64: installed\n";
  EXPECT_EQ(Lines(t.Run(o), "dkms"),
            V{"WARN: dkms modules found, this might cause issues during upgrade."});
  cmd.out.clear();
  EXPECT_EQ(Lines(t.Run(o), "dkms"), V{"SKIP: could not get dkms status"});
  // A tree's dkms state directory with a module version is the WARN as well.
  t.Write("var/lib/dkms/zfs/2.2.7/source/.keep", "");
  EXPECT_EQ(Lines(t.Run(), "dkms"),
            V{"WARN: dkms modules found, this might cause issues during upgrade."});
}

TEST(CheckerTest, KernelAfterTheUpgrade) {
  Tree t;
  t.Write("var/lib/dpkg/status",
          "Package: proxmox-backup\nStatus: install ok installed\nVersion: 4.0.14\n\n"
          "Package: proxmox-kernel-6.14\nStatus: install ok installed\nVersion: 6.14.8-2\n");
  EXPECT_EQ(Lines(t.Run(), "kernel"),
            V{"WARN: a suitable kernel 'proxmox-kernel-6.14' is installed, but an unsuitable "
              "'6.8.12-9-pve' is booted, missing reboot?!"});
  t.Write("proc/sys/kernel/osrelease", "6.14.8-2-pve\n");
  EXPECT_EQ(Lines(t.Run(), "kernel"), V{"PASS: running new kernel '6.14.8-2-pve' after upgrade."});
}

TEST(CheckerTest, FreeSpaceThresholds) {
  Tree t;
  t.Write("etc/proxmox-backup/datastore.cfg",
          "datastore: a\n\tnotification-mode notification-system\n\tpath /srv/a\n");
  t.Datastore("/srv/a");
  constexpr uint64_t kGiB = 1ull << 30, kMiB = 1ull << 20;
  std::map<std::string, Result<FsSpace>> space;
  CheckOptions o;
  o.space = [&](const std::string& abs) -> Result<FsSpace> {
    auto it = space.find(abs);
    return it == space.end() ? Result<FsSpace>(Status::IoError("statvfs " + abs + ": no mock"))
                             : it->second;
  };
  struct Case {
    FsSpace root, store;
    V lines;
  };
  for (const Case& c : {
           // Plenty on both.
           Case{{100 * kGiB, 10 * kGiB}, {100 * kGiB, 20 * kGiB},
                V{"PASS: 10.00 GiB free on '/'",
                  "PASS: datastore 'a': 20.00 GiB of 100.00 GiB free (20%)"}},
           // '/' exactly at the 5 GiB threshold passes; just below warns.
           Case{{100 * kGiB, 5 * kGiB}, {100 * kGiB, 20 * kGiB},
                V{"PASS: 5.00 GiB free on '/'",
                  "PASS: datastore 'a': 20.00 GiB of 100.00 GiB free (20%)"}},
           Case{{100 * kGiB, 5 * kGiB - kMiB}, {100 * kGiB, 20 * kGiB},
                V{"WARN: only 4.99 GiB free on '/', the upgrade needs at least 5.00 GiB",
                  "PASS: datastore 'a': 20.00 GiB of 100.00 GiB free (20%)"}},
           // A datastore below 1 GiB warns even at a high percentage ...
           Case{{100 * kGiB, 10 * kGiB}, {kGiB, 512 * kMiB},
                V{"PASS: 10.00 GiB free on '/'",
                  "WARN: datastore 'a': only 512.00 MiB of 1.00 GiB free (50%)"}},
           // ... and below 5 % even with many GiB free; 5 % itself passes.
           Case{{100 * kGiB, 10 * kGiB}, {2048 * kGiB, 80 * kGiB},
                V{"PASS: 10.00 GiB free on '/'",
                  "WARN: datastore 'a': only 80.00 GiB of 2.00 TiB free (3%)"}},
           Case{{100 * kGiB, 10 * kGiB}, {2000 * kGiB, 100 * kGiB},
                V{"PASS: 10.00 GiB free on '/'",
                  "PASS: datastore 'a': 100.00 GiB of 1.95 TiB free (5%)"}},
           // Exactly 1 GiB free passes the byte threshold.
           Case{{100 * kGiB, 10 * kGiB}, {10 * kGiB, kGiB},
                V{"PASS: 10.00 GiB free on '/'",
                  "PASS: datastore 'a': 1.00 GiB of 10.00 GiB free (10%)"}},
       }) {
    space.clear();
    space.emplace("/", c.root);
    space.emplace("/srv/a", c.store);
    EXPECT_EQ(Lines(t.Run(o), "free-space"), c.lines);
  }
  // statvfs failing is a SKIP naming the error.
  space.clear();
  EXPECT_EQ(Lines(t.Run(o), "free-space"),
            (V{"SKIP: free space of '/' unknown: statvfs /: no mock",
               "SKIP: datastore 'a': free space unknown: statvfs /srv/a: no mock"}));
  // A host tree without the seam: one SKIP, nothing per datastore.
  EXPECT_EQ(Lines(t.Run(), "free-space"),
            V{"SKIP: free space of '/' and the datastores is not measured for a host tree"});
}

TEST(CheckerTest, AtimeProbeOutcomes) {
  Tree t;
  t.Write("etc/proxmox-backup/datastore.cfg",
          "datastore: a\n\tnotification-mode notification-system\n\tpath /srv/a\n");
  t.Datastore("/srv/a");
  t.Write("proc/mounts", "/dev/sda1 / ext4 rw,relatime 0 0\n/dev/sdb1 /srv/a xfs rw,noatime 0 0\n");
  // The real probe on the tree's (real) datastore directory.
  CheckOptions real;
  real.probe_atime = ProbeAtimeUpdates;
  Report r = t.Run(real);
  EXPECT_EQ(Lines(r, "datastore-atime"), V{"PASS: datastore 'a': atime updates are honoured"});
  // With the probe running, the noatime notice does not point to the live system.
  auto fs_lines = Lines(r, "datastore-filesystem");
  ASSERT_EQ(fs_lines.size(), 1u);
  EXPECT_EQ(fs_lines[0].find("the atime probe runs only on the live system"), std::string::npos);
  // The probe file is gone again.
  EXPECT_EQ(::rmdir((t.path() + "/srv/a/.chunks/0000").c_str()), -1);  // still holds .keep
  struct stat st;
  EXPECT_NE(::stat((t.path() + "/srv/a/.pbskit-atime-probe." + std::to_string(::getpid())).c_str(),
                   &st),
            0);

  std::string probed;
  auto probe = [&](Result<bool> answer) {
    CheckOptions o;
    o.probe_atime = [&probed, answer](const std::string& dir) {
      probed = dir;
      return answer;
    };
    return Lines(t.Run(o), "datastore-atime");
  };
  EXPECT_EQ(probe(false),
            V{"FAIL: datastore 'a': the file system does not honour atime updates; garbage "
              "collection (atime safety check) will fail"});
  EXPECT_EQ(probed, t.path() + "/srv/a");  // the local directory of the tree's datastore
  EXPECT_EQ(probe(Status::IoError("atime update on /srv/a/.probe failed: Operation not permitted")),
            V{"FAIL: datastore 'a': atime update on /srv/a/.probe failed: Operation not "
              "permitted"});
  // The real probe failing on a real file system where no file can be created.
  auto ro = ProbeAtimeUpdates("/proc/self");
  ASSERT_FALSE(ro.ok());
  EXPECT_EQ(ro.status().code(), Code::kUnsupported);
  EXPECT_EQ(probe(ro.status()),
            V{"SKIP: datastore 'a': atime probe not possible (" + ro.status().message() + ")"});
  // --no-atime-probe: no probe, no line.
  CheckOptions off;
  off.probe_atime = ProbeAtimeUpdates;
  off.atime_probe = false;
  EXPECT_TRUE(Lines(t.Run(off), "datastore-atime").empty());
  // A host tree without the seam is not probed.
  EXPECT_TRUE(Lines(t.Run(), "datastore-atime").empty());
}

TEST(CheckerTest, MaintenanceAndMountOutcomes) {
  Tree t;
  t.Write("etc/proxmox-backup/datastore.cfg",
          "datastore: usb\n\tbacking-device 1234-5678\n\tmaintenance-mode "
          "type=unmount,message=bye%20now\n\tnotification-mode notification-system\n\tpath usb\n\n"
          "datastore: ro\n\tmaintenance-mode type=read-only\n\tnotification-mode "
          "notification-system\n\tpath /srv/ro\n");
  t.Datastore("/srv/ro");
  t.Write("proc/mounts", "/dev/sdb1 /boot ext4 rw 0 0\n");  // nothing covers /srv/ro
  Report r = t.Run();
  EXPECT_EQ(Lines(r, "datastore-maintenance"),
            (V{"NOTICE: removable datastore 'usb' is being unmounted ('bye now')",
               "NOTICE: datastore 'ro' is in maintenance mode 'read-only'"}));
  EXPECT_EQ(Lines(r, "datastore-exists"),
            (V{"NOTICE: removable datastore 'usb' (/mnt/datastore/usb) is not mounted, its "
               "contents are not checked",
               "PASS: datastore 'ro' (/srv/ro) exists and opens"}));
  EXPECT_EQ(Lines(r, "datastore-filesystem"),
            V{"SKIP: datastore 'ro': no mount in /proc/mounts covers /srv/ro"});
  // Two datastores, neither nested.
  EXPECT_EQ(Lines(r, "datastore-nested"), V{"PASS: no nested datastores"});
}

TEST(CheckerTest, SampledVerifyOutcomes) {
  Tree t;
  t.Write("etc/proxmox-backup/datastore.cfg",
          "datastore: empty\n\tnotification-mode notification-system\n\tpath /srv/empty\n\n"
          "datastore: badns\n\tnotification-mode notification-system\n\tpath /srv/badns\n\n"
          "datastore: fixture\n\tnotification-mode notification-system\n\tpath /srv/fixture\n");
  t.Datastore("/srv/empty");
  t.Datastore("/srv/badns");
  t.Write("srv/badns/ns/not a namespace!/.keep", "");
  test::CopyTree(test::Fixture("pbs-3.2.4-datastore"), t.path() + "/srv/fixture");
  CheckOptions all;
  all.verify_sample_percent = 100;
  Report good = t.Run(all);
  auto good_lines = Lines(good, "datastore-verify");
  ASSERT_EQ(good_lines.size(), 3u);
  EXPECT_EQ(good_lines[2].rfind("PASS: datastore 'fixture': verified ", 0), 0u) << good_lines[2];
  // Damage the first chunk of a fixed index in the copy: the snapshots using it fail.
  std::string fidx;
  for (const auto& e : std::filesystem::recursive_directory_iterator(t.path() + "/srv/fixture")) {
    if (e.path().extension() == ".fidx") {
      fidx = e.path().string();
      break;
    }
  }
  ASSERT_FALSE(fidx.empty());
  auto idx = FixedIndex::Parse(test::ReadFile(fidx), fidx);
  ASSERT_TRUE(idx.ok());
  const std::string hex = ToHex(idx->digest(0));
  const std::string chunk = t.path() + "/srv/fixture/.chunks/" + hex.substr(0, 4) + "/" + hex;
  auto bytes = test::ReadFile(chunk);
  bytes[bytes.size() - 1] ^= 0x20;
  test::WriteFile(chunk, bytes);
  Report r = t.Run(all);
  auto lines = Lines(r, "datastore-verify");
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[0], "PASS: datastore 'empty': no snapshots to verify");
  EXPECT_EQ(lines[1].rfind("FAIL: datastore 'badns': ", 0), 0u) << lines[1];
  EXPECT_EQ(lines[2].rfind("FAIL: datastore 'fixture': verified ", 0), 0u) << lines[2];
  EXPECT_NE(lines[2].find(" failed:\n      "), std::string::npos) << lines[2];
  // The corrupt chunk was renamed the way a PBS verify job does it.
  struct stat st;
  EXPECT_EQ(::stat((chunk + ".0.bad").c_str(), &st), 0);
}

TEST(CheckerTest, ConfigDirectoryMissing) {
  Tree t;
  Report r = t.Run();
  EXPECT_EQ(Lines(r, "config-files"),
            V{"SKIP: no configuration: /etc/proxmox-backup not found"});
  // Nothing configured: no notification, tape or sync lines.
  EXPECT_TRUE(Lines(r, "notification-mode").empty());
  EXPECT_TRUE(Lines(r, "tape-s3").empty());
  EXPECT_TRUE(Lines(r, "sync-remote-version").empty());
}

TEST(CheckerTest, UnreadableAptDirectoryStopsTheRun) {
  Tree t;
  t.Write("etc/apt/sources.list.d", "a file where a directory belongs\n");
  CheckOptions o;
  o.root = t.path();
  auto r = RunChecks(o);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kIoError);
  EXPECT_EQ(r.status().message(),
            "unable to read /etc/apt/sources.list.d: /etc/apt/sources.list.d: Not a directory");
}

TEST(CheckerTest, SyncJobOutcomesNotInTheGoldens) {
  Tree t;
  t.Write("etc/proxmox-backup/remote.cfg",
          "remote: old\n\tauth-id sync@pbs\n\thost h1\n\nremote: new\n\tauth-id sync@pbs\n\thost "
          "h2\n");
  t.Write("etc/proxmox-backup/sync.cfg",
          // An old remote is fine for a pull without namespaces ...
          "sync: pull-old\n\tremote old\n\tremote-store s\n\tstore s\n\n"
          // ... and a current one for a push with remove-vanished.
          "sync: push-new\n\tremote new\n\tremote-store s\n\tremove-vanished true\n\tstore s\n"
          "\tsync-direction push\n");
  CheckOptions o;
  o.remote_versions = {{"old", "2.1.5"}, {"new", "3.2.11"}};
  EXPECT_EQ(Lines(t.Run(o), "sync-remote-version"),
            (V{"PASS: pull sync job 'pull-old' (remote 'old'): remote runs 2.1.5",
               "PASS: push sync job 'push-new' (remote 'new'): remote runs 3.2.11"}));
}

TEST(CheckerTest, NotificationModeAfterTheUpgrade) {
  Tree t;
  t.Write("var/lib/dpkg/status",
          "Package: proxmox-backup\nStatus: install ok installed\nVersion: 4.0.14\n");
  t.Write("etc/proxmox-backup/datastore.cfg", "datastore: a\n\tpath /srv/a\n");
  t.Datastore("/srv/a");
  // 4.x defaults to the notification system: nothing to say.
  EXPECT_TRUE(Lines(t.Run(), "notification-mode").empty());
  t.Write("var/lib/dpkg/status",
          "Package: proxmox-backup\nStatus: install ok installed\nVersion: 3.4.1\n");
  EXPECT_EQ(Lines(t.Run(), "notification-mode").size(), 1u);
}

}  // namespace
}  // namespace pbskit::checker
