#include "pbskit/formats/upid.h"

#include <gtest/gtest.h>

namespace pbskit {
namespace {

TEST(UpidTest, ParsesTheProxmoxExample) {
  auto u = Upid::Parse("UPID:elsa:00004F37:0039E469:00000000:5CA78B83:garbage_collection::root@pam:");
  ASSERT_TRUE(u.ok()) << u.status().ToString();
  EXPECT_EQ(u->node, "elsa");
  EXPECT_EQ(u->pid, 0x4F37);
  EXPECT_EQ(u->pstart, 0x39E469u);
  EXPECT_EQ(u->task_id, 0u);
  EXPECT_EQ(u->starttime, 0x5CA78B83);
  EXPECT_EQ(u->worker_type, "garbage_collection");
  EXPECT_FALSE(u->worker_id.has_value());
  EXPECT_EQ(u->auth_id, "root@pam");
  EXPECT_EQ(u->ToString(),
            "UPID:elsa:00004F37:0039E469:00000000:5CA78B83:garbage_collection::root@pam:");
}

TEST(UpidTest, FormatsUpperCaseHexAndEscapesWorkerId) {
  Upid u;
  u.node = "pbs1";
  u.pid = 0x1a2b;
  u.pstart = 0x1ABCDEF01;  // > 32 bit: 9 digits
  u.task_id = 3;
  u.starttime = 0x65000000;
  u.worker_type = "prune";
  u.worker_id = "store1::vm/100";
  u.auth_id = "root@pam";
  EXPECT_EQ(u.ToString(),
            "UPID:pbs1:00001A2B:1ABCDEF01:00000003:65000000:prune:store1\\x3a\\x3avm-100:root@pam:");
  auto back = Upid::Parse(u.ToString());
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(*back, u);
}

TEST(UpidTest, WorkerIdEscaping) {
  // Verify job ids as PBS writes them: '-' itself must be escaped, '/' becomes '-'.
  EXPECT_EQ(EscapeWorkerId("store:ns1/ns2:vm/100/2024-01-01T00:00:00Z"),
            "store\\x3ans1-ns2\\x3avm-100-2024\\x2d01\\x2d01T00\\x3a00\\x3a00Z");
  EXPECT_EQ(EscapeWorkerId(".hidden"), "\\x2ehidden");
  EXPECT_EQ(EscapeWorkerId("a.b"), "a.b");
  EXPECT_EQ(EscapeWorkerId("a b"), "a\\x20b");
  auto un = UnescapeWorkerId("store\\x3ans1-ns2\\x3Avm-100");
  ASSERT_TRUE(un.ok());
  EXPECT_EQ(*un, "store:ns1/ns2:vm/100");
  EXPECT_FALSE(UnescapeWorkerId("bad\\x4").ok());
  EXPECT_FALSE(UnescapeWorkerId("bad\\y41").ok());
  EXPECT_FALSE(UnescapeWorkerId("bad\\xZZ").ok());
}

TEST(UpidTest, RejectsMalformed) {
  const char* bad[] = {
      "",
      "UPID:",
      "UPID:elsa:4F37:0039E469:00000000:5CA78B83:gc::root@pam:",            // pid too short
      "UPID:elsa:00004F37:0039E469:00000000:5CA78B83:gc::root@pam",         // no trailing ':'
      "UPID:-elsa:00004F37:0039E469:00000000:5CA78B83:gc::root@pam:",       // bad node
      "UPID:elsa:00004F37:0039E469:00000000:5CA78B83:::root@pam:",          // empty type
      "UPID:elsa:00004F37:0039E469:00000000:5CA78B83:gc::root@pam:extra:",  // extra field
      "UPID:elsa:00004F37:0039E469:00000000:5CA78B8G:gc::root@pam:",        // non-hex
      "UPID:elsa:00004F37:0039E469:00000000:5CA78B83:gc:a b:root@pam:",     // space in id
      "UPID:elsa:00004F37:0039E469:00000000:5CA78B83:gc:bad\\x4:root@pam:", // bad escape
  };
  for (const char* text : bad) {
    auto u = Upid::Parse(text);
    EXPECT_FALSE(u.ok()) << text;
    if (!u.ok()) {
      EXPECT_EQ(u.status().message(), std::string("unable to parse UPID '") + text + "'");
    }
  }
}

TEST(UpidTest, FieldChecks) {
  EXPECT_TRUE(CheckUpidWorkerType("garbage_collection").ok());
  EXPECT_FALSE(CheckUpidWorkerType("a/b").ok());
  EXPECT_FALSE(CheckUpidWorkerType("a b").ok());
  EXPECT_TRUE(CheckUpidAuthId("root@pam!token").ok());
  EXPECT_FALSE(CheckUpidAuthId("root:pam").ok());
  EXPECT_FALSE(CheckUpidAuthId("").ok());
}

}  // namespace
}  // namespace pbskit
