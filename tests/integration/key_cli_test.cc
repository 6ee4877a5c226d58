// `pbskit key` and `pbskit benchmark` as a user runs them.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <string>

#include "pbskit/formats/crypt_config.h"
#include "pbskit/formats/key_config.h"
#include "test_support.h"

namespace pbskit {
namespace {

using test::Fixture;
using test::RunCli;

const std::string kVm200 = "pbs-3.2.4-datastore/vm/200/2024-05-05T12:00:00Z";

TEST(KeyCliTest, ShowFixtureKeyAsJson) {
  auto r =
      RunCli({"key", "show", Fixture("pbs-3.2.4-datastore.key.json"), "--output-format", "json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "{\"path\":\"\\\"" + Fixture("pbs-3.2.4-datastore.key.json") +
                       "\\\"\",\"kdf\":\"none\",\"created\":1795661597,\"modified\":1795661597,"
                       "\"fingerprint\":\"c1:5b:4a:95:d5:ba:ed:b6:4d:dd:e2:bc:f0:f5:d7:47:d4:b5:"
                       "fa:a3:8b:88:9a:5e:ac:a2:ad:79:da:a2:3f:af\"}\n");
}

TEST(KeyCliTest, ShowTextNamesTheKdf) {
  auto r = RunCli({"key", "show", Fixture("keys/scrypt.key.json")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("scrypt"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("bc:b7:63:41:23:5c:0f:4d"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("fingerprint"), std::string::npos);
}

TEST(KeyCliTest, ShowMissingFile) {
  test::TempDir dir;
  auto r = RunCli({"key", "show", dir / "absent.json"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_EQ(r.err.rfind("Error: ", 0), 0u) << r.err;
  EXPECT_NE(r.err.find("absent.json"), std::string::npos);
}

TEST(KeyCliTest, CreateProtectedKeyAndRefuseOverwrite) {
  test::TempDir dir;
  const std::string path = dir / "enc.json";
  auto r =
      RunCli({"key", "create", path, "--kdf", "pbkdf2"}, {"PBS_ENCRYPTION_PASSWORD=s3cret-pass"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto kc = KeyConfig::Parse(test::ReadText(path));
  ASSERT_TRUE(kc.ok()) << kc.status().ToString();
  EXPECT_EQ(kc->kdf, Kdf::kPbkdf2);
  EXPECT_EQ(kc->ToJson(), test::ReadText(path));
  auto key = kc->Decrypt("s3cret-pass");
  ASSERT_TRUE(key.ok()) << key.status().ToString();
  EXPECT_EQ(CryptConfig(*key).FingerprintString(), *kc->fingerprint);

  std::string before = test::ReadText(path);
  auto again = RunCli({"key", "create", path, "--kdf", "none"});
  EXPECT_NE(again.exit_code, 0);
  EXPECT_NE(again.err.find("File exists"), std::string::npos) << again.err;
  EXPECT_EQ(test::ReadText(path), before);
}

TEST(KeyCliTest, CreateWithoutPasswordSourceFails) {
  test::TempDir dir;
  auto r = RunCli({"key", "create", dir / "k.json"});  // default scrypt, stdin not a tty
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("PBS_ENCRYPTION_PASSWORD"), std::string::npos) << r.err;
}

TEST(KeyCliTest, ImportWithMasterKeyFromSnapshot) {
  test::TempDir dir;
  const std::string out = dir / "imported.json";
  auto r = RunCli(
      {"key", "import-with-master-key", Fixture(kVm200 + "/rsa-encrypted.key.blob"),
       "--master-keyfile", Fixture("pbs-3.2.4-datastore.master-private.pem"), out, "--kdf", "none"},
      {"PBS_MASTER_KEY_PASSWORD=fixture-master"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto kc = KeyConfig::Parse(test::ReadText(out));
  ASSERT_TRUE(kc.ok());
  auto fixture = KeyConfig::Parse(test::ReadText(Fixture("pbs-3.2.4-datastore.key.json")));
  ASSERT_TRUE(fixture.ok());
  EXPECT_EQ(kc->data, fixture->data);
  EXPECT_EQ(kc->created, fixture->created);
  EXPECT_EQ(kc->fingerprint, fixture->fingerprint);

  // The snapshot directory works too, and a scrypt-protected result takes the new password.
  const std::string out2 = dir / "imported2.json";
  r = RunCli({"key", "import-with-master-key", Fixture(kVm200), "--master-keyfile",
              Fixture("pbs-3.2.4-datastore.master-private.pem"), out2},
             {"PBS_MASTER_KEY_PASSWORD=fixture-master", "PBS_ENCRYPTION_PASSWORD=new-password"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto kc2 = KeyConfig::Parse(test::ReadText(out2));
  ASSERT_TRUE(kc2.ok());
  EXPECT_EQ(kc2->kdf, Kdf::kScrypt);
  auto key = kc2->Decrypt("new-password");
  ASSERT_TRUE(key.ok()) << key.status().ToString();
  EXPECT_EQ(CryptConfig(*key).FingerprintString(), *fixture->fingerprint);
}

TEST(KeyCliTest, ImportWithWrongMasterPassword) {
  test::TempDir dir;
  auto r =
      RunCli({"key", "import-with-master-key", Fixture(kVm200), "--master-keyfile",
              Fixture("pbs-3.2.4-datastore.master-private.pem"), dir / "x.json", "--kdf", "none"},
             {"PBS_MASTER_KEY_PASSWORD=not-it"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("failed to read PEM-formatted private key"), std::string::npos) << r.err;
}

TEST(KeyCliTest, BenchmarkJsonHasAllRows) {
  auto r = RunCli({"benchmark", "--output-format", "json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (const char* key :
       {"\"tls\":{\"top\":1235000000.0}", "\"sha256\":{\"speed\":", "\"compress\":{\"speed\":",
        "\"decompress\":{\"speed\":", "\"aes256_gcm\":{\"speed\":", "\"verify\":{\"speed\":"}) {
    EXPECT_NE(r.out.find(key), std::string::npos) << key << " in " << r.out;
  }
  auto text = RunCli({"benchmark"});
  ASSERT_EQ(text.exit_code, 0);
  EXPECT_NE(text.out.find("not tested"), std::string::npos);
  EXPECT_NE(text.out.find("Chunk verification speed"), std::string::npos);
  EXPECT_NE(text.out.find(" MB/s ("), std::string::npos);
}

TEST(KeyCliTest, CreateMasterKeyAndShowIt) {
  test::TempDir dir;
  auto r = RunCli({"key", "create-master-key", "--output-dir", dir.path()},
                  {"PBS_MASTER_KEY_PASSWORD=master-pw"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("Generating 4096-bit RSA key.."), std::string::npos) << r.err;
  auto show =
      RunCli({"key", "show-master-pubkey", dir / "master-public.pem", "--output-format", "json"});
  ASSERT_EQ(show.exit_code, 0) << show.err;
  EXPECT_NE(show.out.find("\"exponent\":\"65537\""), std::string::npos) << show.out;
  EXPECT_NE(show.out.find("\"length\":4096"), std::string::npos) << show.out;
  // The pair wraps and unwraps a key file.
  auto plain = KeyConfig::Parse(test::ReadText(Fixture("pbs-3.2.4-datastore.key.json")));
  ASSERT_TRUE(plain.ok());
  auto wrapped = RsaEncryptKeyConfig(test::ReadText(dir / "master-public.pem"), *plain);
  ASSERT_TRUE(wrapped.ok()) << wrapped.status().ToString();
  auto back =
      RsaDecryptKeyConfig(test::ReadText(dir / "master-private.pem"), "master-pw", *wrapped);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->ToJson(), plain->ToJson());
}

}  // namespace
}  // namespace pbskit
