// `pbskit import datastore`: datastores in the layout of every PBS major version (generated at
// test time by testdata/legacy/make_legacy_datastores.py from pbskit's own output) and the real
// PBS 3.2.4 fixture datastore import with owners, notes, protection and verify state; chunks are
// hard-linked or copied as asked; corrupt chunks keep exactly their snapshots out; an S3 local
// cache is refused; a second run changes nothing; a run killed with SIGKILL at each crash point
// is finished by the next run; hostile names in the source are refused.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <set>

#include <boost/json.hpp>

#include "pbskit/datastore/datastore.h"
#include "pbskit/formats/data_blob.h"
#include "pbskit/formats/fixed_index.h"
#include "pbskit/formats/hex.h"
#include "pbskit/formats/names.h"
#include "test_support.h"

namespace pbskit {
namespace {

namespace fs = std::filesystem;

bool Contains(const std::string& text, const std::string& needle) {
  return text.find(needle) != std::string::npos;
}

// Every entry below `root`: relative path, type, mode, size and content hash (files), link
// target (symlinks). Two equal results mean nothing was added, removed or rewritten.
std::string TreeHash(const std::string& root) {
  std::vector<std::string> lines;
  for (auto it = fs::recursive_directory_iterator(root); it != fs::recursive_directory_iterator();
       ++it) {
    const auto& p = it->path();
    struct stat st {};
    ::lstat(p.c_str(), &st);
    std::string line = fs::relative(p, root).string() + " " + std::to_string(st.st_mode);
    if (S_ISREG(st.st_mode)) line += " " + test::Sha256Hex(test::ReadFile(p.string()));
    if (S_ISLNK(st.st_mode)) line += " -> " + fs::read_symlink(p).string();
    lines.push_back(line);
  }
  std::sort(lines.begin(), lines.end());
  std::string all;
  for (const auto& l : lines) all += l + "\n";
  return test::Sha256Hex(all);
}

// A destination without the 65536 empty prefix directories (created on demand by the import),
// so each test can afford its own.
std::string SparseStore(const std::string& path) {
  fs::create_directories(path + "/.chunks");
  test::WriteText(path + "/.lock", "");
  return path;
}

std::vector<std::string> ChunkFiles(const std::string& store) {
  std::vector<std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(store + "/.chunks")) {
    if (e.is_regular_file() && e.path().filename().string().size() == 64) {
      out.push_back(e.path().string());
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::string ChunkPathOf(const std::string& store, const Digest& d) {
  std::string hex = ToHex(d);
  return store + "/.chunks/" + hex.substr(0, 4) + "/" + hex;
}

class ImportDatastoreTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    tmp_ = new test::TempDir(test::Scratch::kDisk);
    legacy_ = *tmp_ / "legacy";
    const std::string cmd = "python3 '" + test::TestData("legacy/make_legacy_datastores.py") +
                            "' '" + test::Binary() + "' '" + legacy_ + "'";
    ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
    auto r = Run({"datastore", "create", "dst", *tmp_ / "dst"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    auto j = boost::json::parse(test::ReadText(legacy_ + "/expected.json"));
    expected_ = new boost::json::array(j.at("snapshots").as_array());
  }
  static void TearDownTestSuite() {
    delete expected_;
    delete tmp_;
  }

  static test::CommandResult Run(const std::vector<std::string>& args,
                                 std::vector<std::string> env = {}) {
    env.push_back("PBSKIT_CONFIG_DIR=" + (*tmp_ / "etc"));
    env.push_back("PBSKIT_STATE_DIR=" + (*tmp_ / "state"));
    env.push_back("PBSKIT_LOCK_ROOT=" + (*tmp_ / "locks"));
    env.push_back("TZ=UTC");
    return test::RunCli(args, env);
  }
  static std::string Legacy(const std::string& v) { return legacy_ + "/pbs-" + v; }
  static std::string Scratch(const std::string& name) { return *tmp_ / name; }

  static boost::json::object Json(const test::CommandResult& r) {
    return boost::json::parse(r.out).as_object();
  }

  std::string RestoreSha(const std::string& store, const std::string& ns,
                         const std::string& snap, const std::string& archive) {
    std::string out = Scratch("restore-" + std::to_string(restores_++));
    std::vector<std::string> args = {"restore", "--store", store, snap, archive, out};
    if (!ns.empty()) args.insert(args.end(), {"--ns", ns});
    if (Contains(snap, "vm/200/")) args.insert(args.end(), {"--keyfile", legacy_ + "/key.json"});
    auto r = Run(args);
    EXPECT_EQ(r.exit_code, 0) << snap << " " << archive << ": " << r.err;
    return r.exit_code == 0 ? test::Sha256Hex(test::ReadFile(out)) : "";
  }

  static test::TempDir* tmp_;
  static std::string legacy_;
  static boost::json::array* expected_;
  int restores_ = 0;
};

test::TempDir* ImportDatastoreTest::tmp_ = nullptr;
std::string ImportDatastoreTest::legacy_;
boost::json::array* ImportDatastoreTest::expected_ = nullptr;

std::string Str(const boost::json::value& v) { return std::string(v.as_string()); }

TEST_F(ImportDatastoreTest, EveryPbsVersionImportsWithOwnersNotesProtectionAndVerifyState) {
  for (int version = 1; version <= 4; ++version) {
    SCOPED_TRACE("pbs " + std::to_string(version) + ".x");
    const std::string v = std::to_string(version) + ".x";
    const std::string target = "pbs" + std::to_string(version);
    const std::string src = Legacy(v);
    auto r = Run({"import", "datastore", src, "--store", "dst", "--ns", target});
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
    EXPECT_TRUE(Contains(r.out, "TASK OK")) << r.out;
    if (version == 1) {
      EXPECT_TRUE(Contains(r.out, "skipping unfinished snapshot vm/100/2020-09-15T12:26:40Z"))
          << r.out;
    }

    auto source = DataStore::Open(src, "src");
    auto dest = DataStore::Open(Scratch("dst"), "dst");
    ASSERT_TRUE(source.ok() && dest.ok());
    size_t checked = 0;
    for (const auto& e : *expected_) {
      const auto& o = e.as_object();
      if (o.at("min-version").as_int64() > version) continue;
      const std::string ns_text = Str(o.at("ns"));
      const std::string dst_ns_text = target + (ns_text.empty() ? "" : "/" + ns_text);
      auto src_ns = BackupNamespace::Parse(ns_text);
      auto dst_ns = BackupNamespace::Parse(dst_ns_text);
      auto dir = BackupDir::Parse(Str(o.at("group")) + "/" + Str(o.at("time")));
      ASSERT_TRUE(src_ns.ok() && dst_ns.ok() && dir.ok());
      SCOPED_TRACE(dst_ns_text + " " + dir->ToString());

      // The manifest is carried byte for byte: signature, notes, verify state, upload stats.
      const std::string manifest_rel = "/" + dir->ToString() + "/index.json.blob";
      EXPECT_EQ(test::ReadFile((*dest)->SnapshotPath(*dst_ns, *dir) + "/index.json.blob"),
                test::ReadFile((*source)->SnapshotPath(*src_ns, *dir) + "/index.json.blob"));
      auto owner = (*dest)->GetOwner(*dst_ns, dir->group);
      ASSERT_TRUE(owner.ok());
      EXPECT_EQ(*owner, Str(o.at("owner")));
      auto prot = (*dest)->IsProtected(*dst_ns, *dir);
      ASSERT_TRUE(prot.ok());
      // PBS 1.x had no .protected marker: the generator drops it there.
      EXPECT_EQ(*prot, o.at("protected").as_bool() && version >= 2);
      auto notes = (*dest)->GetSnapshotNotes(*dst_ns, *dir);
      ASSERT_TRUE(notes.ok());
      EXPECT_EQ(*notes, Str(o.at("notes")));
      auto m = (*dest)->LoadManifest(*dst_ns, *dir);
      ASSERT_TRUE(m.ok());
      auto* vs = m->unprotected.if_contains("verify_state");
      ASSERT_NE(vs, nullptr);
      EXPECT_EQ(vs->at("state"), "ok");
      EXPECT_EQ(RestoreSha("dst", dst_ns_text, dir->ToString(), Str(o.at("archive"))),
                Str(o.at("sha256")));
      ++checked;
    }
    EXPECT_EQ(checked, version == 1 ? 5u : 7u);
    auto target_ns = BackupNamespace::Parse(target);
    auto notes = (*dest)->GetGroupNotes(*target_ns, *BackupGroup::Parse("vm/100"));
    ASSERT_TRUE(notes.ok());
    EXPECT_EQ(*notes, version >= 2 ? "database server" : "");
    // Groups without snapshots (a 3.x leftover) are not recreated.
    auto empty = (*dest)->GroupExists(*target_ns, *BackupGroup::Parse("vm/999"));
    ASSERT_TRUE(empty.ok());
    EXPECT_FALSE(*empty);

    auto verify = Run({"verify", "--store", "dst", "--ns", target});
    EXPECT_EQ(verify.exit_code, 0) << verify.out << verify.err;
  }
}

TEST_F(ImportDatastoreTest, LinkSharesInodesCopyWritesNewFiles) {
  const std::string src = Legacy("2.x");
  const std::string linked = SparseStore(Scratch("dedup-link"));
  const std::string copied = SparseStore(Scratch("dedup-copy"));
  auto l = Run({"--output-format", "json", "import", "datastore", src, "--store", linked, "--link"});
  ASSERT_EQ(l.exit_code, 0) << l.err;
  auto c = Run({"--output-format", "json", "import", "datastore", src, "--store", copied, "--copy"});
  ASSERT_EQ(c.exit_code, 0) << c.err;

  auto lj = Json(l), cj = Json(c);
  const auto src_chunks = ChunkFiles(src);
  // Every source chunk is referenced by some snapshot (the generator runs no prune).
  EXPECT_EQ(lj.at("chunks-linked").to_number<uint64_t>(), src_chunks.size());
  EXPECT_EQ(lj.at("chunks-copied").to_number<uint64_t>(), 0u);
  EXPECT_EQ(cj.at("chunks-copied").to_number<uint64_t>(), src_chunks.size());
  EXPECT_EQ(cj.at("chunks-linked").to_number<uint64_t>() + cj.at("chunks-reflinked").to_number<uint64_t>(), 0u);
  EXPECT_EQ(lj.at("snapshots-imported").to_number<uint64_t>(), 7u);

  for (const auto& path : src_chunks) {
    const std::string rel = path.substr(src.size());
    struct stat s {}, ls {}, cs {};
    ASSERT_EQ(::stat(path.c_str(), &s), 0);
    ASSERT_EQ(::stat((linked + rel).c_str(), &ls), 0) << rel;
    ASSERT_EQ(::stat((copied + rel).c_str(), &cs), 0) << rel;
    EXPECT_EQ(ls.st_ino, s.st_ino) << rel;
    EXPECT_GE(ls.st_nlink, 2u) << rel;
    EXPECT_NE(cs.st_ino, s.st_ino) << rel;
    EXPECT_EQ(cs.st_nlink, 1u) << rel;
    EXPECT_EQ(test::ReadFile(copied + rel), test::ReadFile(path)) << rel;
  }
  EXPECT_EQ(Run({"verify", "--store", linked}).exit_code, 0);
  EXPECT_EQ(Run({"verify", "--store", copied}).exit_code, 0);
}

TEST_F(ImportDatastoreTest, LinkAcrossFilesystemsRefusedAutoCopies) {
  struct stat a {}, b {};
  if (::stat("/dev/shm", &b) != 0 || ::stat(Legacy("2.x").c_str(), &a) != 0 ||
      a.st_dev == b.st_dev || ::access("/dev/shm", W_OK) != 0) {
    GTEST_SKIP() << "needs a writable /dev/shm on another filesystem";
  }
  char tmpl[] = "/dev/shm/pbskit-import-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  const std::string other = SparseStore(std::string(tmpl) + "/store");
  auto l = Run({"import", "datastore", Legacy("2.x"), "--store", other, "--link"});
  EXPECT_EQ(l.exit_code, 2);
  EXPECT_TRUE(Contains(l.err, "same filesystem")) << l.err;
  auto a2 = Run({"--output-format", "json", "import", "datastore", Legacy("2.x"), "--store", other});
  EXPECT_EQ(a2.exit_code, 0) << a2.err;
  if (a2.exit_code == 0) {
    EXPECT_EQ(Json(a2).at("chunks-copied").to_number<uint64_t>(), ChunkFiles(Legacy("2.x")).size());
  }
  fs::remove_all(tmpl);
}

TEST_F(ImportDatastoreTest, CorruptChunkKeepsExactlyItsSnapshotsOut) {
  const std::string src = Scratch("corrupt-src");
  test::CopyTree(Legacy("2.x"), src);
  // Chunk 0 of vm/100's first image (random data) is shared by both vm/100 snapshots and
  // ns a/b host/db. Damage a payload byte and fix the CRC, so only the digest check sees it.
  auto fidx = FixedIndex::Parse(
      test::ReadFile(src + "/vm/100/2020-09-13T12:26:40Z/drive-scsi0.img.fidx"), "fidx");
  ASSERT_TRUE(fidx.ok());
  const Digest bad = fidx->digest(0);
  const std::string chunk = ChunkPathOf(src, bad);
  auto raw = test::ReadFile(chunk);
  raw[raw.size() / 2] ^= 0x40;
  ASSERT_TRUE(RewriteBlobCrc(raw).ok());
  fs::remove(chunk);
  test::WriteFile(chunk, raw);

  const std::string dst = SparseStore(Scratch("corrupt-dst"));
  auto r = Run({"import", "datastore", src, "--store", dst});
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  EXPECT_TRUE(Contains(r.out, "chunk " + ToHex(bad) + " is bad")) << r.out;
  EXPECT_TRUE(Contains(r.out, "wrong digest")) << r.out;
  for (const char* user : {"vm/100/2020-09-13T12:26:40Z", "vm/100/2020-09-14T12:26:40Z",
                           "ns/a/ns/b/host/db/2020-09-13T12:46:40Z"}) {
    EXPECT_TRUE(Contains(r.out, std::string("snapshot ") + user + " not imported")) << user;
    EXPECT_FALSE(fs::exists(dst + "/" + user)) << user;
  }
  EXPECT_TRUE(fs::exists(dst + "/ct/101/2020-09-13T13:26:40Z/index.json.blob"));
  EXPECT_TRUE(fs::exists(dst + "/ns/a/host/web/2020-09-13T12:36:40Z/index.json.blob"));
  EXPECT_FALSE(fs::exists(ChunkPathOf(dst, bad)));
  EXPECT_EQ(Run({"verify", "--store", dst}).exit_code, 0);

  // The summary names the chunk and every snapshot using it.
  auto j = Run({"--output-format", "json", "import", "datastore", src, "--store", dst});
  EXPECT_EQ(j.exit_code, 1);
  auto jo = Json(j);
  EXPECT_EQ(jo.at("snapshots-failed").to_number<uint64_t>(), 3u);
  EXPECT_EQ(jo.at("snapshots-skipped").to_number<uint64_t>(), 4u);
  ASSERT_EQ(jo.at("bad-chunks").as_array().size(), 1u);
  const std::string line = Str(jo.at("bad-chunks").as_array()[0]);
  EXPECT_TRUE(Contains(line, ToHex(bad)) && Contains(line, "ns/a/ns/b/host/db")) << line;

  // Without the check the damaged chunk goes in, and verify of the copy finds it.
  const std::string unchecked = SparseStore(Scratch("corrupt-noverify"));
  auto n = Run({"import", "datastore", src, "--store", unchecked, "--no-verify", "--copy"});
  EXPECT_EQ(n.exit_code, 0) << n.out << n.err;
  EXPECT_TRUE(fs::exists(unchecked + "/vm/100/2020-09-13T12:26:40Z/index.json.blob"));
  auto v = Run({"verify", "--store", unchecked});
  EXPECT_EQ(v.exit_code, 1) << v.out;

  // A CRC error and a missing chunk are caught the same way.
  const std::string src2 = Scratch("corrupt-src2");
  test::CopyTree(Legacy("2.x"), src2);
  auto ct = FixedIndex::Parse(
      test::ReadFile(src2 + "/vm/200/2020-09-13T14:26:40Z/drive-scsi0.img.fidx"), "fidx");
  ASSERT_TRUE(ct.ok());
  const std::string enc = ChunkPathOf(src2, ct->digest(0));
  auto eraw = test::ReadFile(enc);
  eraw[eraw.size() - 1] ^= 1;  // encrypted chunk: only the CRC can tell
  fs::remove(enc);
  test::WriteFile(enc, eraw);
  fs::remove(ChunkPathOf(src2, fidx->digest(2)));  // vm/100 first snapshot's last chunk
  const std::string dst2 = SparseStore(Scratch("corrupt-dst2"));
  auto r2 = Run({"import", "datastore", src2, "--store", dst2});
  EXPECT_EQ(r2.exit_code, 1);
  EXPECT_TRUE(Contains(r2.out, ToHex(ct->digest(0)))) << r2.out;
  EXPECT_TRUE(Contains(r2.out, "missing chunk")) << r2.out;
  EXPECT_FALSE(fs::exists(dst2 + "/vm/200/2020-09-13T14:26:40Z"));
  EXPECT_FALSE(fs::exists(dst2 + "/vm/100/2020-09-13T12:26:40Z"));
  EXPECT_TRUE(fs::exists(dst2 + "/vm/100/2020-09-14T12:26:40Z/index.json.blob"));
}

TEST_F(ImportDatastoreTest, S3LocalCacheRefusedWithReason) {
  const std::string dst = SparseStore(Scratch("s3-dst"));
  const std::string before = TreeHash(dst);
  auto r = Run({"import", "datastore", Legacy("4.x-s3-cache"), "--store", dst});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(Contains(r.err, ".using") && Contains(r.err, "S3")) << r.err;
  EXPECT_EQ(TreeHash(dst), before);

  // Evicted chunks alone (zero-length files) are recognised when met.
  const std::string evicted = Scratch("s3-evicted");
  test::CopyTree(Legacy("4.x-s3-cache"), evicted);
  for (const auto& e : fs::recursive_directory_iterator(evicted + "/.chunks")) {
    if (e.path().extension() == ".using") fs::remove(e.path());
  }
  auto z = Run({"import", "datastore", evicted, "--store", dst});
  EXPECT_EQ(z.exit_code, 1);
  EXPECT_TRUE(Contains(z.err, "evicted chunk") && Contains(z.err, "S3")) << z.err;

  // A source configured with an S3 backend is refused from its datastore.cfg alone.
  const std::string etc = Scratch("s3-etc");
  fs::create_directories(etc);
  test::WriteText(etc + "/datastore.cfg", "datastore: s3store\n\tbackend bucket=b,client=c,type=s3\n"
                                          "\tpath " + Legacy("4.x") + "\n");
  auto c = test::RunCli({"--config-dir", etc, "import", "datastore", "s3store", "--store", dst},
                        {"PBSKIT_LOCK_ROOT=" + Scratch("locks"), "PBSKIT_STATE_DIR=" + etc});
  EXPECT_EQ(c.exit_code, 1);
  EXPECT_TRUE(Contains(c.err, "type=s3")) << c.err;
}

TEST_F(ImportDatastoreTest, SecondRunChangesNothing) {
  const std::string dst = SparseStore(Scratch("idem"));
  auto first = Run({"import", "datastore", Legacy("3.x"), "--store", dst});
  ASSERT_EQ(first.exit_code, 0) << first.out << first.err;
  const std::string before = TreeHash(dst);
  auto second = Run({"--output-format", "json", "import", "datastore", Legacy("3.x"), "--store", dst});
  ASSERT_EQ(second.exit_code, 0) << second.err;
  auto j = Json(second);
  EXPECT_EQ(j.at("snapshots-skipped").to_number<uint64_t>(), 7u);
  EXPECT_EQ(j.at("snapshots-imported").to_number<uint64_t>(), 0u);
  EXPECT_EQ(j.at("chunks-linked").to_number<uint64_t>() + j.at("chunks-copied").to_number<uint64_t>(), 0u);
  EXPECT_EQ(TreeHash(dst), before);
}

TEST_F(ImportDatastoreTest, KilledRunIsFinishedByTheNext) {
  const std::string src = Legacy("2.x");
  const std::string clean = SparseStore(Scratch("kill-clean"));
  ASSERT_EQ(Run({"import", "datastore", src, "--store", clean, "--copy"}).exit_code, 0);
  int round = 0;
  for (const char* point : {"chunks-stored", "manifest-written", "renamed"}) {
    for (int n : {1, 4}) {
      SCOPED_TRACE(std::string(point) + ":" + std::to_string(n));
      const std::string dst = SparseStore(Scratch("kill-" + std::to_string(round++)));
      auto killed = Run({"import", "datastore", src, "--store", dst, "--copy"},
                        {"PBSKIT_FAULT_IMPORT=" + std::string(point) + ":" + std::to_string(n)});
      EXPECT_EQ(killed.exit_code, 128 + SIGKILL) << killed.out << killed.err;
      // Nothing half-written is visible: every snapshot directory has its manifest (the final
      // verify below shows their chunks and files are complete; verifying now would rewrite
      // the manifests' verify state).
      for (const auto& e : fs::recursive_directory_iterator(dst)) {
        if (e.is_directory() && IsBackupTimeString(e.path().filename().string())) {
          EXPECT_TRUE(fs::exists(e.path() / "index.json.blob")) << e.path();
        }
      }
      auto again = Run({"--output-format", "json", "import", "datastore", src, "--store", dst,
                        "--copy"});
      ASSERT_EQ(again.exit_code, 0) << again.err;
      auto j = Json(again);
      EXPECT_EQ(j.at("snapshots-imported").to_number<uint64_t>() + j.at("snapshots-skipped").to_number<uint64_t>(),
                7u);
      for (const auto& e : fs::recursive_directory_iterator(dst)) {
        EXPECT_FALSE(Contains(e.path().filename().string(), ".import."))
            << "leftover " << e.path();
      }
      // Same snapshots, same files, same chunks as an uninterrupted import.
      for (const auto& e : fs::recursive_directory_iterator(clean)) {
        if (!e.is_regular_file()) continue;
        const std::string rel = e.path().string().substr(clean.size());
        EXPECT_TRUE(fs::exists(dst + rel)) << rel;
        if (e.path().filename() == "index.json.blob") {
          EXPECT_EQ(test::ReadFile(dst + rel), test::ReadFile(e.path().string())) << rel;
        }
      }
      EXPECT_EQ(Run({"verify", "--store", dst}).exit_code, 0);
    }
  }
}

TEST_F(ImportDatastoreTest, HostileNamesInTheSourceAreRefused) {
  const std::string src = Scratch("hostile-src");
  test::CopyTree(Legacy("2.x"), src);
  // A manifest that names a file outside the snapshot directory.
  const std::string mpath = src + "/ct/101/2020-09-13T13:26:40Z/index.json.blob";
  auto blob = DataBlob::FromRaw(test::ReadFile(mpath));
  ASSERT_TRUE(blob.ok());
  auto payload = blob->Decode(nullptr);
  ASSERT_TRUE(payload.ok());
  auto json = boost::json::parse(std::string(payload->begin(), payload->end())).as_object();
  json["files"].as_array()[0].as_object()["filename"] = "../../../../escape.blob";
  const std::string text = boost::json::serialize(json);
  auto enc = DataBlob::Encode(std::vector<uint8_t>(text.begin(), text.end()), nullptr, true);
  ASSERT_TRUE(enc.ok());
  test::WriteFile(mpath, enc->raw());
  // An index that is a symbolic link to a file elsewhere.
  const std::string idx = src + "/vm/100/2020-09-14T12:26:40Z/drive-scsi0.img.fidx";
  fs::remove(idx);
  fs::create_symlink(src + "/vm/100/2020-09-13T12:26:40Z/drive-scsi0.img.fidx", idx);
  // A group directory that is a symbolic link out of the datastore.
  fs::create_symlink(src + "/vm/100", src + "/vm/666");

  const std::string dst = SparseStore(Scratch("hostile-dst"));
  auto r = Run({"import", "datastore", src, "--store", dst});
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  EXPECT_TRUE(Contains(r.out, "ct/101/2020-09-13T13:26:40Z not imported: refusing archive name"))
      << r.out;
  EXPECT_TRUE(Contains(r.out, "symbolic link")) << r.out;
  EXPECT_FALSE(fs::exists(dst + "/ct/101/2020-09-13T13:26:40Z"));
  EXPECT_FALSE(fs::exists(dst + "/vm/100/2020-09-14T12:26:40Z"));
  EXPECT_FALSE(fs::exists(dst + "/vm/666"));
  EXPECT_TRUE(fs::exists(dst + "/vm/100/2020-09-13T12:26:40Z/index.json.blob"));
  for (const auto& e : fs::recursive_directory_iterator(Scratch(""))) {
    EXPECT_NE(e.path().filename(), "escape.blob") << e.path();
  }

  // A namespace directory whose name PBS cannot list stops the import before anything is
  // written.
  const std::string src2 = Scratch("hostile-ns");
  test::CopyTree(Legacy("2.x"), src2);
  fs::create_directories(src2 + "/ns/bad name");
  const std::string dst2 = SparseStore(Scratch("hostile-dst2"));
  auto n = Run({"import", "datastore", src2, "--store", dst2});
  EXPECT_EQ(n.exit_code, 1);
  EXPECT_TRUE(Contains(n.err, "bad name")) << n.err;
  EXPECT_FALSE(fs::exists(dst2 + "/vm"));
}

TEST_F(ImportDatastoreTest, RealPbs324FixtureImportsRestoresAndVerifies) {
  const std::string fixture = test::Fixture("pbs-3.2.4-datastore");
  const std::string before = TreeHash(fixture);
  const std::string dst = SparseStore(Scratch("fixture-dst"));
  auto r = Run({"import", "datastore", fixture, "--store", dst});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_TRUE(Contains(r.out, "6 group(s) of 3 namespace(s)")) << r.out;
  EXPECT_EQ(TreeHash(fixture), before);

  auto store = DataStore::Open(dst, "dst");
  ASSERT_TRUE(store.ok());
  auto ab = BackupNamespace::Parse("a/b");
  auto owner = (*store)->GetOwner(*ab, *BackupGroup::Parse("host/web"));
  ASSERT_TRUE(owner.ok());
  EXPECT_EQ(*owner, "web@pbs!backup");
  auto prot = (*store)->IsProtected({}, *BackupDir::Parse("vm/100/2024-05-02T10:00:00Z"));
  ASSERT_TRUE(prot.ok());
  EXPECT_TRUE(*prot);
  auto gnotes = (*store)->GetGroupNotes({}, *BackupGroup::Parse("vm/100"));
  ASSERT_TRUE(gnotes.ok());
  EXPECT_FALSE(gnotes->empty());
  EXPECT_EQ(test::ReadFile(dst + "/ct/101/2024-05-01T11:00:00Z/client.log.blob"),
            test::ReadFile(fixture + "/ct/101/2024-05-01T11:00:00Z/client.log.blob"));
  for (const auto& e : fs::recursive_directory_iterator(fixture)) {
    if (e.path().filename() != "index.json.blob") continue;
    const std::string rel = e.path().string().substr(fixture.size());
    EXPECT_EQ(test::ReadFile(dst + rel), test::ReadFile(e.path().string())) << rel;
  }

  struct Want {
    const char* ns;
    const char* snap;
    const char* archive;
    const char* sha;
  };
  const Want wants[] = {
      {"", "ct/101/2024-05-01T11:00:00Z", "pct.conf",
       "4587121623ed9a97847d6f34236983c3746287f42a2f5a6d82bbdf1eb40c177c"},
      {"", "vm/100/2024-05-01T10:00:00Z", "drive-scsi0.img",
       "70f35d7c3f63127d1cf474bf7ee9a4e0d126c1df9683dd935abea274f0cdd65d"},
      {"", "vm/100/2024-05-02T10:00:00Z", "drive-scsi0.img",
       "ad2706f1c9f8a25dd28dc24ed2a8ed6c22b194e0e8df75b416793bde38b5ef1a"},
      {"", "vm/201/2024-05-05T13:00:00Z", "drive-scsi0.img",
       "907ac6ce59f96cfbf32f265b4fe3ab92dcab8c33d5d75bb5bb0d77ab89981beb"},
      {"a/b", "host/web/2024-05-04T08:00:00Z", "catalog.pcat1",
       "e54ee6d3abb928dd5cc89bd9102a9a252e62fd8888c62baaae2416d42fb7c27e"},
  };
  for (const auto& w : wants) {
    std::string out = Scratch(std::string("fixture-restore-") + std::to_string(restores_++));
    std::vector<std::string> args = {"restore", "--store", dst, w.snap, w.archive, out};
    if (*w.ns) args.insert(args.end(), {"--ns", w.ns});
    if (Contains(w.snap, "vm/201/")) {  // sign-only: the signature is checked with the key
      args.insert(args.end(), {"--keyfile", test::Fixture("pbs-3.2.4-datastore.key.json")});
    }
    auto rr = Run(args);
    ASSERT_EQ(rr.exit_code, 0) << w.snap << ": " << rr.err;
    EXPECT_EQ(test::Sha256Hex(test::ReadFile(out)), w.sha) << w.snap << " " << w.archive;
  }
  // The encrypted snapshot restores with the fixture's key.
  std::string enc = Scratch("fixture-restore-enc");
  auto er = Run({"restore", "--store", dst, "vm/200/2024-05-05T12:00:00Z", "drive-scsi0.img", enc,
                 "--keyfile", test::Fixture("pbs-3.2.4-datastore.key.json")});
  ASSERT_EQ(er.exit_code, 0) << er.err;
  EXPECT_EQ(test::Sha256Hex(test::ReadFile(enc)),
            "29b688bd544a9488d5dae8f008da8866aff06eb0b49949048633c4efe2f8da72");

  auto v = Run({"verify", "--store", dst});
  EXPECT_EQ(v.exit_code, 0) << v.out << v.err;
}

}  // namespace
}  // namespace pbskit
