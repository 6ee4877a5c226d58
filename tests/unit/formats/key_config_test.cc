#include "pbskit/formats/key_config.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <ctime>
#include <string>
#include <vector>

#include "pbskit/formats/crypt_config.h"
#include "pbskit/formats/crypto.h"
#include "pbskit/formats/data_blob.h"
#include "pbskit/formats/hex.h"
#include "test_support.h"

namespace pbskit {
namespace {

constexpr char kFixtureKeyHex[] =
    "e113c9cd55f4e85a04b7ebecd54081cf610273d0ac9b7b9f7680c0107078642b";
constexpr char kFixtureFingerprint[] =
    "c1:5b:4a:95:d5:ba:ed:b6:4d:dd:e2:bc:f0:f5:d7:47:d4:b5:fa:a3:8b:88:9a:5e:ac:a2:ad:79:da:a2:3f:"
    "af";

KeyConfig LoadFixture(const std::string& rel) {
  auto kc = KeyConfig::Parse(test::ReadText(test::Fixture(rel)));
  EXPECT_TRUE(kc.ok()) << rel << ": " << kc.status().ToString();
  return kc.ok() ? *kc : KeyConfig{};
}

std::array<uint8_t, 32> SequenceKey() {
  std::array<uint8_t, 32> k;
  for (int i = 0; i < 32; i++) k[i] = static_cast<uint8_t>(i);
  return k;
}

TEST(KeyConfigTest, UnprotectedFixtureKey) {
  KeyConfig kc = LoadFixture("pbs-3.2.4-datastore.key.json");
  EXPECT_EQ(kc.kdf, Kdf::kNone);
  EXPECT_EQ(kc.created, "2026-11-26T02:53:17+00:00");
  EXPECT_EQ(kc.modified, "2026-11-26T02:53:17+00:00");
  ASSERT_TRUE(kc.fingerprint.has_value());
  EXPECT_EQ(*kc.fingerprint, kFixtureFingerprint);
  EXPECT_FALSE(kc.hint.has_value());
  auto key = kc.Decrypt("");
  ASSERT_TRUE(key.ok()) << key.status().ToString();
  EXPECT_EQ(ToHex(*key), kFixtureKeyHex);
  EXPECT_EQ(CryptConfig(*key).FingerprintString(), kFixtureFingerprint);
  // Written back byte for byte.
  EXPECT_EQ(kc.ToJson(), test::ReadText(test::Fixture("pbs-3.2.4-datastore.key.json")));
}

TEST(KeyConfigTest, ProtectedFixtureKeysRoundTripTheirJson) {
  for (const char* rel : {"keys/scrypt.key.json", "keys/pbkdf2.key.json"}) {
    KeyConfig kc = LoadFixture(rel);
    EXPECT_EQ(kc.ToJson(), test::ReadText(test::Fixture(rel))) << rel;
  }
}

TEST(KeyConfigTest, ScryptFixtureDecrypts) {
  KeyConfig kc = LoadFixture("keys/scrypt.key.json");
  ASSERT_EQ(kc.kdf, Kdf::kScrypt);
  EXPECT_EQ(kc.scrypt_n, 65536u);
  EXPECT_EQ(kc.scrypt_r, 8u);
  EXPECT_EQ(kc.scrypt_p, 1u);
  EXPECT_EQ(kc.salt.size(), 32u);
  EXPECT_EQ(kc.data.size(), 64u);
  auto key = kc.Decrypt("fixture-password");
  ASSERT_TRUE(key.ok()) << key.status().ToString();
  EXPECT_EQ(CryptConfig(*key).FingerprintString(), *kc.fingerprint);
  auto wrong = kc.Decrypt("wrong-password");
  ASSERT_FALSE(wrong.ok());
  EXPECT_EQ(wrong.status().code(), Code::kInvalidArgument);
  EXPECT_NE(wrong.status().message().find("wrong password?"), std::string::npos);
}

TEST(KeyConfigTest, Pbkdf2FixtureDecrypts) {
  KeyConfig kc = LoadFixture("keys/pbkdf2.key.json");
  ASSERT_EQ(kc.kdf, Kdf::kPbkdf2);
  EXPECT_EQ(kc.pbkdf2_iter, 65535u);
  auto key = kc.Decrypt("fixture-password");
  ASSERT_TRUE(key.ok()) << key.status().ToString();
  EXPECT_EQ(CryptConfig(*key).FingerprintString(),
            "b4:e3:fc:1c:f8:3c:e9:0a:ed:2d:a7:81:a4:0a:c3:df:cf:7a:d7:a2:bd:29:5e:4c:35:6a:f2:61:"
            "11:dd:2f:de");
  auto wrong = kc.Decrypt("fixture-passwore");
  EXPECT_EQ(wrong.status().code(), Code::kInvalidArgument);
  auto too_short = kc.Decrypt("abc");
  EXPECT_EQ(too_short.status().code(), Code::kInvalidArgument);
  EXPECT_NE(too_short.status().message().find("too short"), std::string::npos);
}

TEST(KeyConfigTest, HintIsShownOnWrongPassword) {
  KeyConfig kc = LoadFixture("keys/pbkdf2.key.json");
  kc.hint = "the usual one";
  auto wrong = kc.Decrypt("not-it-at-all");
  ASSERT_FALSE(wrong.ok());
  EXPECT_NE(wrong.status().message().find("password hint: the usual one"), std::string::npos);
  // A hint survives a JSON round trip, after the fingerprint.
  std::string json = kc.ToJson();
  EXPECT_NE(json.find("\",\"hint\":\"the usual one\"}"), std::string::npos) << json;
  auto back = KeyConfig::Parse(json);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->hint, kc.hint);
}

TEST(KeyConfigTest, WrongFingerprintIsRejected) {
  KeyConfig kc = LoadFixture("pbs-3.2.4-datastore.key.json");
  kc.fingerprint = FormatFingerprint(Digest{});
  auto r = kc.Decrypt("");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
  EXPECT_NE(r.status().message().find("wrong fingerprint"), std::string::npos);
  // Without a stored fingerprint the key is accepted (PBS computes it then).
  kc.fingerprint.reset();
  EXPECT_TRUE(kc.Decrypt("").ok());
}

TEST(KeyConfigTest, CreateAllKdfs) {
  auto key = SequenceKey();
  for (Kdf kdf : {Kdf::kNone, Kdf::kScrypt, Kdf::kPbkdf2}) {
    auto kc = KeyConfig::Create(key, kdf, "a good password");
    ASSERT_TRUE(kc.ok()) << kc.status().ToString();
    EXPECT_EQ(kc->kdf, kdf);
    EXPECT_EQ(kc->created, kc->modified);
    ASSERT_TRUE(kc->fingerprint.has_value());
    EXPECT_EQ(*kc->fingerprint,
              "0e:ab:d4:46:0b:6e:b9:ca:34:50:23:de:e2:b7:78:c7:90:e5:4a:16:83:b9:65:9c:0a:57:ae:19:"
              "90:90:15:9b");
    std::string json = kc->ToJson();
    auto back = KeyConfig::Parse(json);
    ASSERT_TRUE(back.ok()) << back.status().ToString() << "\n" << json;
    EXPECT_EQ(back->ToJson(), json);
    auto dec = back->Decrypt("a good password");
    ASSERT_TRUE(dec.ok()) << dec.status().ToString();
    EXPECT_EQ(*dec, key);
    if (kdf != Kdf::kNone) {
      EXPECT_EQ(kc->data.size(), 64u);
      EXPECT_EQ(kc->salt.size(), 32u);
      EXPECT_FALSE(back->Decrypt("another password").ok());
    }
  }
  EXPECT_EQ(KeyConfig::Create(key, Kdf::kPbkdf2, "1234").status().code(), Code::kInvalidArgument);
}

TEST(KeyConfigTest, CreatedJsonHasFixtureShape) {
  auto kc = KeyConfig::Create(SequenceKey(), Kdf::kPbkdf2, "password");
  ASSERT_TRUE(kc.ok());
  std::string json = kc->ToJson();
  // {"kdf":{"PBKDF2":{"iter":65535,"salt":"..."}},"created":"...","modified":"...","data":"...",
  //  "fingerprint":"..."}
  EXPECT_EQ(json.rfind("{\"kdf\":{\"PBKDF2\":{\"iter\":65535,\"salt\":\"", 0), 0u) << json;
  size_t c = json.find("\"created\":\""), m = json.find("\"modified\":\""),
         d = json.find("\"data\":\""), f = json.find("\"fingerprint\":\"");
  ASSERT_NE(c, std::string::npos);
  EXPECT_LT(c, m);
  EXPECT_LT(m, d);
  EXPECT_LT(d, f);
  EXPECT_EQ(json.find(' '), std::string::npos);
  EXPECT_EQ(json.back(), '}');
  // created: YYYY-MM-DDTHH:MM:SS+HH:MM (local time with numeric offset)
  ASSERT_EQ(kc->created.size(), 25u) << kc->created;
  EXPECT_TRUE(kc->created[19] == '+' || kc->created[19] == '-');
}

TEST(KeyConfigTest, ParseErrors) {
  EXPECT_EQ(KeyConfig::Parse("").status().code(), Code::kInvalidArgument);
  EXPECT_EQ(KeyConfig::Parse("[]").status().code(), Code::kInvalidArgument);
  EXPECT_EQ(KeyConfig::Parse(R"({"kdf":null,"created":"x","modified":"x","data":"AA=="})")
                .status()
                .code(),
            Code::kInvalidArgument);
  EXPECT_EQ(KeyConfig::Parse(R"({"kdf":{"Argon":{}},"created":"2020-06-26T15:56:05+02:00",)"
                             R"("modified":"2020-06-26T15:56:05+02:00","data":"AA=="})")
                .status()
                .code(),
            Code::kInvalidArgument);
  auto ok = KeyConfig::Parse(R"({"kdf":null,"created":"2020-06-26T13:56:05Z",)"
                             R"("modified":"2020-06-26T15:56:05+02:00","data":"AA=="})");
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  // A short raw key is rejected on use, not on parse.
  EXPECT_EQ(ok->Decrypt("").status().code(), Code::kInvalidArgument);
}

TEST(KeyConfigTest, RsaMasterKeyFixtureBlobDecrypts) {
  auto blob = DataBlob::FromRaw(test::ReadFile(
      test::Fixture("pbs-3.2.4-datastore/vm/200/2024-05-05T12:00:00Z/rsa-encrypted.key.blob")));
  ASSERT_TRUE(blob.ok()) << blob.status().ToString();
  auto payload = blob->Decode(nullptr);
  ASSERT_TRUE(payload.ok());
  EXPECT_EQ(payload->size(), 512u);
  std::string pem = test::ReadText(test::Fixture("pbs-3.2.4-datastore.master-private.pem"));
  auto kc = RsaDecryptKeyConfig(pem, "fixture-master", *payload);
  ASSERT_TRUE(kc.ok()) << kc.status().ToString();
  KeyConfig fixture = LoadFixture("pbs-3.2.4-datastore.key.json");
  EXPECT_EQ(kc->kdf, Kdf::kNone);
  EXPECT_EQ(kc->data, fixture.data);
  EXPECT_EQ(Base64Encode(kc->data), "4RPJzVX06FoEt+vs1UCBz2ECc9Csm3ufdoDAEHB4ZCs=");
  EXPECT_EQ(kc->created, fixture.created);
  auto key = kc->Decrypt("");
  ASSERT_TRUE(key.ok());
  EXPECT_EQ(ToHex(*key), kFixtureKeyHex);

  auto wrong_pw = RsaDecryptKeyConfig(pem, "not-the-password", *payload);
  EXPECT_EQ(wrong_pw.status().code(), Code::kInvalidArgument);
  auto damaged = *payload;
  damaged[100] ^= 1;
  EXPECT_FALSE(RsaDecryptKeyConfig(pem, "fixture-master", damaged).ok());
}

TEST(KeyConfigTest, RsaRoundTripWithFixtureMasterKey) {
  KeyConfig plain = LoadFixture("pbs-3.2.4-datastore.key.json");
  std::string pub = test::ReadText(test::Fixture("pbs-3.2.4-datastore.master-public.pem"));
  auto enc = RsaEncryptKeyConfig(pub, plain);
  ASSERT_TRUE(enc.ok()) << enc.status().ToString();
  EXPECT_EQ(enc->size(), 512u);
  std::string priv = test::ReadText(test::Fixture("pbs-3.2.4-datastore.master-private.pem"));
  auto back = RsaDecryptKeyConfig(priv, "fixture-master", *enc);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->ToJson(), plain.ToJson());
  EXPECT_EQ(RsaEncryptKeyConfig("not a pem", plain).status().code(), Code::kInvalidArgument);
}

TEST(KeyConfigTest, KdfNames) {
  EXPECT_STREQ(KdfName(Kdf::kScrypt), "scrypt");
  EXPECT_EQ(*ParseKdf("pbkdf2"), Kdf::kPbkdf2);
  EXPECT_EQ(*ParseKdf("none"), Kdf::kNone);
  EXPECT_FALSE(ParseKdf("argon2").ok());
}

}  // namespace
}  // namespace pbskit

namespace pbskit {
namespace {

TEST(KeyConfigTest, Rfc3339ToEpoch) {
  EXPECT_EQ(*Rfc3339ToEpoch("2026-11-26T02:53:17+00:00"), 1795661597);
  EXPECT_EQ(*Rfc3339ToEpoch("2026-11-26T02:53:17Z"), 1795661597);
  EXPECT_EQ(*Rfc3339ToEpoch("2026-11-26T04:53:17.250+02:00"), 1795661597);
  EXPECT_EQ(*Rfc3339ToEpoch("2026-11-25T21:53:17-05:00"), 1795661597);
  EXPECT_FALSE(Rfc3339ToEpoch("2026-11-26 02:53").ok());
  EXPECT_FALSE(Rfc3339ToEpoch("2026-13-26T02:53:17Z").ok());
  EXPECT_FALSE(Rfc3339ToEpoch("2026-11-26T02:53:17+0000").ok());
  auto now = Rfc3339ToEpoch(LocalTimeRfc3339());
  ASSERT_TRUE(now.ok());
  EXPECT_LE(std::llabs(*now - static_cast<int64_t>(std::time(nullptr))), 120);
}

}  // namespace
}  // namespace pbskit

namespace pbskit {
namespace {

TEST(KeyConfigTest, DescribeFixtureMasterPublicKey) {
  auto info =
      DescribeRsaPublicKey(test::ReadText(test::Fixture("pbs-3.2.4-datastore.master-public.pem")));
  ASSERT_TRUE(info.ok()) << info.status().ToString();
  EXPECT_EQ(info->length, 4096);
  EXPECT_EQ(info->exponent, "65537");
  EXPECT_EQ(info->modulus.size(), 1024u);
  EXPECT_EQ(info->modulus.rfind("C5D42CBB", 0), 0u) << info->modulus.substr(0, 16);
  EXPECT_FALSE(DescribeRsaPublicKey("garbage").ok());
}

TEST(KeyConfigTest, GeneratedMasterKeyWrapsAndUnwraps) {
  auto pair = GenerateMasterKey(3072, "master-pw");
  ASSERT_TRUE(pair.ok()) << pair.status().ToString();
  EXPECT_EQ(pair->public_pem.rfind("-----BEGIN PUBLIC KEY-----", 0), 0u);
  EXPECT_EQ(pair->private_pem.rfind("-----BEGIN ENCRYPTED PRIVATE KEY-----", 0), 0u);
  auto plain = KeyConfig::Create(SequenceKey(), Kdf::kNone, "");
  ASSERT_TRUE(plain.ok());
  auto wrapped = RsaEncryptKeyConfig(pair->public_pem, *plain);
  ASSERT_TRUE(wrapped.ok()) << wrapped.status().ToString();
  EXPECT_EQ(wrapped->size(), 384u);
  auto back = RsaDecryptKeyConfig(pair->private_pem, "master-pw", *wrapped);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->ToJson(), plain->ToJson());
  EXPECT_EQ(RsaDecryptKeyConfig(pair->private_pem, "other", *wrapped).status().code(),
            Code::kInvalidArgument);
  EXPECT_EQ(GenerateMasterKey(2048, "x").status().code(), Code::kInvalidArgument);
}

}  // namespace
}  // namespace pbskit
