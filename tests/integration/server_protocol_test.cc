// The acceptance test: `pbskit serve` on loopback driven by pbskit's own protocol
// clients (BackupClient / ReaderClient over TLS + HTTP/2). Backup of an image and of a
// directory (pxar), listing over REST, byte-identical restore through the reader, a second
// backup that uploads only the changed chunks, encryption, token and password auth, ACL
// denial, an upload aborted midway that leaves nothing, and verify / GC / prune as tasks.
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include "pbskit/datastore/datastore_config.h"
#include "pbskit/datastore/snapshot_writer.h"
#include "pbskit/formats/crypt_config.h"
#include "pbskit/formats/crypto.h"
#include "pbskit/formats/data_blob.h"
#include "pbskit/formats/pxar/encoder.h"
#include "pbskit/importers/pxar_fs.h"
#include "pbskit/server/access_config.h"
#include "pbskit/server/backup_client.h"
#include "pbskit/server/http_client.h"
#include "pbskit/server/password.h"
#include "pbskit/server/reader_client.h"
#include "pbskit/server/serve.h"
#include "test_server.h"
#include "test_support.h"

namespace pbskit::server {
namespace {

namespace json = boost::json;
namespace fs = std::filesystem;

constexpr uint64_t kMiB = 1024 * 1024;

std::vector<uint8_t> TestImage(uint64_t size, uint32_t seed) {
  std::vector<uint8_t> v(size);
  std::mt19937 rng(seed);
  for (size_t i = 0; i < v.size(); i += 4) {
    uint32_t x = rng();
    for (size_t k = 0; k < 4 && i + k < v.size(); ++k)
      v[i + k] = static_cast<uint8_t>(x >> (8 * k));
  }
  // A zero region (compressible) in the second 4 MiB, where the image is that large.
  if (size > 4 * kMiB) {
    std::fill(v.begin() + static_cast<std::ptrdiff_t>(4 * kMiB),
              v.begin() + static_cast<std::ptrdiff_t>(std::min<uint64_t>(size, 8 * kMiB)), 0);
  }
  return v;
}

class ServerProtocolTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new test::TempDir();
    config_ = *dir_ / "etc";
    ServeConfig cfg = test::LoopbackServeConfig(*dir_);
    auto s = Serve::Start(cfg);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    serve_ = s->release();
    ASSERT_TRUE(serve_->default_setup().has_value());
    root_secret_ = serve_->default_setup()->secret;

    auto users = UserConfig::Load(config_);
    ASSERT_TRUE(users.ok());
    auto tokens = LoadHashFile(config_ + "/token.shadow");
    ASSERT_TRUE(tokens.ok());
    auto acl = LoadAcl(config_);
    ASSERT_TRUE(acl.ok());
    for (const char* u : {"backup@pbs", "alice@pbs", "nobody@pbs"}) {
      UserEntry e;
      e.id = u;
      ASSERT_TRUE(users->Add(e).ok());
    }
    for (const char* t : {"backup@pbs!client", "nobody@pbs!none"}) {
      UserEntry e;
      e.id = t;
      e.is_token = true;
      ASSERT_TRUE(users->Add(e).ok());
      auto h = EncryptPassword(std::string(t).substr(std::string(t).find('!') + 1) + "-secret");
      ASSERT_TRUE(h.ok());
      (*tokens)[t] = *h;
    }
    ASSERT_TRUE(users->Save(config_).ok());
    ASSERT_TRUE(SaveHashFile(config_ + "/token.shadow", *tokens, false).ok());
    auto pw = EncryptPassword("alice-password");
    ASSERT_TRUE(pw.ok());
    ASSERT_TRUE(SaveHashFile(config_ + "/shadow.json", {{"alice@pbs", *pw}}, true).ok());
    acl->Insert("/datastore/store1", "backup@pbs", "DatastoreBackup", true);
    acl->Insert("/datastore/store1", "backup@pbs!client", "DatastoreBackup", true);
    acl->Insert("/datastore/store1", "alice@pbs", "DatastoreBackup", true);
    ASSERT_TRUE(SaveAcl(config_, *acl).ok());
  }
  static void TearDownTestSuite() {
    delete serve_;
    delete dir_;
  }

  static RepositoryConnectOptions Connect(const std::string& auth_id, const std::string& secret) {
    RepositoryConnectOptions c;
    auto repo = BackupRepository::Parse(auth_id + "@127.0.0.1:" + std::to_string(serve_->port()) +
                                        ":store1");
    EXPECT_TRUE(repo.ok()) << repo.status().ToString();
    c.repository = *repo;
    c.fingerprint = serve_->fingerprint();
    c.secret = secret;
    c.timeout_seconds = 60;
    return c;
  }
  static RepositoryConnectOptions RootConnect() { return Connect("root@pam!pbskit", root_secret_); }

  static std::unique_ptr<HttpClient> Rest() {
    auto c = ConnectRepository(RootConnect());
    EXPECT_TRUE(c.ok()) << c.status().ToString();
    return std::move(c).value();
  }

  static std::vector<uint8_t> Restore(const RepositoryConnectOptions& connect,
                                      const ReaderSessionOptions& opts, const std::string& archive,
                                      Status* status = nullptr) {
    std::vector<uint8_t> out;
    auto r = ReaderClient::Start(connect, opts);
    if (!r.ok()) {
      if (status)
        *status = r.status();
      else
        ADD_FAILURE() << r.status().ToString();
      return out;
    }
    Status st = (*r)->RestoreArchive(archive, [&](std::span<const uint8_t> d) {
      out.insert(out.end(), d.begin(), d.end());
      return Status::OK();
    });
    if (status) {
      *status = st;
    } else {
      EXPECT_TRUE(st.ok()) << st.ToString();
    }
    return out;
  }

  json::object WaitTask(HttpClient& c, const std::string& upid) {
    std::string enc;
    for (unsigned char ch : upid) {
      if (std::isalnum(ch) || ch == '-' || ch == '_' || ch == '.') {
        enc += static_cast<char>(ch);
      } else {
        char b[4];
        std::snprintf(b, sizeof b, "%%%02X", ch);
        enc += b;
      }
    }
    for (int i = 0; i < 2400; ++i) {
      auto st = c.Call("GET", "/nodes/localhost/tasks/" + enc + "/status");
      EXPECT_TRUE(st.ok()) << st.status().ToString();
      if (!st.ok()) return {};
      if (st->at("status").as_string() == "stopped") return st->as_object();
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    ADD_FAILURE() << "task did not finish: " << upid;
    return {};
  }

  static test::TempDir* dir_;
  static Serve* serve_;
  static std::string config_, root_secret_;
};

test::TempDir* ServerProtocolTest::dir_ = nullptr;
Serve* ServerProtocolTest::serve_ = nullptr;
std::string ServerProtocolTest::config_;
std::string ServerProtocolTest::root_secret_;

TEST(BackupRepositoryTest, ParsesPbsRepositoryStrings) {
  auto r = BackupRepository::Parse("root@pam!sync@pbs.example:8008:store1");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->auth_id, "root@pam!sync");
  EXPECT_EQ(r->host, "pbs.example");
  EXPECT_EQ(r->port, 8008);
  EXPECT_EQ(r->store, "store1");
  EXPECT_TRUE(r->is_token());
  r = BackupRepository::Parse("backup@pbs@[::1]:store2");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->host, "[::1]");
  EXPECT_EQ(r->port, 8007);
  r = BackupRepository::Parse("store3");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->auth_id, "root@pam");
  EXPECT_EQ(r->host, "localhost");
  EXPECT_EQ(r->ToString(), "root@pam@localhost:8007:store3");
  for (const char* bad : {"", "host:", "a@host:store1", "root@pam@host:99999:store1",
                          "root@pam@ho st:store1", "root@pam@host:1:2:store1", "x:../y"}) {
    EXPECT_FALSE(BackupRepository::Parse(bad).ok()) << bad;
  }
}

TEST_F(ServerProtocolTest, ImageBackupRestoreAndIncrementalSecondBackup) {
  const uint64_t size = 10 * kMiB + 123;
  std::vector<uint8_t> image = TestImage(size, 1);
  std::string conf = "cores: 2\nmemory: 2048\n";
  BackupSessionOptions o;
  o.backup_type = "vm";
  o.backup_id = "100";
  o.backup_time = 1700000000;
  {
    auto c = BackupClient::Start(RootConnect(), o);
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    EXPECT_FALSE((*c)->previous_backup_time().has_value());
    auto b = (*c)->UploadBlob(
        "qemu-server.conf.blob",
        std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(conf.data()), conf.size()));
    ASSERT_TRUE(b.ok()) << b.status().ToString();
    MemoryByteSource src(image);
    auto f = (*c)->UploadFixedIndex("drive-scsi0.img.fidx", src, size);
    ASSERT_TRUE(f.ok()) << f.status().ToString();
    EXPECT_EQ(f->stats.chunk_count, 3u);
    EXPECT_EQ(f->stats.chunks_uploaded, 3u);
    EXPECT_EQ(f->info.size, size);
    auto lines = UploadSummaryLines("drive-scsi0.img.fidx", f->stats);
    ASSERT_FALSE(lines.empty());
    EXPECT_EQ(lines[0].rfind("drive-scsi0.img: had to backup 10 MiB of 10 MiB (compressed ", 0), 0u)
        << lines[0];
    auto m = (*c)->Finish();
    ASSERT_TRUE(m.ok()) << m.status().ToString();
    EXPECT_EQ(m->files.size(), 2u);
  }

  // Listed over REST as a finished snapshot.
  auto rest = Rest();
  auto snaps = rest->Call("GET", "/admin/datastore/store1/snapshots",
                          {{"backup-type", "vm"}, {"backup-id", "100"}});
  ASSERT_TRUE(snaps.ok()) << snaps.status().ToString();
  ASSERT_EQ(snaps->as_array().size(), 1u);
  const auto& item = snaps->as_array()[0].as_object();
  EXPECT_EQ(item.at("backup-time").as_int64(), 1700000000);
  EXPECT_TRUE(item.contains("size"));
  EXPECT_EQ(item.at("owner").as_string(), "root@pam!pbskit");

  // Restore byte-identical through the reader.
  ReaderSessionOptions ro;
  ro.backup_type = "vm";
  ro.backup_id = "100";
  ro.backup_time = 1700000000;
  EXPECT_EQ(Restore(RootConnect(), ro, "drive-scsi0.img.fidx"), image);
  auto conf_back = Restore(RootConnect(), ro, "qemu-server.conf.blob");
  EXPECT_EQ(std::string(conf_back.begin(), conf_back.end()), conf);

  // Second backup: only the changed 4 MiB chunk is uploaded.
  std::vector<uint8_t> image2 = image;
  image2[9 * kMiB] ^= 0xff;  // inside the third chunk
  o.backup_time = 1700000100;
  {
    auto c = BackupClient::Start(RootConnect(), o);
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    ASSERT_TRUE((*c)->previous_backup_time().has_value());
    EXPECT_EQ(*(*c)->previous_backup_time(), 1700000000);
    ASSERT_TRUE((*c)->previous_manifest().has_value());
    MemoryByteSource src(image2);
    auto f = (*c)->UploadFixedIndex("drive-scsi0.img.fidx", src, size);
    ASSERT_TRUE(f.ok()) << f.status().ToString();
    EXPECT_EQ(f->stats.chunks_uploaded, 1u);
    EXPECT_EQ(f->stats.chunk_reused, 2u);
    auto lines = UploadSummaryLines("drive-scsi0.img.fidx", f->stats);
    ASSERT_EQ(lines.size(), 2u);
    EXPECT_EQ(lines[1], "drive-scsi0.img: backup was done incrementally, reused 8 MiB (80.0%)");
    ASSERT_TRUE((*c)->Finish().ok());
  }
  ro.backup_time = 1700000100;
  auto reader = ReaderClient::Start(RootConnect(), ro);
  ASSERT_TRUE(reader.ok()) << reader.status().ToString();
  const auto& stats = (*reader)->manifest().unprotected.at("chunk_upload_stats").as_object();
  EXPECT_EQ(stats.at("count").to_number<int64_t>(), 1);
  EXPECT_EQ(Restore(RootConnect(), ro, "drive-scsi0.img.fidx"), image2);
  // The reader only serves chunks of indexes it handed out.
  auto denied = (*reader)->DownloadChunk(Digest{});
  EXPECT_EQ(denied.status().code(), Code::kPermissionDenied) << denied.status().ToString();
}

TEST_F(ServerProtocolTest, DirectoryBackupAsPxarRestoresByteIdentical) {
  std::string src = *dir_ / "srcdir";
  fs::create_directories(src + "/etc/conf.d");
  fs::create_directories(src + "/var/data");
  {
    std::ofstream(src + "/etc/hostname") << "host1\n";
    std::ofstream(src + "/etc/conf.d/app.conf") << "key=value\n";
    std::ofstream big(src + "/var/data/blob.bin", std::ios::binary);
    auto bytes = TestImage(3 * kMiB + 17, 7);
    big.write(reinterpret_cast<const char*>(bytes.data()),
              static_cast<std::streamsize>(bytes.size()));
  }
  fs::create_symlink("../etc/hostname", src + "/var/hostname-link");
  // The expected stream: the same encoder into memory.
  pxar::VectorSink expected;
  auto local = importers::CreatePxarArchive(src, &expected, nullptr, {});
  ASSERT_TRUE(local.ok()) << local.status().ToString();

  BackupSessionOptions o;
  o.backup_type = "host";
  o.backup_id = "files";
  o.backup_time = 1700000000;
  auto c = BackupClient::Start(RootConnect(), o);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  auto up = (*c)->BeginDynamicIndex("root.pxar.didx");
  ASSERT_TRUE(up.ok()) << up.status().ToString();
  auto created = importers::CreatePxarArchive(src, up->get(), nullptr, {});
  ASSERT_TRUE(created.ok()) << created.status().ToString();
  auto closed = (*up)->Close();
  ASSERT_TRUE(closed.ok()) << closed.status().ToString();
  EXPECT_EQ(closed->info.size, expected.data().size());
  ASSERT_TRUE((*c)->Finish().ok());

  ReaderSessionOptions ro;
  ro.backup_type = "host";
  ro.backup_id = "files";
  ro.backup_time = 1700000000;
  auto restored = Restore(RootConnect(), ro, "root.pxar.didx");
  EXPECT_TRUE(restored == expected.data()) << restored.size() << " vs " << expected.data().size();

  // A dynamic index from a ByteSource in a second backup: nothing new to upload.
  o.backup_time = 1700000100;
  auto c2 = BackupClient::Start(RootConnect(), o);
  ASSERT_TRUE(c2.ok()) << c2.status().ToString();
  MemoryByteSource bytes(expected.data());
  auto again = (*c2)->UploadDynamicIndex("root.pxar.didx", bytes);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(again->stats.chunks_uploaded, 0u);
  EXPECT_EQ(again->info.csum, closed->info.csum);
  ASSERT_TRUE((*c2)->Finish().ok());
}

TEST_F(ServerProtocolTest, EncryptedBackupNeedsTheKeyToRestore) {
  std::array<uint8_t, 32> key{};
  for (size_t i = 0; i < key.size(); ++i) key[i] = static_cast<uint8_t>(i * 7 + 3);
  CryptConfig crypt(key);
  std::vector<uint8_t> image = TestImage(5 * kMiB, 3);
  BackupSessionOptions o;
  o.backup_type = "vm";
  o.backup_id = "300";
  o.backup_time = 1700000000;
  o.crypt_mode = CryptMode::kEncrypt;
  o.crypt = &crypt;
  {
    auto c = BackupClient::Start(RootConnect(), o);
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    MemoryByteSource src(image);
    ASSERT_TRUE((*c)->UploadFixedIndex("drive-scsi0.img.fidx", src, image.size()).ok());
    ASSERT_TRUE((*c)->Finish().ok());
  }
  auto rest = Rest();
  auto files =
      rest->Call("GET", "/admin/datastore/store1/files",
                 {{"backup-type", "vm"}, {"backup-id", "300"}, {"backup-time", 1700000000}});
  ASSERT_TRUE(files.ok()) << files.status().ToString();
  EXPECT_EQ(files->as_array()[0].at("crypt-mode").as_string(), "encrypt");
  EXPECT_EQ(files->as_array()[1].at("crypt-mode").as_string(), "sign-only");

  ReaderSessionOptions ro;
  ro.backup_type = "vm";
  ro.backup_id = "300";
  ro.backup_time = 1700000000;
  Status st;
  Restore(RootConnect(), ro, "drive-scsi0.img.fidx", &st);
  EXPECT_EQ(st.code(), Code::kInvalidArgument) << st.ToString();
  ro.crypt = &crypt;
  EXPECT_EQ(Restore(RootConnect(), ro, "drive-scsi0.img.fidx"), image);

  // sign-only: plain chunks (restorable without key material in the chunks), signed manifest.
  o.backup_id = "301";
  o.crypt_mode = CryptMode::kSignOnly;
  {
    // The announced size must match what the source delivers (own group: the failed session
    // is cleaned up by the server in the background).
    BackupSessionOptions other = o;
    other.backup_id = "302";
    auto c = BackupClient::Start(RootConnect(), other);
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    MemoryByteSource src(image);
    auto wrong = (*c)->UploadFixedIndex("drive-scsi0.img.fidx", src, image.size() + 1);
    EXPECT_EQ(wrong.status().code(), Code::kInvalidArgument) << wrong.status().ToString();
  }
  {
    auto c = BackupClient::Start(RootConnect(), o);
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    MemoryByteSource src(image);
    ASSERT_TRUE((*c)->UploadFixedIndex("drive-scsi0.img.fidx", src, image.size()).ok());
    auto m = (*c)->Finish();
    ASSERT_TRUE(m.ok()) << m.status().ToString();
    EXPECT_TRUE(m->signature.has_value());
  }
  ro.backup_id = "301";
  auto restored = Restore(RootConnect(), ro, "drive-scsi0.img.fidx");
  EXPECT_EQ(restored, image);
  // A signed manifest needs the key on restore, as with proxmox-backup-client.
  ro.crypt = nullptr;
  Restore(RootConnect(), ro, "drive-scsi0.img.fidx", &st);
  EXPECT_EQ(st.code(), Code::kInvalidArgument) << st.ToString();
}

TEST_F(ServerProtocolTest, TokenPasswordAuthAndAclDenial) {
  BackupSessionOptions o;
  o.backup_type = "host";
  o.backup_id = "client1";
  o.backup_time = 1700000000;
  // No ACL at all: refused before any session starts.
  auto none = BackupClient::Start(Connect("nobody@pbs!none", "none-secret"), o);
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.status().code(), Code::kPermissionDenied) << none.status().ToString();
  // Wrong secret: 401.
  auto wrong = BackupClient::Start(Connect("backup@pbs!client", "nope"), o);
  ASSERT_FALSE(wrong.ok());
  EXPECT_EQ(wrong.status().code(), Code::kPermissionDenied);

  // Datastore.Backup token: its own new group works.
  {
    auto c = BackupClient::Start(Connect("backup@pbs!client", "client-secret"), o);
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    std::string data = "log line\n";
    ASSERT_TRUE((*c)->UploadBlob("notes.blob",
                                 std::span<const uint8_t>(
                                     reinterpret_cast<const uint8_t*>(data.data()), data.size()))
                    .ok());
    ASSERT_TRUE((*c)->Finish().ok());
  }
  // Password login (ticket) for alice: someone else's group is refused by the owner check.
  auto alice = BackupClient::Start(Connect("alice@pbs", "alice-password"), [&] {
    auto x = o;
    x.backup_time = 1700000100;
    return x;
  }());
  ASSERT_FALSE(alice.ok());
  EXPECT_NE(alice.status().message().find("backup owner check failed"), std::string::npos)
      << alice.status().ToString();
  auto bad_pw = BackupClient::Start(Connect("alice@pbs", "wrong"), o);
  EXPECT_EQ(bad_pw.status().code(), Code::kPermissionDenied);
  BackupSessionOptions mine = o;
  mine.backup_id = "alice-laptop";
  auto ok = BackupClient::Start(Connect("alice@pbs", "alice-password"), mine);
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  std::string data(100000, 'x');
  ASSERT_TRUE(
      (*ok)
          ->UploadBlob("data.blob", std::span<const uint8_t>(
                                        reinterpret_cast<const uint8_t*>(data.data()), data.size()))
          .ok());
  ASSERT_TRUE((*ok)->Finish().ok());
  // The reader refuses a token without Read on another owner's snapshot.
  ReaderSessionOptions ro;
  ro.backup_type = "host";
  ro.backup_id = "alice-laptop";
  ro.backup_time = 1700000000;
  auto r = ReaderClient::Start(Connect("backup@pbs!client", "client-secret"), ro);
  EXPECT_FALSE(r.ok());
}

TEST_F(ServerProtocolTest, AbortedUploadLeavesNothing) {
  BackupSessionOptions o;
  o.backup_type = "vm";
  o.backup_id = "500";
  o.backup_time = 1700000000;
  std::string snapshot_dir = *dir_ / "store1/vm/500/2023-11-14T22:13:20Z";
  {
    auto c = BackupClient::Start(RootConnect(), o);
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    std::vector<uint8_t> image = TestImage(12 * kMiB, 9);
    auto up = (*c)->BeginDynamicIndex("disk.img.didx");
    ASSERT_TRUE(up.ok());
    ASSERT_TRUE((*up)->Write(std::span<const uint8_t>(image.data(), 9 * kMiB)).ok());
    EXPECT_TRUE(fs::exists(snapshot_dir));
    auto running = Rest()->Call("GET", "/nodes/localhost/tasks",
                                {{"running", "1"}, {"typefilter", "backup"}});
    ASSERT_TRUE(running.ok()) << running.status().ToString();
    EXPECT_EQ(running->as_array().size(), 1u);
    (*c)->Abort();  // the connection drops mid-upload
    up->reset();
  }
  // The server cleans up when it notices the dropped connection.
  for (int i = 0; i < 1200 && fs::exists(snapshot_dir); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_FALSE(fs::exists(snapshot_dir));
  auto rest = Rest();
  // The backup task ends only after its locks are released; the directory goes first.
  bool task_ended = false;
  for (int i = 0; i < 1200 && !task_ended; ++i) {
    auto running = rest->Call("GET", "/nodes/localhost/tasks",
                              {{"running", "1"}, {"typefilter", "backup"}});
    ASSERT_TRUE(running.ok()) << running.status().ToString();
    task_ended = running->as_array().empty();
    if (!task_ended) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_TRUE(task_ended);
  auto snaps = rest->Call("GET", "/admin/datastore/store1/snapshots",
                          {{"backup-type", "vm"}, {"backup-id", "500"}});
  if (snaps.ok()) {
    EXPECT_TRUE(snaps->as_array().empty());
  } else {
    EXPECT_EQ(snaps.status().code(), Code::kNotFound);
  }
  // The same backup time can be used again afterwards.
  auto again = BackupClient::Start(RootConnect(), o);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  std::string data = "x";
  ASSERT_TRUE((*again)
                  ->UploadBlob("a.blob", std::span<const uint8_t>(
                                             reinterpret_cast<const uint8_t*>(data.data()), 1))
                  .ok());
  ASSERT_TRUE((*again)->Finish().ok());
}

TEST_F(ServerProtocolTest, VerifyPruneAndGcAsTasks) {
  // Two snapshots of one group.
  for (int64_t t : {1700001000, 1700002000}) {
    BackupSessionOptions o;
    o.backup_type = "ct";
    o.backup_id = "900";
    o.backup_time = t;
    auto c = BackupClient::Start(RootConnect(), o);
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    std::vector<uint8_t> data = TestImage(2 * kMiB + static_cast<uint64_t>(t % 7), 11);
    MemoryByteSource src(data);
    ASSERT_TRUE((*c)->UploadDynamicIndex("root.pxar.didx", src, 64 * 1024).ok());
    ASSERT_TRUE((*c)->Finish().ok());
  }
  auto rest = Rest();
  auto v = rest->Call("POST", "/admin/datastore/store1/verify",
                      {{"backup-type", "ct"}, {"backup-id", "900"}});
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  EXPECT_EQ(WaitTask(*rest, std::string(v->as_string()))["exitstatus"].as_string(), "OK");
  auto snaps = rest->Call("GET", "/admin/datastore/store1/snapshots",
                          {{"backup-type", "ct"}, {"backup-id", "900"}});
  ASSERT_TRUE(snaps.ok());
  for (const auto& s : snaps->as_array()) {
    EXPECT_EQ(s.at("verification").at("state").as_string(), "ok");
  }

  auto p = rest->Call(
      "POST", "/admin/datastore/store1/prune",
      {{"backup-type", "ct"}, {"backup-id", "900"}, {"keep-last", 1}, {"use-task", true}});
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ(WaitTask(*rest, std::string(p->as_string()))["exitstatus"].as_string(), "OK");
  snaps = rest->Call("GET", "/admin/datastore/store1/snapshots",
                     {{"backup-type", "ct"}, {"backup-id", "900"}});
  ASSERT_TRUE(snaps.ok());
  ASSERT_EQ(snaps->as_array().size(), 1u);
  EXPECT_EQ(snaps->as_array()[0].at("backup-time").as_int64(), 1700002000);

  auto gc = rest->Call("POST", "/admin/datastore/store1/gc");
  ASSERT_TRUE(gc.ok()) << gc.status().ToString();
  std::string upid(gc->as_string());
  EXPECT_EQ(WaitTask(*rest, upid)["exitstatus"].as_string(), "OK");
  auto status = rest->Call("GET", "/admin/datastore/store1/gc");
  ASSERT_TRUE(status.ok());
  EXPECT_EQ(status->at("upid").as_string(), upid);
  EXPECT_GT(status->at("disk-chunks").to_number<int64_t>(), 0);
}

// Chunks a sync job would move: already encoded, sent as they are. Ten 4 MiB chunks travel at
// once (the server checks them on its worker threads); the restore is byte-identical, and a
// chunk whose digest does not match its content is refused with PBS's message while the
// unfinished snapshot disappears.
class VectorChunks final : public EncodedChunkSource {
 public:
  explicit VectorChunks(std::vector<EncodedChunk> chunks) : chunks_(std::move(chunks)) {}
  Result<std::optional<EncodedChunk>> Next() override {
    if (next_ == chunks_.size()) return std::optional<EncodedChunk>();
    return std::optional<EncodedChunk>(chunks_[next_++]);
  }

 private:
  std::vector<EncodedChunk> chunks_;
  size_t next_ = 0;
};

std::vector<EncodedChunk> EncodeChunks(const std::vector<uint8_t>& data) {
  std::vector<EncodedChunk> out;
  for (size_t off = 0; off < data.size(); off += 4 * kMiB) {
    std::span<const uint8_t> c(data.data() + off, std::min<size_t>(4 * kMiB, data.size() - off));
    auto blob = DataBlob::Encode(c, nullptr, true);
    EXPECT_TRUE(blob.ok());
    out.push_back({Sha256(c), c.size(), std::string(blob->raw().begin(), blob->raw().end())});
  }
  return out;
}

TEST_F(ServerProtocolTest, EncodedChunksUploadConcurrentlyAndRestoreByteIdentical) {
  const uint64_t size = 40 * kMiB - 5;
  std::vector<uint8_t> image = TestImage(size, 7);
  std::vector<EncodedChunk> chunks = EncodeChunks(image);
  ASSERT_EQ(chunks.size(), 10u);
  BackupSessionOptions o;
  o.backup_type = "vm";
  o.backup_id = "encoded";
  o.backup_time = 1700001000;
  {
    auto c = BackupClient::Start(RootConnect(), o);
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    VectorChunks src(chunks);
    auto f = (*c)->UploadFixedIndexEncoded("drive-scsi0.img.fidx", src, size);
    ASSERT_TRUE(f.ok()) << f.status().ToString();
    EXPECT_EQ(f->stats.chunks_uploaded, 10u);
    EXPECT_EQ(f->info.size, size);
    ASSERT_TRUE((*c)->Finish().ok());
  }
  ReaderSessionOptions ro;
  ro.backup_type = "vm";
  ro.backup_id = "encoded";
  ro.backup_time = 1700001000;
  EXPECT_EQ(Restore(RootConnect(), ro, "drive-scsi0.img.fidx"), image);

  // A chunk in the middle carries a digest its content does not have: refused, nothing is
  // left behind.
  std::vector<EncodedChunk> bad = EncodeChunks(TestImage(size, 8));
  bad[5].digest[0] ^= 0x01;
  o.backup_time = 1700001100;
  {
    auto c = BackupClient::Start(RootConnect(), o);
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    VectorChunks src(bad);
    auto f = (*c)->UploadFixedIndexEncoded("drive-scsi0.img.fidx", src, size);
    ASSERT_FALSE(f.ok());
    EXPECT_NE(f.status().message().find("detected chunk with wrong digest."), std::string::npos)
        << f.status().ToString();
  }
  const std::string unfinished = *dir_ / "store1/vm/encoded/2023-11-14T22:31:40Z";
  for (int i = 0; i < 200 && fs::exists(unfinished); ++i) {  // removed when the session ends
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_FALSE(fs::exists(unfinished));
  auto snaps = Rest()->Call("GET", "/admin/datastore/store1/snapshots",
                            {{"backup-type", "vm"}, {"backup-id", "encoded"}});
  ASSERT_TRUE(snaps.ok()) << snaps.status().ToString();
  EXPECT_EQ(snaps->as_array().size(), 1u);

  // Sizes that cannot form a fixed index are refused before anything is sent for them.
  o.backup_time = 1700001200;
  {
    auto c = BackupClient::Start(RootConnect(), o);
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    std::vector<EncodedChunk> two = {chunks[9], chunks[0]};  // short chunk first
    VectorChunks src(two);
    auto f = (*c)->UploadFixedIndexEncoded("drive-scsi0.img.fidx", src,
                                           chunks[9].size + chunks[0].size);
    EXPECT_EQ(f.status().code(), Code::kInvalidArgument) << f.status().ToString();
  }
}

// PBS's lookup_datastore: a store in read-only maintenance refuses backups but still serves
// readers; offline refuses both. The messages are PBS's.
// Sets (or with "" removes) one property of store1 in datastore.cfg.
void SetStoreOption(const std::string& config_dir, const std::string& key,
                    const std::string& value) {
  auto cfg = DatastoreConfig::Load(config_dir);
  ASSERT_TRUE(cfg.ok()) << cfg.status().ToString();
  DatastoreConfigEntry e = *cfg->Find("store1");
  if (value.empty()) {
    e.Erase(key);
  } else {
    e.Set(key, value);
  }
  ASSERT_TRUE(cfg->Remove("store1").ok());
  ASSERT_TRUE(cfg->Add(e).ok());
  ASSERT_TRUE(cfg->Save(config_dir).ok());
}

TEST_F(ServerProtocolTest, MaintenanceModeRefusesBackupAndOfflineRefusesReader) {
  auto set_mode = [&](const std::string& mode) {
    SetStoreOption(config_, "maintenance-mode", mode);
  };
  std::vector<uint8_t> image = TestImage(kMiB, 9);
  BackupSessionOptions o;
  o.backup_type = "host";
  o.backup_id = "maint";
  o.backup_time = 1700002000;
  {
    auto c = BackupClient::Start(RootConnect(), o);
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    MemoryByteSource src(image);
    ASSERT_TRUE((*c)->UploadFixedIndex("disk.img.fidx", src, image.size()).ok());
    ASSERT_TRUE((*c)->Finish().ok());
  }
  ReaderSessionOptions ro;
  ro.backup_type = "host";
  ro.backup_id = "maint";
  ro.backup_time = 1700002000;

  set_mode("type=read-only,message=disk swap");
  o.backup_time = 1700002100;
  auto refused = BackupClient::Start(RootConnect(), o);
  EXPECT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find(
                "datastore 'store1' is unavailable: read-only maintenance mode: disk swap"),
            std::string::npos)
      << refused.status().ToString();
  EXPECT_EQ(Restore(RootConnect(), ro, "disk.img.fidx"), image);

  set_mode("type=offline");
  Status st;
  Restore(RootConnect(), ro, "disk.img.fidx", &st);
  EXPECT_NE(st.message().find("datastore 'store1' is unavailable: offline maintenance mode"),
            std::string::npos)
      << st.ToString();

  set_mode("");
  EXPECT_EQ(Restore(RootConnect(), ro, "disk.img.fidx"), image);
}

// PBS's verify_after_complete: with verify-new set, a finished backup starts a "verify" task
// of exactly that snapshot, which verifies it and records verify_state in its manifest.
TEST_F(ServerProtocolTest, VerifyNewStartsAVerifyTaskAfterFinish) {
  SetStoreOption(config_, "verify-new", "true");
  std::vector<uint8_t> image = TestImage(5 * kMiB, 11);
  BackupSessionOptions o;
  o.backup_type = "host";
  o.backup_id = "vnew";
  o.backup_time = 1700003000;  // 6553FCB8 in the worker id
  {
    auto c = BackupClient::Start(RootConnect(), o);
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    MemoryByteSource src(image);
    ASSERT_TRUE((*c)->UploadFixedIndex("disk.img.fidx", src, image.size()).ok());
    ASSERT_TRUE((*c)->Finish().ok());
  }
  auto rest = Rest();
  std::string upid;
  for (int i = 0; i < 400 && upid.empty(); ++i) {
    auto list = rest->Call("GET", "/nodes/localhost/tasks", {{"typefilter", "verify"}});
    ASSERT_TRUE(list.ok()) << list.status().ToString();
    for (const auto& t : list->as_array()) {
      std::string u(t.as_object().at("upid").as_string());
      if (u.find(":verify:store1\\x3ahost-vnew-6553FCB8:") != std::string::npos) upid = u;
    }
    if (upid.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  SetStoreOption(config_, "verify-new", "");
  ASSERT_FALSE(upid.empty()) << "no verify task was started for the new snapshot";
  json::object status = WaitTask(*rest, upid);
  EXPECT_EQ(status["exitstatus"].as_string(), "OK");
  ReaderSessionOptions ro;
  ro.backup_type = "host";
  ro.backup_id = "vnew";
  ro.backup_time = 1700003000;
  auto reader = ReaderClient::Start(RootConnect(), ro);
  ASSERT_TRUE(reader.ok()) << reader.status().ToString();
  const json::object& unprotected = (*reader)->manifest().unprotected;
  ASSERT_TRUE(unprotected.contains("verify_state")) << json::serialize(unprotected);
  const json::object& vs = unprotected.at("verify_state").as_object();
  EXPECT_EQ(vs.at("state").as_string(), "ok");
  EXPECT_EQ(vs.at("upid").as_string(), upid);
}

}  // namespace
}  // namespace pbskit::server
