// pbskit user / token / acl / cert commands: the files they write are PBS's formats, byte for
// byte, and parse back.
#include <gtest/gtest.h>

#include <boost/json.hpp>

#include "pbskit/server/access_config.h"
#include "pbskit/server/certificate.h"
#include "pbskit/server/password.h"
#include "test_support.h"

namespace pbskit::server {
namespace {

TEST(AccessCli, UserTokenAclCommandsWritePbsFormats) {
  test::TempDir dir;
  std::vector<std::string> cfg = {"--config-dir", dir / "etc"};
  auto run = [&](std::vector<std::string> args) {
    args.insert(args.end(), cfg.begin(), cfg.end());
    return test::RunCli(args);
  };
  auto r = run({"user", "create", "backup@pbs", "--comment", "backup user", "--password",
                "pw-1234"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = run({"token", "create", "backup@pbs!client", "--output-format", "json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto token = boost::json::parse(r.out).as_object();
  EXPECT_EQ(token.at("tokenid").as_string(), "backup@pbs!client");
  std::string secret(token.at("value").as_string());
  EXPECT_EQ(secret.size(), 36u);
  r = run({"acl", "update", "/datastore/store1", "DatastoreBackup", "--auth-id",
           "backup@pbs!client"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = run({"acl", "update", "/datastore/store1", "DatastoreAudit", "--auth-id", "backup@pbs",
           "--propagate", "false"});
  ASSERT_EQ(r.exit_code, 0) << r.err;

  EXPECT_EQ(test::ReadText(dir / "etc/user.cfg"),
            "user: root@pam\n\tcomment Superuser\n\n"
            "user: backup@pbs\n\tcomment backup user\n\n"
            "token: backup@pbs!client\n\tenable true\n\texpire 0\n");
  EXPECT_EQ(test::ReadText(dir / "etc/acl.cfg"),
            "acl:0:/datastore/store1:backup@pbs:DatastoreAudit\n"
            "acl:1:/datastore/store1:backup@pbs!client:DatastoreBackup\n");
  auto tokens = LoadHashFile(dir / "etc/token.shadow");
  ASSERT_TRUE(tokens.ok());
  ASSERT_EQ(tokens->size(), 1u);
  EXPECT_TRUE(VerifyPassword(secret, tokens->at("backup@pbs!client")).ok());
  auto shadow = LoadHashFile(dir / "etc/shadow.json");
  ASSERT_TRUE(shadow.ok());
  EXPECT_TRUE(VerifyPassword("pw-1234", shadow->at("backup@pbs")).ok());

  r = run({"user", "list", "--output-format", "json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(boost::json::parse(r.out).as_array().size(), 2u);

  // Errors: duplicates, unknown roles, bad paths, unknown ids.
  EXPECT_NE(run({"user", "create", "backup@pbs"}).exit_code, 0);
  EXPECT_EQ(run({"acl", "update", "/datastore/store1", "Bogus", "--auth-id", "backup@pbs"})
                .exit_code, 2);
  EXPECT_EQ(run({"acl", "update", "/nope", "Admin", "--auth-id", "backup@pbs"}).exit_code, 2);
  EXPECT_EQ(run({"acl", "update", "/", "Admin", "--auth-id", "ghost@pbs"}).exit_code, 2);
  EXPECT_EQ(run({"token", "create", "ghost@pbs!t"}).exit_code, 2);

  // Deleting the user removes its tokens, secrets and ACL entries.
  r = run({"user", "delete", "backup@pbs"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(test::ReadText(dir / "etc/user.cfg"), "user: root@pam\n\tcomment Superuser\n");
  EXPECT_EQ(test::ReadText(dir / "etc/acl.cfg"), "");
  EXPECT_EQ(test::ReadText(dir / "etc/token.shadow"), "{}");
}

TEST(AccessCli, CertFingerprint) {
  test::TempDir dir;
  auto r = test::RunCli({"cert", "fingerprint", "--config-dir", dir / "etc"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("Error: certificate"), std::string::npos) << r.err;
  CertificateOptions o;
  o.rsa_bits = 2048;
  auto made = EnsureProxyCertificate(dir / "etc", o);
  ASSERT_TRUE(made.ok()) << made.status().ToString();
  EXPECT_TRUE(*made);
  EXPECT_FALSE(*EnsureProxyCertificate(dir / "etc", o));
  auto fp = CertificateFingerprint(dir / "etc/proxy.pem");
  ASSERT_TRUE(fp.ok());
  EXPECT_EQ(fp->size(), 95u);
  r = test::RunCli({"cert", "fingerprint", "--config-dir", dir / "etc"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, *fp + "\n");
}

}  // namespace
}  // namespace pbskit::server
