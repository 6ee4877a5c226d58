// user.cfg / token.shadow / shadow.json in PBS's exact formats, password hashing, tickets and
// CSRF tokens.
#include "pbskit/server/access_config.h"

#include <gtest/gtest.h>

#include "pbskit/server/password.h"
#include "pbskit/server/ticket.h"
#include "test_support.h"

namespace pbskit::server {
namespace {

TEST(UserConfig, RoundTripsPbsFormatByteForByte) {
  const std::string text =
      "user: root@pam\n"
      "\tcomment Superuser\n"
      "\temail root@localhost\n"
      "\tenable true\n"
      "\texpire 0\n"
      "\n"
      "user: backup@pbs\n"
      "\tcomment backup user\n"
      "\tenable true\n"
      "\texpire 0\n"
      "\n"
      "token: backup@pbs!client\n"
      "\tcomment client token\n"
      "\tenable true\n"
      "\texpire 0\n";
  auto cfg = UserConfig::Parse(text, "user.cfg");
  ASSERT_TRUE(cfg.ok()) << cfg.status().ToString();
  EXPECT_EQ(cfg->ToString(), text);
  EXPECT_TRUE(cfg->IsActive(*Authid::Parse("backup@pbs!client"), 1700000000));
  EXPECT_FALSE(cfg->IsActive(*Authid::Parse("backup@pbs!other"), 1700000000));
}

TEST(UserConfig, ImplicitRootAndNewEntriesAsPbsWritesThem) {
  auto cfg = UserConfig::Parse("", "user.cfg");
  ASSERT_TRUE(cfg.ok());
  UserEntry t;
  t.id = "root@pam!pbskit";
  t.is_token = true;
  t.enable = true;
  t.expire = 0;
  ASSERT_TRUE(cfg->Add(t).ok());
  EXPECT_EQ(cfg->ToString(),
            "user: root@pam\n\tcomment Superuser\n\ntoken: root@pam!pbskit\n\tenable true\n"
            "\texpire 0\n");
  UserEntry orphan;
  orphan.id = "nobody@pbs!tok";
  orphan.is_token = true;
  EXPECT_TRUE(cfg->Add(orphan).IsNotFound());
  EXPECT_EQ(cfg->Add(t).code(), Code::kAlreadyExists);
}

TEST(UserConfig, DisabledAndExpired) {
  auto cfg = UserConfig::Parse(
      "user: a@pbs\n\tenable 0\n\nuser: b@pbs\n\texpire 100\n\nuser: c@pbs\n\n"
      "token: c@pbs!t\n\tenable false\n",
      "user.cfg");
  ASSERT_TRUE(cfg.ok()) << cfg.status().ToString();
  EXPECT_FALSE(cfg->IsActive(*Authid::Parse("a@pbs"), 50));
  EXPECT_TRUE(cfg->IsActive(*Authid::Parse("b@pbs"), 50));
  EXPECT_FALSE(cfg->IsActive(*Authid::Parse("b@pbs"), 100));
  EXPECT_TRUE(cfg->IsActive(*Authid::Parse("c@pbs"), 50));
  EXPECT_FALSE(cfg->IsActive(*Authid::Parse("c@pbs!t"), 50));
}

TEST(UserConfig, RejectsUnknownPropertiesAndTypes) {
  EXPECT_FALSE(UserConfig::Parse("user: a@pbs\n\tbogus 1\n", "user.cfg").ok());
  EXPECT_FALSE(UserConfig::Parse("group: g\n\tcomment x\n", "user.cfg").ok());
  EXPECT_FALSE(UserConfig::Parse("user: a@pbs\n\tenable maybe\n", "user.cfg").ok());
  auto bad = UserConfig::Parse("user: a@pbs\n\texpire x\n", "user.cfg");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message().rfind("user.cfg:2:", 0), 0u) << bad.status().message();
}

TEST(HashFiles, SerdeJsonCompactAndPretty) {
  test::TempDir dir;
  std::map<std::string, std::string> h = {{"a@pbs!t1", "$y$x"}, {"b@pbs!t2", "$5$y"}};
  ASSERT_TRUE(SaveHashFile(dir / "token.shadow", h, false).ok());
  EXPECT_EQ(test::ReadText(dir / "token.shadow"), "{\"a@pbs!t1\":\"$y$x\",\"b@pbs!t2\":\"$5$y\"}");
  ASSERT_TRUE(SaveHashFile(dir / "shadow.json", {{"u@pbs", "$y$z"}}, true).ok());
  EXPECT_EQ(test::ReadText(dir / "shadow.json"), "{\n  \"u@pbs\": \"$y$z\"\n}");
  auto back = LoadHashFile(dir / "token.shadow");
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back, h);
  EXPECT_TRUE(LoadHashFile(dir / "missing")->empty());
  test::WriteText(dir / "broken", "{\"a\": 1");
  EXPECT_FALSE(LoadHashFile(dir / "broken").ok());
}

TEST(Password, YescryptAndLegacySha256Crypt) {
  auto hash = EncryptPassword("s3cret");
  ASSERT_TRUE(hash.ok()) << hash.status().ToString();
  EXPECT_EQ(hash->rfind("$y$", 0), 0u);
  EXPECT_TRUE(VerifyPassword("s3cret", *hash).ok());
  EXPECT_FALSE(VerifyPassword("s3creT", *hash).ok());
  // proxmox-sys's test vector for the previous sha256crypt default.
  const std::string old = "$5$bx7fjhlS8yMPM3Nc$yRgB5vyoTWeRcYn31RFTg5hAGyTInUq.l0HqLKzRuRC";
  EXPECT_TRUE(VerifyPassword("supersecretpassphrasenoonewillguess", old).ok());
  EXPECT_FALSE(VerifyPassword("nope", old).ok());
  EXPECT_EQ(GenerateTokenSecret().size(), 36u);
}

TEST(Ticket, SignVerifyAgeAndCsrf) {
  test::TempDir dir;
  auto keys = AuthKeys::LoadOrCreate(dir.path());
  ASSERT_TRUE(keys.ok()) << keys.status().ToString();
  const int64_t now = 1717000000;
  auto ticket = (*keys)->CreateTicket("alice@pbs", now);
  ASSERT_TRUE(ticket.ok());
  EXPECT_EQ(ticket->rfind("PBS:alice@pbs:66575740::", 0), 0u) << *ticket;
  EXPECT_EQ(*(*keys)->VerifyTicket(*ticket, now + 100), "alice@pbs");
  EXPECT_FALSE((*keys)->VerifyTicket(*ticket, now + 7201).ok());
  EXPECT_FALSE((*keys)->VerifyTicket(*ticket, now - 301).ok());
  std::string other = *ticket;
  other.replace(4, 5, "bobby");
  EXPECT_FALSE((*keys)->VerifyTicket(other, now).ok());

  // Keys persist: a second load verifies tickets of the first.
  auto again = AuthKeys::LoadOrCreate(dir.path());
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE((*again)->VerifyTicket(*ticket, now).ok());

  std::string csrf = (*keys)->CreateCsrfToken("alice@pbs", now);
  EXPECT_EQ(csrf.rfind("66575740:", 0), 0u);
  EXPECT_TRUE((*again)->VerifyCsrfToken("alice@pbs", csrf, now + 10).ok());
  EXPECT_FALSE((*keys)->VerifyCsrfToken("bob@pbs", csrf, now).ok());
  EXPECT_FALSE((*keys)->VerifyCsrfToken("alice@pbs", csrf, now + 8000).ok());
  EXPECT_FALSE((*keys)->VerifyCsrfToken("alice@pbs", "garbage", now).ok());
}

}  // namespace
}  // namespace pbskit::server
