#include "pbskit/formats/manifest.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "pbskit/formats/crypt_config.h"
#include "pbskit/formats/crypto.h"
#include "pbskit/formats/data_blob.h"
#include "test_support.h"

namespace pbskit {
namespace {

std::array<uint8_t, 32> IdKeyOf(std::span<const uint8_t> key) {
  const std::string salt = "_id_key";
  auto v = Pbkdf2Sha256(
      key, std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(salt.data()), salt.size()), 10,
      32);
  std::array<uint8_t, 32> out;
  std::copy(v.begin(), v.end(), out.begin());
  return out;
}

// The fixture datastore's key (pbs-3.2.4-datastore.key.json, kdf none).
const char kFixtureKeyHex[] = "e113c9cd55f4e85a04b7ebecd54081cf610273d0ac9b7b9f7680c0107078642b";
const char kFixtureFingerprint[] =
    "c1:5b:4a:95:d5:ba:ed:b6:4d:dd:e2:bc:f0:f5:d7:47:d4:b5:fa:a3:8b:88:9a:5e:ac:a2:ad:79:da:a2:3f:"
    "af";

std::string DecodedManifest(const std::string& snapshot) {
  const std::string rel = "pbs-3.2.4-datastore/" + snapshot + "/index.json.blob";
  auto blob = DataBlob::FromRaw(test::ReadFile(test::Fixture(rel)));
  EXPECT_TRUE(blob.ok()) << blob.status().ToString();
  auto data = blob->Decode(nullptr);
  EXPECT_TRUE(data.ok()) << data.status().ToString();
  return std::string(data->begin(), data->end());
}

TEST(Manifest, CryptModesAndArchiveTypes) {
  EXPECT_STREQ(CryptModeName(CryptMode::kNone), "none");
  EXPECT_STREQ(CryptModeName(CryptMode::kEncrypt), "encrypt");
  EXPECT_STREQ(CryptModeName(CryptMode::kSignOnly), "sign-only");
  EXPECT_EQ(ParseCryptMode("sign-only").value(), CryptMode::kSignOnly);
  EXPECT_EQ(ParseCryptMode("encrypt").value(), CryptMode::kEncrypt);
  EXPECT_EQ(ParseCryptMode("Encrypt").status().code(), Code::kInvalidArgument);
  EXPECT_EQ(ArchiveTypeOf("drive-scsi0.img.fidx").value(), ArchiveType::kFixedIndex);
  EXPECT_EQ(ArchiveTypeOf("root.pxar.didx").value(), ArchiveType::kDynamicIndex);
  EXPECT_EQ(ArchiveTypeOf("index.json.blob").value(), ArchiveType::kBlob);
  EXPECT_EQ(ArchiveTypeOf("root.pxar").status().code(), Code::kInvalidArgument);
  EXPECT_EQ(ArchiveTypeOf("fidx").status().code(), Code::kInvalidArgument);
  EXPECT_EQ(ArchiveTypeOf("a.fidx.tmp").status().code(), Code::kInvalidArgument);
}

TEST(Manifest, SignatureVector) {  // FORMATS.md §12.4 (manifest.rs test_manifest_signature)
  const std::string pw = "test";
  auto key =
      Scrypt(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(pw.data()), pw.size()), {},
             65536, 8, 1, 32);
  ASSERT_TRUE(key.ok()) << key.status().ToString();
  EXPECT_EQ(ToHex(*key), "28cdb1a3bef39396c3860e00d448fe7a0efd8244486ab6feb30457681d31597e");
  const auto id_key = IdKeyOf(*key);

  Manifest m;
  m.backup_type = "host";
  m.backup_id = "elsa";
  m.backup_time = 1593179765;
  Digest ones, twos;
  ones.fill(1);
  twos.fill(2);
  m.files.push_back({"test1.img.fidx", CryptMode::kEncrypt, 200, ones});
  m.files.push_back({"abc.blob", CryptMode::kNone, 200, twos});
  m.unprotected["note"] = "This is not protected by the signature.";
  EXPECT_EQ(m.SignedCanonicalJson(),
            "{\"backup-id\":\"elsa\",\"backup-time\":1593179765,\"backup-type\":\"host\",\"files\":"
            "[{\"crypt-mode\":\"encrypt\",\"csum\":"
            "\"0101010101010101010101010101010101010101010101010101010101010101\",\"filename\":"
            "\"test1.img.fidx\",\"size\":200},{\"crypt-mode\":\"none\",\"csum\":"
            "\"0202020202020202020202020202020202020202020202020202020202020202\",\"filename\":"
            "\"abc.blob\",\"size\":200}]}");
  EXPECT_EQ(ToHex(m.ComputeSignature(id_key)),
            "d7b446fb7db081662081d4b40fedd858a1d6307a5aff4ecff7d5bf4fd35679e9");

  std::array<uint8_t, 32> k;
  std::copy(key->begin(), key->end(), k.begin());
  CryptConfig cc(k);
  EXPECT_EQ(ToHex(cc.Fingerprint()),
            "12b9b774bb3d89952b97cbc282f00c142b83ba7f96626aa15a449a63e891fe25");

  // Signing as the client does: signature plus key-fingerprint, then the text round-trips.
  m.Sign(id_key, cc.FingerprintString());
  EXPECT_EQ(*m.signature, "d7b446fb7db081662081d4b40fedd858a1d6307a5aff4ecff7d5bf4fd35679e9");
  auto again = Manifest::Parse(m.ToJson(), "elsa");
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_TRUE(again->VerifySignature(id_key, cc.FingerprintString()).ok());
  EXPECT_EQ(again->ToJson(), m.ToJson());
  EXPECT_EQ(
      m.ToJson(),
      "{\n"
      "  \"backup-id\": \"elsa\",\n"
      "  \"backup-time\": 1593179765,\n"
      "  \"backup-type\": \"host\",\n"
      "  \"files\": [\n"
      "    {\n"
      "      \"crypt-mode\": \"encrypt\",\n"
      "      \"csum\": \"0101010101010101010101010101010101010101010101010101010101010101\",\n"
      "      \"filename\": \"test1.img.fidx\",\n"
      "      \"size\": 200\n"
      "    },\n"
      "    {\n"
      "      \"crypt-mode\": \"none\",\n"
      "      \"csum\": \"0202020202020202020202020202020202020202020202020202020202020202\",\n"
      "      \"filename\": \"abc.blob\",\n"
      "      \"size\": 200\n"
      "    }\n"
      "  ],\n"
      "  \"signature\": \"d7b446fb7db081662081d4b40fedd858a1d6307a5aff4ecff7d5bf4fd35679e9\",\n"
      "  \"unprotected\": {\n"
      "    \"key-fingerprint\": \"" +
          cc.FingerprintString() +
          "\",\n"
          "    \"note\": \"This is not protected by the signature.\"\n"
          "  }\n"
          "}");
}

struct FixtureManifest {
  std::string snapshot;
  std::string type, id;
  int64_t time;
  size_t files;
  bool is_signed;
};

const std::vector<FixtureManifest>& Fixtures() {
  static const std::vector<FixtureManifest> v = {
      {"ct/101/2024-05-01T11:00:00Z", "ct", "101", 1714561200, 3, false},
      {"vm/100/2024-05-01T10:00:00Z", "vm", "100", 1714557600, 2, false},
      {"vm/100/2024-05-02T10:00:00Z", "vm", "100", 1714644000, 2, false},
      {"vm/200/2024-05-05T12:00:00Z", "vm", "200", 1714910400, 3, true},
      {"vm/201/2024-05-05T13:00:00Z", "vm", "201", 1714914000, 2, true},
      {"ns/a/host/web/2024-05-03T08:00:00Z", "host", "web", 1714723200, 2, false},
      {"ns/a/ns/b/host/web/2024-05-04T08:00:00Z", "host", "web", 1714809600, 2, false},
  };
  return v;
}

TEST(Manifest, FixtureManifestsRoundTripByteExact) {
  for (const FixtureManifest& f : Fixtures()) {
    SCOPED_TRACE(f.snapshot);
    const std::string text = DecodedManifest(f.snapshot);
    ASSERT_FALSE(text.empty());
    EXPECT_NE(text.back(), '\n');
    auto m = Manifest::Parse(text, f.snapshot);
    ASSERT_TRUE(m.ok()) << m.status().ToString();
    EXPECT_EQ(m->backup_type, f.type);
    EXPECT_EQ(m->backup_id, f.id);
    EXPECT_EQ(m->backup_time, f.time);
    EXPECT_EQ(m->files.size(), f.files);
    EXPECT_EQ(m->signature.has_value(), f.is_signed);
    EXPECT_EQ(m->KeyFingerprint().has_value(), f.is_signed);
    EXPECT_TRUE(m->unknown.empty());
    EXPECT_TRUE(m->unprotected.contains("chunk_upload_stats"));
    EXPECT_EQ(m->ToJson(), text);
  }
}

TEST(Manifest, BlobRoundTrip) {
  for (const FixtureManifest& f : Fixtures()) {
    SCOPED_TRACE(f.snapshot);
    const std::string rel = "pbs-3.2.4-datastore/" + f.snapshot + "/index.json.blob";
    const auto raw = test::ReadFile(test::Fixture(rel));
    auto m = Manifest::FromBlob(raw, rel);
    ASSERT_TRUE(m.ok()) << m.status().ToString();
    EXPECT_EQ(m->backup_time, f.time);
    auto blob = m->ToBlob();
    ASSERT_TRUE(blob.ok()) << blob.status().ToString();
    auto decoded = DataBlob::FromRaw(*blob);
    ASSERT_TRUE(decoded.ok());
    EXPECT_TRUE(decoded->is_compressed());
    EXPECT_FALSE(decoded->is_encrypted());
    auto payload = decoded->Decode(nullptr).value();
    EXPECT_EQ(std::string(payload.begin(), payload.end()), DecodedManifest(f.snapshot));

    auto damaged = raw;
    damaged[damaged.size() / 2] ^= 0x10;
    auto bad = Manifest::FromBlob(damaged, rel);
    ASSERT_FALSE(bad.ok());
    EXPECT_EQ(bad.status().code(), Code::kCorruption) << bad.status().ToString();
    EXPECT_NE(bad.status().message().find(rel), std::string::npos);
  }
  // An encrypted blob is never a manifest.
  std::array<uint8_t, 32> key{};
  CryptConfig cc(key);
  const std::string text = DecodedManifest("vm/100/2024-05-01T10:00:00Z");
  auto enc = DataBlob::Encode(
      std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(text.data()), text.size()), &cc,
      true);
  ASSERT_TRUE(enc.ok());
  EXPECT_EQ(Manifest::FromBlob(enc->raw(), "enc").status().code(), Code::kCorruption);
}

TEST(Manifest, FixtureDetails) {
  auto m = Manifest::Parse(DecodedManifest("vm/100/2024-05-01T10:00:00Z"), "vm/100").value();
  const FileInfo* conf = m.Lookup("qemu-server.conf.blob");
  ASSERT_NE(conf, nullptr);
  EXPECT_EQ(conf->size, 197u);
  EXPECT_EQ(ToHex(conf->csum), "b57a51ae9d8fdb2cf4b4d99f7a8ee3bb5647e4b2893f4c611ab402700c81cc1a");
  EXPECT_EQ(conf->crypt_mode, CryptMode::kNone);
  EXPECT_EQ(m.Lookup("missing.blob"), nullptr);
  EXPECT_EQ(m.unprotected.at("notes").as_string(),
            "first backup of vm 100\nsecond notes line (ünïcödé)");
  EXPECT_EQ(m.unprotected.at("verify_state").at("upid").as_string(),
            "UPID:pbs:000066E1:0004C5E5:00000000:6B079F27:verify_snapshot:store1\\x3a-vm-100-"
            "663212A0:root@pam:");
  EXPECT_EQ(m.unprotected.at("chunk_upload_stats").at("compressed_size").as_int64(), 351352);

  auto enc = Manifest::Parse(DecodedManifest("vm/200/2024-05-05T12:00:00Z"), "vm/200").value();
  for (const FileInfo& f : enc.files) EXPECT_EQ(f.crypt_mode, CryptMode::kEncrypt) << f.filename;
  EXPECT_EQ(*enc.KeyFingerprint(), kFixtureFingerprint);
  auto so = Manifest::Parse(DecodedManifest("vm/201/2024-05-05T13:00:00Z"), "vm/201").value();
  for (const FileInfo& f : so.files) EXPECT_EQ(f.crypt_mode, CryptMode::kSignOnly) << f.filename;
}

TEST(Manifest, FixtureSignaturesVerify) {
  const auto key = FromHex(kFixtureKeyHex).value();
  const auto id_key = IdKeyOf(key);
  std::array<uint8_t, 32> k;
  std::copy(key.begin(), key.end(), k.begin());
  EXPECT_EQ(CryptConfig(k).FingerprintString(), kFixtureFingerprint);

  for (const std::string snap : {"vm/200/2024-05-05T12:00:00Z", "vm/201/2024-05-05T13:00:00Z"}) {
    SCOPED_TRACE(snap);
    auto m = Manifest::Parse(DecodedManifest(snap), snap).value();
    EXPECT_EQ(ToHex(m.ComputeSignature(id_key)), *m.signature);
    Status ok = m.VerifySignature(id_key, kFixtureFingerprint);
    EXPECT_TRUE(ok.ok()) << ok.ToString();
    // Fingerprints compare by value (case and colons do not matter).
    std::string upper = kFixtureFingerprint;
    for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    EXPECT_TRUE(m.VerifySignature(id_key, upper).ok());

    // Any change to `files` breaks the signature.
    auto size_changed = m;
    size_changed.files[0].size += 1;
    EXPECT_EQ(size_changed.VerifySignature(id_key, kFixtureFingerprint).code(), Code::kCorruption);
    auto csum_changed = m;
    csum_changed.files[1].csum[31] ^= 1;
    EXPECT_EQ(csum_changed.VerifySignature(id_key, kFixtureFingerprint).code(), Code::kCorruption);
    auto mode_changed = m;
    mode_changed.files[0].crypt_mode = CryptMode::kNone;
    EXPECT_EQ(mode_changed.VerifySignature(id_key, kFixtureFingerprint).code(), Code::kCorruption);
    // The same through the JSON text: one byte of a files[] csum flipped.
    std::string text = DecodedManifest(snap);
    const size_t at = text.find("\"csum\": \"") + 9;
    text[at] = text[at] == '0' ? '1' : '0';
    auto tampered = Manifest::Parse(text, snap).value();
    Status bad = tampered.VerifySignature(id_key, kFixtureFingerprint);
    EXPECT_EQ(bad.code(), Code::kCorruption);
    EXPECT_NE(bad.message().find("wrong signature"), std::string::npos);
    // unprotected is not covered.
    auto notes = m;
    notes.unprotected["notes"] = "added later";
    EXPECT_TRUE(notes.VerifySignature(id_key, kFixtureFingerprint).ok());

    // Another key: the fingerprint check fails first.
    std::array<uint8_t, 32> other{};
    CryptConfig other_cc(other);
    Status wrong = m.VerifySignature(other_cc.id_key(), other_cc.FingerprintString());
    EXPECT_FALSE(wrong.ok());
    EXPECT_NE(wrong.message().find("wrong key"), std::string::npos) << wrong.ToString();
    // Without the fingerprint only the HMAC decides.
    auto no_fp = m;
    no_fp.unprotected.erase("key-fingerprint");
    EXPECT_EQ(no_fp.VerifySignature(other_cc.id_key(), other_cc.FingerprintString()).code(),
              Code::kCorruption);
  }
  // Unsigned manifests are accepted with any key.
  auto plain = Manifest::Parse(DecodedManifest("vm/100/2024-05-02T10:00:00Z"), "vm/100").value();
  EXPECT_TRUE(plain.VerifySignature(id_key, kFixtureFingerprint).ok());
}

TEST(Manifest, DefaultsAndUnknownKeys) {
  // A pre-0.8.0 manifest: no crypt-mode, no unprotected, no signature; plus an unknown key.
  const std::string old =
      R"({"backup-type":"host","backup-id":"h","backup-time":1,"zz-extra":[1,{"b":2,"a":1}],)"
      R"("files":[{"filename":"x.blob","size":3,"csum":")" +
      std::string(64, 'A') + R"("}]})";
  auto m = Manifest::Parse(old, "old");
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_EQ(m->files[0].crypt_mode, CryptMode::kNone);
  EXPECT_TRUE(m->unprotected.empty());
  EXPECT_FALSE(m->signature);
  ASSERT_EQ(m->unknown.size(), 1u);
  EXPECT_EQ(m->ToJson(),
            "{\n"
            "  \"backup-id\": \"h\",\n"
            "  \"backup-time\": 1,\n"
            "  \"backup-type\": \"host\",\n"
            "  \"files\": [\n"
            "    {\n"
            "      \"crypt-mode\": \"none\",\n"
            "      \"csum\": \"" +
                std::string(64, 'a') +
                "\",\n"
                "      \"filename\": \"x.blob\",\n"
                "      \"size\": 3\n"
                "    }\n"
                "  ],\n"
                "  \"signature\": null,\n"
                "  \"unprotected\": {},\n"
                "  \"zz-extra\": [\n"
                "    1,\n"
                "    {\n"
                "      \"a\": 1,\n"
                "      \"b\": 2\n"
                "    }\n"
                "  ]\n"
                "}");
  // The unknown key is not part of the signed data.
  std::array<uint8_t, 32> key{};
  auto without = *m;
  without.unknown.clear();
  EXPECT_EQ(m->ComputeSignature(key), without.ComputeSignature(key));
}

TEST(Manifest, MalformedIsCorruption) {
  const std::string csum = std::string(64, '0');
  const std::string file = R"({"filename":"a.blob","size":1,"csum":")" + csum + R"("})";
  auto make = [&](const std::string& body) { return "{" + body + "}"; };
  const std::string head = R"("backup-type":"vm","backup-id":"1","backup-time":5,)";
  ASSERT_TRUE(Manifest::Parse(make(head + R"("files":[)" + file + "]"), "ok").ok());
  const std::vector<std::string> bad = {
      "",
      "not json",
      "[]",
      "{\"backup-type\":\"vm\"",
      make(R"("backup-id":"1","backup-time":5,"files":[])"),
      make(R"("backup-type":"tape","backup-id":"1","backup-time":5,"files":[])"),
      make(R"("backup-type":"vm","backup-id":1,"backup-time":5,"files":[])"),
      make(R"("backup-type":"vm","backup-id":"1","backup-time":"5","files":[])"),
      make(R"("backup-type":"vm","backup-id":"1","backup-time":1.5,"files":[])"),
      make(head + R"("files":{})"),
      make(head + R"("files":[1])"),
      make(head + R"("files":[{"filename":"a.blob","size":-1,"csum":")" + csum + R"("}])"),
      make(head + R"("files":[{"filename":"a.blob","size":1,"csum":"00"}])"),
      make(head + R"("files":[{"filename":"a.blob","size":1,"csum":")" + csum +
           R"(","crypt-mode":"secret"}])"),
      make(head + R"("files":[],"unprotected":[])"),
      make(head + R"("files":[],"signature":5)"),
  };
  for (const std::string& text : bad) {
    auto r = Manifest::Parse(text, "snap/x");
    ASSERT_FALSE(r.ok()) << text;
    EXPECT_EQ(r.status().code(), Code::kCorruption) << text;
    EXPECT_NE(r.status().message().find("snap/x"), std::string::npos) << r.status().ToString();
  }
}

}  // namespace
}  // namespace pbskit
