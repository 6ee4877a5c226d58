// Outcome tests for the checks the golden host trees do not cover, on small trees built in a
// TempDir (each test starts from a minimal healthy 3.4 host and changes one thing).
#include "pbskit/checker/checker.h"

#include <sys/stat.h>

#include <gtest/gtest.h>

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
  EXPECT_EQ(Lines(r, "sync-remote-version"),
            (V{"WARN: pull sync job 'j1' (remote 'r1'): cannot parse remote version 'banana'",
               "SKIP: pull sync job 'j2' (remote 'r2'): remote version unknown (give "
               "--remote-version r2=<version>)"}));
  EXPECT_EQ(queried, 0);  // a host tree is never queried over the network
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

}  // namespace
}  // namespace pbskit::checker
