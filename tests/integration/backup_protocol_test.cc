// The HTTP/2 backup and reader protocols of `pbskit serve` over loopback TLS, spoken through
// H2Connection: full fixed and dynamic sessions restored byte-identical through the reader
// protocol and verified with the datastore verifier, an incremental session that uploads only
// the changed chunk, PBS's refusals (digest, length, checksum, chunk count, oversized chunks,
// hostile names), a connection dropped mid-upload, credentials and ACLs, and garbage after the
// 101. The server runs in-process on a free port.
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <filesystem>
#include <thread>

#include "pbskit/datastore/datastore.h"
#include "pbskit/datastore/task_log.h"
#include "pbskit/datastore/verify.h"
#include "pbskit/formats/crypto.h"
#include "pbskit/formats/data_blob.h"
#include "pbskit/formats/dynamic_index.h"
#include "pbskit/formats/fixed_index.h"
#include "pbskit/formats/hex.h"
#include "pbskit/formats/manifest.h"
#include "pbskit/server/access_config.h"
#include "pbskit/server/h2_client.h"
#include "pbskit/server/http_client.h"
#include "pbskit/server/password.h"
#include "pbskit/server/serve.h"
#include "test_server.h"
#include "test_support.h"

namespace pbskit::server {
namespace {

namespace json = boost::json;
constexpr uint64_t kMiB = 1024 * 1024;

struct Chunk {
  std::string plain;
  std::string encoded;
  Digest digest;
};

Chunk MakeChunk(const std::string& plain) {
  Chunk c;
  c.plain = plain;
  auto blob = DataBlob::Encode(
      std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(plain.data()), plain.size()),
      nullptr, true);
  EXPECT_TRUE(blob.ok());
  c.encoded.assign(blob->raw().begin(), blob->raw().end());
  c.digest = Sha256(plain);
  return c;
}

std::string ChunkQuery(int64_t wid, const Chunk& c, int64_t size = -1, int64_t encoded = -1) {
  return EncodeH2Query({{"wid", std::to_string(wid)},
                        {"digest", ToHex(c.digest)},
                        {"size", std::to_string(size < 0 ? c.plain.size() : size)},
                        {"encoded-size", std::to_string(encoded < 0 ? c.encoded.size() : encoded)}});
}

std::string AppendBody(int64_t wid, const std::vector<Digest>& digests,
                       const std::vector<uint64_t>& offsets) {
  json::array d, o;
  for (const auto& x : digests) d.emplace_back(ToHex(x));
  for (auto x : offsets) o.emplace_back(x);
  return json::serialize(json::object{{"wid", wid}, {"digest-list", d}, {"offset-list", o}});
}

std::string Blob(const std::string& text) {
  auto b = DataBlob::Encode(
      std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(text.data()), text.size()),
      nullptr, true);
  return std::string(b->raw().begin(), b->raw().end());
}

class BackupProtocolTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new test::TempDir();
    std::string config = *dir_ / "etc";
    ServeConfig cfg = test::LoopbackServeConfig(*dir_);
    auto s = Serve::Start(cfg);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    serve_ = s->release();
    ASSERT_TRUE(serve_->default_setup().has_value());
    secret_ = serve_->default_setup()->secret;

    // A token without any ACL.
    test::AddUser(config, "alice@pbs");
    test::AddToken(config, "alice@pbs!noacl", "noacl-secret");

    auto store = DataStore::Open(*dir_ / "store1", "store1");
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    store_ = new std::shared_ptr<DataStore>(*store);
  }
  static void TearDownTestSuite() {
    delete store_;
    delete serve_;
    delete dir_;
  }

  H2ClientOptions Options(const std::string& auth = "") const {
    H2ClientOptions o;
    o.port = serve_->port();
    o.fingerprint = serve_->fingerprint();
    o.authorization = auth.empty() ? "PBSAPIToken root@pam!pbskit:" + secret_ : auth;
    o.timeout_seconds = 60;
    return o;
  }
  static std::string BackupPath(const std::string& id, int64_t time,
                                const std::string& extra = "") {
    return "//api2/json/backup?" +
           EncodeH2Query({{"store", "store1"}, {"backup-type", "host"}, {"backup-id", id},
                          {"backup-time", std::to_string(time)}, {"debug", "false"},
                          {"benchmark", "false"}}) +
           extra;
  }
  static std::string ReaderPath(const std::string& id, int64_t time) {
    return "/api2/json/reader?" +
           EncodeH2Query({{"store", "store1"}, {"backup-type", "host"}, {"backup-id", id},
                          {"backup-time", std::to_string(time)}});
  }
  std::unique_ptr<H2Connection> Backup(const std::string& id, int64_t time) {
    auto c = H2Connection::Upgrade(Options(), BackupPath(id, time), kBackupProtocolId);
    EXPECT_TRUE(c.ok()) << c.status().ToString();
    return c.ok() ? std::move(c).value() : nullptr;
  }
  std::unique_ptr<H2Connection> Reader(const std::string& id, int64_t time) {
    auto c = H2Connection::Upgrade(Options(), ReaderPath(id, time), kReaderProtocolId);
    EXPECT_TRUE(c.ok()) << c.status().ToString();
    return c.ok() ? std::move(c).value() : nullptr;
  }
  // Sends a request and expects `status`; returns the body.
  static std::string Expect(H2Connection& c, int status, const std::string& method,
                            const std::string& path, const std::string& query = "",
                            std::string body = "", const std::string& ct = "") {
    std::string type = ct;
    if (type.empty()) {
      type = body.empty() ? "application/x-www-form-urlencoded" : "application/octet-stream";
    }
    auto r = c.Request(method, path, query, std::move(body), type);
    EXPECT_TRUE(r.ok()) << method << " " << path << ": " << r.status().ToString();
    if (!r.ok()) return "";
    EXPECT_EQ(r->status, status) << method << " " << path << "?" << query << ": " << r->body;
    return r->body;
  }
  static json::value Data(const std::string& body) { return json::parse(body).at("data"); }

  // Uploads `image` as a fixed index (4 MiB chunks), skipping chunks in `known`. Returns the
  // manifest entry.
  FileInfo UploadFixed(H2Connection& c, const std::string& name, const std::string& image,
                       const std::set<std::string>& known = {}, uint64_t* uploaded = nullptr) {
    auto wid = Data(Expect(c, 200, "POST", "/fixed_index",
                           EncodeH2Query({{"archive-name", name},
                                          {"size", std::to_string(image.size())}})))
                   .as_int64();
    std::vector<Digest> digests;
    std::vector<uint64_t> offsets;
    for (uint64_t off = 0; off < image.size(); off += 4 * kMiB) {
      Chunk ch = MakeChunk(image.substr(off, 4 * kMiB));
      if (!known.count(ToHex(ch.digest))) {
        Expect(c, 200, "POST", "/fixed_chunk", ChunkQuery(wid, ch), ch.encoded);
        if (uploaded) ++*uploaded;
      }
      digests.push_back(ch.digest);
      offsets.push_back(off);
    }
    Expect(c, 200, "PUT", "/fixed_index", "", AppendBody(wid, digests, offsets),
           "application/json");
    std::string all;
    for (const auto& d : digests) all.append(reinterpret_cast<const char*>(d.data()), 32);
    Digest csum = Sha256(all);
    Expect(c, 200, "POST", "/fixed_close",
           EncodeH2Query({{"wid", std::to_string(wid)},
                          {"chunk-count", std::to_string(digests.size())},
                          {"size", std::to_string(image.size())},
                          {"csum", ToHex(csum)}}));
    return FileInfo{name, CryptMode::kNone, image.size(), csum};
  }

  FileInfo UploadDynamic(H2Connection& c, const std::string& name,
                         const std::vector<std::string>& pieces) {
    auto wid = Data(Expect(c, 200, "POST", "/dynamic_index",
                           EncodeH2Query({{"archive-name", name}})))
                   .as_int64();
    std::vector<Digest> digests;
    std::vector<uint64_t> offsets;
    std::string table;
    uint64_t off = 0;
    for (const auto& p : pieces) {
      Chunk ch = MakeChunk(p);
      Expect(c, 200, "POST", "/dynamic_chunk", ChunkQuery(wid, ch), ch.encoded);
      digests.push_back(ch.digest);
      offsets.push_back(off);
      off += p.size();
      uint8_t le[8];
      StoreLe64(le, off);
      table.append(reinterpret_cast<const char*>(le), 8);
      table.append(reinterpret_cast<const char*>(ch.digest.data()), 32);
    }
    Expect(c, 200, "PUT", "/dynamic_index", "", AppendBody(wid, digests, offsets),
           "application/json");
    Digest csum = Sha256(table);
    Expect(c, 200, "POST", "/dynamic_close",
           EncodeH2Query({{"wid", std::to_string(wid)},
                          {"chunk-count", std::to_string(pieces.size())},
                          {"size", std::to_string(off)},
                          {"csum", ToHex(csum)}}));
    return FileInfo{name, CryptMode::kNone, off, csum};
  }

  void FinishWithManifest(H2Connection& c, const std::string& id, int64_t time,
                          std::vector<FileInfo> files) {
    std::string conf = Blob("hostname: " + id + "\n");
    Expect(c, 200, "POST", "/blob",
           EncodeH2Query({{"file-name", "host.conf.blob"},
                          {"encoded-size", std::to_string(conf.size())}}),
           conf);
    files.push_back(FileInfo{"host.conf.blob", CryptMode::kNone, conf.size(), Sha256(conf)});
    Manifest m;
    m.backup_type = "host";
    m.backup_id = id;
    m.backup_time = time;
    m.files = std::move(files);
    auto blob = m.ToBlob();
    ASSERT_TRUE(blob.ok());
    std::string raw(blob->begin(), blob->end());
    Expect(c, 200, "POST", "/blob",
           EncodeH2Query({{"file-name", "index.json.blob"},
                          {"encoded-size", std::to_string(raw.size())}}),
           raw);
    Expect(c, 200, "POST", "/finish");
  }

  // Restores a fixed/dynamic archive through the reader protocol.
  std::string Restore(H2Connection& r, const std::string& name) {
    std::string idx = Expect(r, 200, "GET", "/download", EncodeH2Query({{"file-name", name}}));
    std::vector<uint8_t> bytes(idx.begin(), idx.end());
    std::vector<Digest> digests;
    if (name.ends_with(".fidx")) {
      auto fi = FixedIndex::Parse(bytes, name);
      EXPECT_TRUE(fi.ok());
      if (!fi.ok()) return "";
      digests = fi->digests();
    } else {
      auto di = DynamicIndex::Parse(bytes, name);
      EXPECT_TRUE(di.ok());
      if (!di.ok()) return "";
      for (const auto& e : di->entries()) digests.push_back(e.digest);
    }
    std::string out;
    for (const auto& d : digests) {
      std::string raw = Expect(r, 200, "GET", "/chunk", EncodeH2Query({{"digest", ToHex(d)}}));
      auto blob = DataBlob::FromRaw(std::vector<uint8_t>(raw.begin(), raw.end()), true);
      EXPECT_TRUE(blob.ok()) << blob.status().ToString();
      if (!blob.ok()) return "";
      auto plain = blob->Decode(nullptr);
      EXPECT_TRUE(plain.ok());
      EXPECT_EQ(Sha256(*plain), d);
      out.append(plain->begin(), plain->end());
    }
    return out;
  }

  static std::vector<SnapshotInfo> Snapshots(const std::string& id) {
    auto s = (*store_)->ListSnapshots(BackupNamespace(), BackupGroup{BackupType::kHost, id});
    if (!s.ok()) return {};
    return *s;
  }

  static test::TempDir* dir_;
  static Serve* serve_;
  static std::string secret_;
  static std::shared_ptr<DataStore>* store_;
};

test::TempDir* BackupProtocolTest::dir_ = nullptr;
Serve* BackupProtocolTest::serve_ = nullptr;
std::string BackupProtocolTest::secret_;
std::shared_ptr<DataStore>* BackupProtocolTest::store_ = nullptr;

TEST_F(BackupProtocolTest, FullSessionsRestoreByteIdenticalAndVerify) {
  const int64_t t1 = 1717000000;
  std::string image = test::Pattern(10 * kMiB + 12345, 1);  // 3 chunks, the last one short
  std::vector<std::string> pieces = {test::Pattern(1 * kMiB, 2), test::Pattern(300000, 3),
                                     test::Pattern(777, 4)};
  {
    auto c = Backup("full", t1);
    ASSERT_TRUE(c);
    EXPECT_EQ(Data(Expect(*c, 200, "GET", "/previous_backup_time")), json::value(nullptr));
    FileInfo fidx = UploadFixed(*c, "drive-scsi0.img.fidx", image);
    FileInfo didx = UploadDynamic(*c, "root.pxar.didx", pieces);
    FinishWithManifest(*c, "full", t1, {fidx, didx});
  }
  auto snaps = Snapshots("full");
  ASSERT_EQ(snaps.size(), 1u);
  EXPECT_TRUE(snaps[0].finished);
  auto m = (*store_)->LoadManifest(BackupNamespace(), snaps[0].dir);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  const auto& stats = m->unprotected.at("chunk_upload_stats").as_object();
  EXPECT_EQ(stats.at("count").to_number<uint64_t>(), 6u);

  // Written files are what PBS writes: the index files parse and carry the manifest csum.
  auto fi = (*store_)->OpenFixedIndex(BackupNamespace(), snaps[0].dir, "drive-scsi0.img.fidx");
  ASSERT_TRUE(fi.ok()) << fi.status().ToString();
  EXPECT_EQ(fi->size(), image.size());
  EXPECT_EQ(fi->header_csum(), m->Lookup("drive-scsi0.img.fidx")->csum);

  MemoryTaskLogger log;
  VerifyWorker verify(*store_, &log, "UPID:test", VerifyOptions{});
  EXPECT_TRUE(verify.VerifySnapshot(BackupNamespace(), snaps[0].dir)) << log.text();

  auto r = Reader("full", t1);
  ASSERT_TRUE(r);
  std::string manifest = Expect(*r, 200, "GET", "/download",
                                EncodeH2Query({{"file-name", "index.json.blob"}}));
  EXPECT_FALSE(manifest.empty());
  EXPECT_TRUE(Restore(*r, "drive-scsi0.img.fidx") == image);
  EXPECT_TRUE(Restore(*r, "root.pxar.didx") == pieces[0] + pieces[1] + pieces[2]);
  EXPECT_EQ(Expect(*r, 200, "GET", "/speedtest").size(), kMiB);
  Expect(*r, 404, "GET", "/download", EncodeH2Query({{"file-name", "missing.blob"}}));
}

TEST_F(BackupProtocolTest, IncrementalSessionUploadsOnlyChangedChunks) {
  const int64_t t1 = 1717100000, t2 = t1 + 3600;
  std::string image = test::Pattern(12 * kMiB, 7);
  uint64_t uploaded = 0;
  {
    auto c = Backup("incr", t1);
    ASSERT_TRUE(c);
    FileInfo f = UploadFixed(*c, "disk.img.fidx", image, {}, &uploaded);
    FinishWithManifest(*c, "incr", t1, {f});
  }
  EXPECT_EQ(uploaded, 3u);
  image[5 * kMiB] ^= 0x5a;  // change the second chunk only
  uploaded = 0;
  {
    auto c = Backup("incr", t2);
    ASSERT_TRUE(c);
    EXPECT_EQ(Data(Expect(*c, 200, "GET", "/previous_backup_time")).as_int64(), t1);
    // Not yet registered: referencing an old chunk fails.
    Chunk first = MakeChunk(image.substr(0, 4 * kMiB));
    auto wid = Data(Expect(*c, 200, "POST", "/fixed_index",
                           EncodeH2Query({{"archive-name", "other.img.fidx"},
                                          {"size", std::to_string(4 * kMiB)}})))
                   .as_int64();
    std::string body = Expect(*c, 400, "PUT", "/fixed_index", "",
                              AppendBody(wid, {first.digest}, {0}), "application/json");
    EXPECT_EQ(body, "no such chunk " + ToHex(first.digest));
    // Registering the previous index makes its chunks known.
    std::string old = Expect(*c, 200, "GET", "/previous",
                             EncodeH2Query({{"archive-name", "disk.img.fidx"}}));
    auto oi = FixedIndex::Parse(std::vector<uint8_t>(old.begin(), old.end()), "disk.img.fidx");
    ASSERT_TRUE(oi.ok());
    std::set<std::string> known;
    for (const auto& d : oi->digests()) known.insert(ToHex(d));
    Expect(*c, 200, "PUT", "/fixed_index", "", AppendBody(wid, {first.digest}, {0}),
           "application/json");
    Expect(*c, 200, "POST", "/fixed_close",
           EncodeH2Query({{"wid", std::to_string(wid)}, {"chunk-count", "1"},
                          {"size", std::to_string(4 * kMiB)},
                          {"csum", ToHex(Sha256(std::string(
                                       reinterpret_cast<const char*>(first.digest.data()), 32)))}}));
    FileInfo f = UploadFixed(*c, "disk.img.fidx", image, known, &uploaded);
    FinishWithManifest(*c, "incr", t2,
                       {f, FileInfo{"other.img.fidx", CryptMode::kNone, 4 * kMiB,
                                    Sha256(std::string(
                                        reinterpret_cast<const char*>(first.digest.data()), 32))}});
  }
  EXPECT_EQ(uploaded, 1u);
  auto r = Reader("incr", t2);
  ASSERT_TRUE(r);
  EXPECT_TRUE(Restore(*r, "disk.img.fidx") == image);
  // A backup time not newer than the last one is refused at the upgrade.
  UpgradeRefusal refusal;
  auto old = H2Connection::Upgrade(Options(), BackupPath("incr", t1), kBackupProtocolId, &refusal);
  ASSERT_FALSE(old.ok());
  EXPECT_EQ(refusal.status, 400);
  EXPECT_EQ(refusal.body, "backup timestamp is older than last backup.");
}

TEST_F(BackupProtocolTest, BadUploadsAreRefusedWithPbsMessages) {
  const int64_t t = 1717200000;
  auto c = Backup("bad", t);
  ASSERT_TRUE(c);
  EXPECT_EQ(Expect(*c, 400, "POST", "/finish"),
            "backup does not contain valid files (file count == 0)");
  auto wid = Data(Expect(*c, 200, "POST", "/dynamic_index",
                         EncodeH2Query({{"archive-name", "a.pxar.didx"}})))
                 .as_int64();
  Chunk a = MakeChunk(test::Pattern(100000, 11));
  Chunk b = MakeChunk(test::Pattern(100000, 12));
  // Wrong digest, wrong decoded size, body longer/shorter than announced.
  Chunk wrong = a;
  wrong.digest = b.digest;
  EXPECT_EQ(Expect(*c, 400, "POST", "/dynamic_chunk", ChunkQuery(wid, wrong), a.encoded),
            "detected chunk with wrong digest.");
  EXPECT_EQ(Expect(*c, 400, "POST", "/dynamic_chunk", ChunkQuery(wid, a, 99999), a.encoded),
            "detected chunk with wrong length (99999 != 100000)");
  EXPECT_EQ(Expect(*c, 400, "POST", "/dynamic_chunk",
                   ChunkQuery(wid, a, -1, static_cast<int64_t>(a.encoded.size()) - 1), a.encoded),
            "uploaded chunk is larger than announced.");
  EXPECT_EQ(Expect(*c, 400, "POST", "/dynamic_chunk",
                   ChunkQuery(wid, a, -1, static_cast<int64_t>(a.encoded.size()) + 1), a.encoded),
            "uploaded chunk has unexpected size.");
  // Oversized: the schema caps encoded-size at 16 MiB + 44; a bigger body never gets stored.
  std::string big = Expect(*c, 400, "POST", "/dynamic_chunk",
                           ChunkQuery(wid, a, -1, 16 * kMiB + 45), a.encoded);
  EXPECT_NE(big.find("parameter verification failed - 'encoded-size'"), std::string::npos) << big;
  std::string huge(16 * kMiB + 100, 'x');
  auto r = c->Request("POST", "/dynamic_chunk", ChunkQuery(wid, a, -1, 16 * kMiB + 44), huge,
                      "application/octet-stream");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->status, 413) << r->body;
  // The session is still usable.
  Expect(*c, 200, "POST", "/dynamic_chunk", ChunkQuery(wid, a), a.encoded);
  Expect(*c, 200, "POST", "/dynamic_chunk", ChunkQuery(wid, b), b.encoded);
  EXPECT_EQ(Expect(*c, 400, "PUT", "/dynamic_index", "", AppendBody(wid, {a.digest}, {5}),
                   "application/json"),
            "dynamic writer 'a.pxar.didx' append chunk failed - got strange chunk offset (0 != 5)");
  Expect(*c, 200, "PUT", "/dynamic_index", "", AppendBody(wid, {a.digest, b.digest}, {0, 100000}),
         "application/json");
  EXPECT_EQ(Expect(*c, 400, "POST", "/finish"), "found open index writer - unable to finish backup");
  EXPECT_EQ(Expect(*c, 400, "POST", "/dynamic_close",
                   EncodeH2Query({{"wid", std::to_string(wid)}, {"chunk-count", "3"},
                                  {"size", "200000"}, {"csum", std::string(64, '0')}})),
            "dynamic writer 'a.pxar.didx' close failed - unexpected chunk count (2 != 3)");
  EXPECT_EQ(Expect(*c, 400, "POST", "/dynamic_close",
                   EncodeH2Query({{"wid", std::to_string(wid)}, {"chunk-count", "2"},
                                  {"size", "200000"}, {"csum", std::string(64, '0')}})),
            "dynamic writer 'a.pxar.didx' close failed - got unexpected checksum");
  // Fixed writer: wrong chunk count.
  auto fwid = Data(Expect(*c, 200, "POST", "/fixed_index",
                          EncodeH2Query({{"archive-name", "d.img.fidx"}, {"size", "100000"}})))
                  .as_int64();
  Expect(*c, 200, "POST", "/fixed_chunk", ChunkQuery(fwid, a), a.encoded);
  Expect(*c, 200, "PUT", "/fixed_index", "", AppendBody(fwid, {a.digest}, {0}),
         "application/json");
  EXPECT_EQ(Expect(*c, 400, "POST", "/fixed_close",
                   EncodeH2Query({{"wid", std::to_string(fwid)}, {"chunk-count", "2"},
                                  {"size", "100000"}, {"csum", std::string(64, '0')}})),
            "fixed writer 'd.img.fidx' close failed - received wrong number of chunk (1 != 2)");
  // Hostile archive names.
  for (const char* name : {"..", "../x.blob", "a/b.blob", ".hidden.blob"}) {
    std::string body = Expect(*c, 400, "POST", "/blob",
                              EncodeH2Query({{"file-name", name}, {"encoded-size", "20"}}),
                              std::string(20, 'x'));
    EXPECT_NE(body.find("parameter verification failed - 'file-name'"), std::string::npos) << name;
  }
  Expect(*c, 400, "POST", "/blob", "file-name=a%00b.blob&encoded-size=20", std::string(20, 'x'));
  EXPECT_EQ(Expect(*c, 400, "POST", "/blob",
                   EncodeH2Query({{"file-name", "x.didx"}, {"encoded-size", "20"}}),
                   std::string(20, 'x')),
            "wrong blob file extension: 'x.didx'");
  // Writers whose close failed stay registered, as in PBS.
  EXPECT_EQ(Expect(*c, 400, "POST", "/finish"), "found open index writer - unable to finish backup");
  EXPECT_EQ(Expect(*c, 400, "POST", "/dynamic_close",
                   EncodeH2Query({{"wid", std::to_string(wid)}, {"chunk-count", "2"},
                                  {"size", "200000"}, {"csum", std::string(64, '0')}})),
            "dynamic writer 'a.pxar.didx' close failed - already closed");
  Expect(*c, 404, "GET", "/nonexistent");
  c.reset();  // never finished: the snapshot goes away
  for (int i = 0; i < 200 && !Snapshots("bad").empty(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_TRUE(Snapshots("bad").empty());
}

TEST_F(BackupProtocolTest, HostileUpgradeParametersAreRefused) {
  for (const char* id : {"..", "a/b", "a%00b", ".x"}) {
    std::string path = "/api2/json/backup?store=store1&backup-type=host&backup-id=" +
                       std::string(id) + "&backup-time=1717300000";
    UpgradeRefusal refusal;
    auto c = H2Connection::Upgrade(Options(), path, kBackupProtocolId, &refusal);
    ASSERT_FALSE(c.ok()) << id;
    EXPECT_EQ(refusal.status, 400) << id << ": " << refusal.body;
  }
  UpgradeRefusal refusal;
  auto c = H2Connection::Upgrade(Options(), BackupPath("x", 1717300000), "h2c", &refusal);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(refusal.status, 400);
  EXPECT_EQ(refusal.body, "invalid protocol name");
  c = H2Connection::Upgrade(Options(), BackupPath("x", 1717300000, "&ns=nope"), kBackupProtocolId,
                            &refusal);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(refusal.status, 404);
  EXPECT_EQ(refusal.body, "namespace not found");
  EXPECT_FALSE(std::filesystem::exists(*dir_ / "store1/host/x"));
}

TEST_F(BackupProtocolTest, DroppedConnectionLeavesNothing) {
  const int64_t t = 1717400000;
  auto before = (*store_)->ListGroups(BackupNamespace());
  ASSERT_TRUE(before.ok());
  auto c = Backup("dropped", t);
  ASSERT_TRUE(c);
  ASSERT_TRUE(std::filesystem::exists(*dir_ / "store1/host/dropped"));
  auto wid = Data(Expect(*c, 200, "POST", "/fixed_index",
                         EncodeH2Query({{"archive-name", "d.img.fidx"},
                                        {"size", std::to_string(8 * kMiB)}})))
                 .as_int64();
  Chunk a = MakeChunk(test::Pattern(4 * kMiB, 21));
  Expect(*c, 200, "POST", "/fixed_chunk", ChunkQuery(wid, a), a.encoded);
  // Start a second upload and vanish while it is in flight.
  Chunk b = MakeChunk(test::Pattern(4 * kMiB, 22));
  auto pending = c->Submit("POST", "/fixed_chunk", ChunkQuery(wid, b), b.encoded,
                           "application/octet-stream");
  c->Abort();
  (void)pending.get();
  bool gone = false;
  for (int i = 0; i < 200 && !gone; ++i) {
    gone = !std::filesystem::exists(*dir_ / "store1/host/dropped");
    if (!gone) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_TRUE(gone) << "snapshot and group of the dropped session were not removed";
  auto after = (*store_)->ListGroups(BackupNamespace());
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after->size(), before->size());
  // The group is free again: a new session can start at once.
  auto again = Backup("dropped", t);
  ASSERT_TRUE(again);
}

TEST_F(BackupProtocolTest, CredentialsAndAcls) {
  UpgradeRefusal refusal;
  auto o = Options();
  o.authorization = "";
  auto c = H2Connection::Upgrade(o, BackupPath("acl", 1717500000), kBackupProtocolId, &refusal);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(refusal.status, 401);
  EXPECT_EQ(refusal.body, "authentication failed");
  c = H2Connection::Upgrade(Options("PBSAPIToken root@pam!pbskit:wrong"),
                            BackupPath("acl", 1717500000), kBackupProtocolId, &refusal);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(refusal.status, 401);
  c = H2Connection::Upgrade(Options("PBSAPIToken=alice@pbs!noacl:noacl-secret"),
                            BackupPath("acl", 1717500000), kBackupProtocolId, &refusal);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(refusal.status, 403);
  EXPECT_EQ(refusal.body, "missing permissions 'Datastore.Backup' on '/datastore/store1'");
  c = H2Connection::Upgrade(Options("PBSAPIToken=alice@pbs!noacl:noacl-secret"),
                            ReaderPath("acl", 1717500000), kReaderProtocolId, &refusal);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(refusal.status, 400);
  EXPECT_EQ(refusal.body, "no permissions on /datastore/store1");
  EXPECT_FALSE(std::filesystem::exists(*dir_ / "store1/host/acl"));
  // Reader: only chunks of downloaded indexes may be fetched; missing snapshots are refused.
  c = H2Connection::Upgrade(Options(), ReaderPath("acl", 1717500000), kReaderProtocolId, &refusal);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(refusal.status, 400);
}

TEST_F(BackupProtocolTest, ReaderRefusesChunksNotRegistered) {
  const int64_t t = 1717600000;
  Chunk a = MakeChunk(test::Pattern(70000, 31));
  {
    auto c = Backup("reader", t);
    ASSERT_TRUE(c);
    FileInfo f = UploadDynamic(*c, "r.pxar.didx", {a.plain});
    FinishWithManifest(*c, "reader", t, {f});
  }
  auto r = Reader("reader", t);
  ASSERT_TRUE(r);
  EXPECT_EQ(Expect(*r, 401, "GET", "/chunk", EncodeH2Query({{"digest", ToHex(a.digest)}})),
            "download chunk " + ToHex(a.digest) + " not allowed");
  Expect(*r, 200, "GET", "/download", EncodeH2Query({{"file-name", "r.pxar.didx"}}));
  EXPECT_TRUE(Expect(*r, 200, "GET", "/chunk", EncodeH2Query({{"digest", ToHex(a.digest)}})) ==
              a.encoded);
}

TEST_F(BackupProtocolTest, GarbageAfterUpgradeClosesOnlyThatConnection) {
  const int64_t t = 1717700000;
  auto got = H2Connection::UpgradeAndSendRaw(Options(), BackupPath("garbage", t),
                                             kBackupProtocolId,
                                             "GET / HTTP/1.1\r\n\r\nthis is not HTTP/2 at all", 10);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  // The server answered with its SETTINGS and a GOAWAY at most, then closed; the snapshot of
  // the broken session is gone and the server still serves.
  bool gone = false;
  for (int i = 0; i < 200 && !gone; ++i) {
    gone = !std::filesystem::exists(*dir_ / "store1/host/garbage");
    if (!gone) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_TRUE(gone);
  auto c = Backup("garbage", t);
  ASSERT_TRUE(c);
  EXPECT_EQ(Data(Expect(*c, 200, "GET", "/previous_backup_time")), json::value(nullptr));
  HttpClientOptions ho;
  ho.port = serve_->port();
  ho.fingerprint = serve_->fingerprint();
  auto hc = HttpClient::Connect(ho);
  ASSERT_TRUE(hc.ok());
  (*hc)->UseToken("root@pam!pbskit", secret_);
  EXPECT_TRUE((*hc)->Call("GET", "/version").ok());
}

}  // namespace
}  // namespace pbskit::server
