// A round trip through the real `pbskit` binary: datastore create, key create, backup image
// (none, encrypt, sign-only) and blob, an incremental backup reporting only the changed chunks
// as new, snapshot list/files in text and JSON, restore of every archive to the exact bytes,
// and the failures: wrong or missing key, missing archive/snapshot/chunk, hostile names.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <filesystem>
#include <random>

#include "test_support.h"

namespace pbskit {
namespace {

namespace fs = std::filesystem;

constexpr size_t kMiB = 1024 * 1024;
const char kT1[] = "1970-01-01T00:16:40Z";  // --backup-time 1000
const char kT2[] = "1970-01-01T00:33:20Z";  // --backup-time 2000

std::vector<uint8_t> Random(size_t size, uint32_t seed) {
  std::vector<uint8_t> v(size);
  std::mt19937 rng(seed);
  for (auto& b : v) b = static_cast<uint8_t>(rng());
  return v;
}

bool Exists(const std::string& p) {
  struct stat st;
  return ::lstat(p.c_str(), &st) == 0;
}

bool Contains(const std::string& text, const std::string& what) {
  return text.find(what) != std::string::npos;
}

class BackupRestoreCliTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    tmp_ = new test::TempDir();
    auto r = Run({"datastore", "create", "store1", Store()});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    r = Run({"key", "create", *tmp_ / "key.json", "--kdf", "none"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    r = Run({"key", "create", *tmp_ / "other.json", "--kdf", "none"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    // 3 full 4 MiB chunks and a short one.
    test::WriteFile(*tmp_ / "disk.img", Random(12 * kMiB + 4321, 1));
    test::WriteFile(*tmp_ / "vm.conf", Random(3000, 2));
  }
  static void TearDownTestSuite() { delete tmp_; }

  static std::string Store() { return *tmp_ / "store"; }
  static test::CommandResult Run(std::vector<std::string> args) {
    args.insert(args.begin(), {"--config-dir", *tmp_ / "etc", "--state-dir", *tmp_ / "state"});
    return test::RunCli(args, {"PBSKIT_LOCK_ROOT=" + *tmp_ / "locks", "TZ=UTC"});
  }
  static test::CommandResult Backup(const std::string& kind, const std::string& file,
                                    const std::string& id, const std::string& time,
                                    std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"backup", kind,          file, "--store", "store1",
                                     "--type", "vm",          "--id", id, "--backup-time",
                                     time};
    args.insert(args.end(), extra.begin(), extra.end());
    return Run(args);
  }
  // Restores to a fresh file and returns its bytes (fails the test on a non-zero exit).
  static std::vector<uint8_t> Restore(const std::string& snapshot, const std::string& archive,
                                      std::vector<std::string> extra = {}) {
    static int n = 0;
    std::string target = *tmp_ / ("restored-" + std::to_string(++n));
    std::vector<std::string> args = {"restore", "--store", "store1", snapshot, archive, target};
    args.insert(args.end(), extra.begin(), extra.end());
    auto r = Run(args);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return Exists(target) ? test::ReadFile(target) : std::vector<uint8_t>{};
  }

  static test::TempDir* tmp_;
};

test::TempDir* BackupRestoreCliTest::tmp_ = nullptr;

TEST_F(BackupRestoreCliTest, PlainImageAndBlobRoundTrip) {
  auto r = Backup("image", *tmp_ / "disk.img", "100", "1000", {"--archive-name", "drive-scsi0.img"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(Contains(r.out, "Starting backup: vm/100/" + std::string(kT1))) << r.out;
  EXPECT_TRUE(Contains(r.out, "drive-scsi0.img: Reused 0 from 4 chunks.")) << r.out;
  EXPECT_TRUE(Contains(r.out, "drive-scsi0.img: 4 new chunks written (0 already in the "
                              "datastore).")) << r.out;
  r = Backup("blob", *tmp_ / "vm.conf", "100", "2000", {"--archive-name", "qemu-server.conf"});
  ASSERT_EQ(r.exit_code, 0) << r.err;

  const std::string s1 = "vm/100/" + std::string(kT1), s2 = "vm/100/" + std::string(kT2);
  EXPECT_TRUE(Restore(s1, "drive-scsi0.img") == test::ReadFile(*tmp_ / "disk.img"));
  EXPECT_TRUE(Restore(s1, "drive-scsi0.img.fidx") == test::ReadFile(*tmp_ / "disk.img"));
  EXPECT_TRUE(Restore(s2, "qemu-server.conf") == test::ReadFile(*tmp_ / "vm.conf"));
  // To standard output.
  auto out = Run({"restore", "--store", Store(), s2, "qemu-server.conf.blob", "-"});
  ASSERT_EQ(out.exit_code, 0) << out.err;
  EXPECT_TRUE(std::vector<uint8_t>(out.out.begin(), out.out.end()) ==
              test::ReadFile(*tmp_ / "vm.conf"));
  // An existing target is refused and left alone.
  test::WriteText(*tmp_ / "existing", "keep me");
  auto again = Run({"restore", "--store", "store1", s1, "drive-scsi0.img", *tmp_ / "existing"});
  EXPECT_EQ(again.exit_code, 2);
  EXPECT_TRUE(Contains(again.err, "Error: unable to create target file")) << again.err;
  EXPECT_EQ(test::ReadText(*tmp_ / "existing"), "keep me");
}

TEST_F(BackupRestoreCliTest, IncrementalBackupWritesOnlyTheChangedChunk) {
  auto image = test::ReadFile(*tmp_ / "disk.img");
  auto r = Backup("image", *tmp_ / "disk.img", "110", "1000", {"--archive-name", "drive-scsi0.img"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  image[2 * 4 * kMiB + 17] ^= 0xff;  // one byte in the third chunk
  test::WriteFile(*tmp_ / "disk2.img", image);
  r = Backup("image", *tmp_ / "disk2.img", "110", "2000", {"--archive-name", "drive-scsi0.img"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(Contains(r.out, "drive-scsi0.img: Reused 3 from 4 chunks.")) << r.out;
  EXPECT_TRUE(Contains(r.out, "drive-scsi0.img: 1 new chunk written (3 already in the "
                              "datastore).")) << r.out;
  EXPECT_TRUE(Contains(r.out, "drive-scsi0.img: had to backup 4 MiB of 12.004 MiB")) << r.out;
  EXPECT_TRUE(Restore("vm/110/" + std::string(kT2), "drive-scsi0.img") == image);
  EXPECT_TRUE(Restore("vm/110/" + std::string(kT1), "drive-scsi0.img") ==
              test::ReadFile(*tmp_ / "disk.img"));
}

TEST_F(BackupRestoreCliTest, EncryptedAndSignOnlyBackups) {
  const std::string key = *tmp_ / "key.json", other = *tmp_ / "other.json";
  auto r = Backup("image", *tmp_ / "disk.img", "120", "1000",
                  {"--archive-name", "drive-scsi0.img", "--keyfile", key});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(Contains(r.out, "Encryption key fingerprint: ")) << r.out;
  // Encrypted chunks differ from the plain ones of the same image: all new.
  EXPECT_TRUE(Contains(r.out, "drive-scsi0.img: 4 new chunks written")) << r.out;
  r = Backup("blob", *tmp_ / "vm.conf", "120", "2000",
             {"--archive-name", "qemu-server.conf", "--keyfile", key, "--crypt-mode", "encrypt"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = Backup("image", *tmp_ / "disk.img", "121", "1000",
             {"--archive-name", "drive-scsi0.img", "--keyfile", key, "--crypt-mode", "sign-only"});
  ASSERT_EQ(r.exit_code, 0) << r.err;

  const std::string enc = "vm/120/" + std::string(kT1), blob = "vm/120/" + std::string(kT2),
                    sign = "vm/121/" + std::string(kT1);
  EXPECT_TRUE(Restore(enc, "drive-scsi0.img", {"--keyfile", key}) ==
              test::ReadFile(*tmp_ / "disk.img"));
  EXPECT_TRUE(Restore(blob, "qemu-server.conf", {"--keyfile", key}) ==
              test::ReadFile(*tmp_ / "vm.conf"));
  EXPECT_TRUE(Restore(sign, "drive-scsi0.img", {"--keyfile", key}) ==
              test::ReadFile(*tmp_ / "disk.img"));

  // The wrong key and no key: refused before anything is written.
  for (const std::string& snap : {enc, sign}) {
    SCOPED_TRACE(snap);
    const std::string target = *tmp_ / "wrong-key-target";
    auto wrong = Run({"restore", "--store", "store1", snap, "drive-scsi0.img", target,
                      "--keyfile", other});
    EXPECT_EQ(wrong.exit_code, 2);
    EXPECT_TRUE(Contains(wrong.err, "Error: wrong key - manifest's key ")) << wrong.err;
    auto none = Run({"restore", "--store", "store1", snap, "drive-scsi0.img", target});
    EXPECT_EQ(none.exit_code, 2);
    EXPECT_TRUE(Contains(none.err, "Error: missing key - manifest was created with key "))
        << none.err;
    EXPECT_FALSE(Exists(target));
  }
  // JSON listing shows the crypt modes and the key fingerprint.
  auto list = Run({"snapshot", "list", "--store", "store1", "--output-format", "json"});
  ASSERT_EQ(list.exit_code, 0) << list.err;
  auto json = boost::json::parse(list.out).as_array();
  bool seen_enc = false, seen_sign = false;
  for (const auto& v : json) {
    const auto& o = v.as_object();
    if (o.at("backup-id").as_string() != "120" && o.at("backup-id").as_string() != "121") continue;
    if (o.at("backup-time").as_int64() != 1000) continue;
    EXPECT_TRUE(o.contains("fingerprint"));
    for (const auto& f : o.at("files").as_array()) {
      if (f.as_object().at("filename").as_string() != "drive-scsi0.img.fidx") continue;
      std::string mode(f.as_object().at("crypt-mode").as_string());
      if (o.at("backup-id").as_string() == "120") seen_enc = mode == "encrypt";
      if (o.at("backup-id").as_string() == "121") seen_sign = mode == "sign-only";
    }
  }
  EXPECT_TRUE(seen_enc && seen_sign) << list.out;
}

TEST_F(BackupRestoreCliTest, SnapshotListAndFilesInTextAndJson) {
  auto r = Backup("image", *tmp_ / "disk.img", "130", "1000", {"--archive-name", "drive-scsi0.img"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string snap = "vm/130/" + std::string(kT1);
  auto text = Run({"snapshot", "list", "--store", "store1", "vm/130"});
  ASSERT_EQ(text.exit_code, 0) << text.err;
  EXPECT_TRUE(Contains(text.out, snap)) << text.out;
  EXPECT_TRUE(Contains(text.out, "drive-scsi0.img")) << text.out;
  auto json = Run({"snapshot", "list", "--store", "store1", "vm/130", "--output-format", "json"});
  ASSERT_EQ(json.exit_code, 0) << json.err;
  auto list = boost::json::parse(json.out).as_array();
  ASSERT_EQ(list.size(), 1u) << json.out;
  const auto& o = list[0].as_object();
  EXPECT_EQ(o.at("backup-type").as_string(), "vm");
  EXPECT_EQ(o.at("backup-id").as_string(), "130");
  EXPECT_EQ(o.at("backup-time").as_int64(), 1000);
  EXPECT_EQ(o.at("owner").as_string(), "root@pam");

  auto files = Run({"snapshot", "files", "--store", "store1", snap});
  ASSERT_EQ(files.exit_code, 0) << files.err;
  EXPECT_TRUE(Contains(files.out, "drive-scsi0.img.fidx")) << files.out;
  EXPECT_TRUE(Contains(files.out, "index.json.blob")) << files.out;
  EXPECT_TRUE(Contains(files.out, std::to_string(12 * kMiB + 4321))) << files.out;
  auto fjson = Run({"snapshot", "files", "--store", "store1", snap, "--output-format", "json"});
  ASSERT_EQ(fjson.exit_code, 0) << fjson.err;
  auto farr = boost::json::parse(fjson.out).as_array();
  ASSERT_EQ(farr.size(), 2u) << fjson.out;
  EXPECT_EQ(farr[0].as_object().at("filename").as_string(), "drive-scsi0.img.fidx");
  EXPECT_EQ(farr[0].as_object().at("crypt-mode").as_string(), "none");
  EXPECT_EQ(farr[0].as_object().at("size").as_int64(), static_cast<int64_t>(12 * kMiB + 4321));
  EXPECT_EQ(farr[1].as_object().at("filename").as_string(), "index.json.blob");
}

TEST_F(BackupRestoreCliTest, MissingArchiveSnapshotAndChunk) {
  auto r = Backup("image", *tmp_ / "disk.img", "140", "1000", {"--archive-name", "drive-scsi0.img"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string snap = "vm/140/" + std::string(kT1);
  const std::string target = *tmp_ / "missing-target";
  // A name the snapshot does not have, and a snapshot that does not exist: exit 2.
  auto a = Run({"restore", "--store", "store1", snap, "drive-scsi1.img", target});
  EXPECT_EQ(a.exit_code, 2);
  EXPECT_TRUE(Contains(a.err, "Error: manifest does not contain file 'drive-scsi1.img.fidx'"))
      << a.err;
  auto s = Run({"restore", "--store", "store1", "vm/140/1970-01-01T00:16:41Z", "drive-scsi0.img",
                target});
  EXPECT_EQ(s.exit_code, 2);
  EXPECT_TRUE(Contains(s.err, "Error: ")) << s.err;
  EXPECT_FALSE(Exists(target));

  // A chunk lost from the store: the restore fails (exit 1) and leaves no file behind. The
  // image's chunks are shared with other snapshots of this suite, so this test backs up data
  // of its own first.
  test::WriteFile(*tmp_ / "own.img", Random(5 * kMiB, 3));
  r = Backup("image", *tmp_ / "own.img", "141", "1000", {"--archive-name", "drive-scsi0.img"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::string removed;
  for (const auto& e : fs::recursive_directory_iterator(Store() + "/.chunks")) {
    if (!e.is_regular_file()) continue;
    // The most recently written chunk file belongs to vm/141 (its data is new to the store).
    if (removed.empty() || fs::last_write_time(e.path()) > fs::last_write_time(removed))
      removed = e.path().string();
  }
  ASSERT_FALSE(removed.empty());
  ASSERT_EQ(::unlink(removed.c_str()), 0);
  auto c = Run({"restore", "--store", "store1", "vm/141/" + std::string(kT1), "drive-scsi0.img",
                target});
  EXPECT_EQ(c.exit_code, 1);
  EXPECT_TRUE(Contains(c.err, "Error: chunk " + fs::path(removed).filename().string() +
                                  ": missing in chunk store"))
      << c.err;
  EXPECT_FALSE(Exists(target));
  for (const auto& e : fs::directory_iterator(tmp_->path()))
    EXPECT_FALSE(Contains(e.path().filename().string(), "missing-target.tmp_"));
}

TEST_F(BackupRestoreCliTest, HostileNamesAreRefused) {
  const std::string img = *tmp_ / "disk.img";
  struct Case {
    std::vector<std::string> args;
    std::string message;
    bool error_prefix = true;  // argument-parser errors have no "Error: " prefix
  };
  const std::string snap = "vm/100/" + std::string(kT1);
  for (const Case& c : std::vector<Case>{
           {{"backup", "image", img, "--store", "store1", "--type", "vm", "--id", "../x"},
            "invalid backup id '../x'"},
           {{"backup", "image", img, "--store", "store1", "--type", "vm", "--id", "200",
             "--archive-name", "../x.img"},
            "invalid archive name '../x.img.fidx'"},
           {{"backup", "image", img, "--store", "store1", "--type", "vm", "--id", "200",
             "--archive-name", "/etc/x.img"},
            "invalid archive name"},
           {{"backup", "blob", img, "--store", "store1", "--type", "vm", "--id", "200", "--ns",
             "../a"},
            "invalid namespace '../a'"},
           {{"backup", "image", img, "--store", "store1", "--type", "../vm", "--id", "200"},
            "--type: ../vm not in {vm,ct,host}",
            false},
           {{"snapshot", "files", "--store", "store1", "vm/../" + std::string(kT1)},
            "invalid backup id '..'"},
           {{"restore", "--store", "store1", "vm/../" + std::string(kT1), "drive-scsi0.img",
             *tmp_ / "t"},
            "invalid backup id '..'"},
           {{"restore", "--store", "store1", snap, "../../index.json.blob", *tmp_ / "t"}, ""},
       }) {
    SCOPED_TRACE(c.args[0] + " " + c.args[c.args.size() - 1]);
    auto r = Run(c.args);
    EXPECT_EQ(r.exit_code, 2) << r.out << r.err;
    if (c.error_prefix) {
      EXPECT_EQ(r.err.rfind("Error: ", 0), 0u) << r.err;
    }
    EXPECT_TRUE(Contains(r.err, c.message)) << r.err;
  }
  // Nothing was created outside the store or beside it.
  EXPECT_FALSE(Exists(*tmp_ / "x.img.fidx"));
  EXPECT_FALSE(Exists(*tmp_ / "a"));
  EXPECT_FALSE(Exists(*tmp_ / "t"));
  EXPECT_FALSE(Exists(Store() + "/vm/200"));
}

}  // namespace
}  // namespace pbskit
