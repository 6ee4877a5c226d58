#include "pbskit/formats/property_string.h"

#include <gtest/gtest.h>

namespace pbskit {
namespace {

using KV = PropertyList;

TEST(PropertyStringTest, KeyValueList) {
  auto r = ParsePropertyString("gc-atime-cutoff=1445,sync-level=filesystem");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(*r, (KV{{"gc-atime-cutoff", "1445"}, {"sync-level", "filesystem"}}));
  ASSERT_NE(FindProperty(*r, "sync-level"), nullptr);
  EXPECT_EQ(*FindProperty(*r, "sync-level"), "filesystem");
  EXPECT_EQ(FindProperty(*r, "chunk-order"), nullptr);
  EXPECT_TRUE(ParsePropertyString("")->empty());
}

TEST(PropertyStringTest, DefaultKey) {
  auto a = ParsePropertyString("type=s3,client=minio1,bucket=pbs", "type");
  auto b = ParsePropertyString("s3,client=minio1,bucket=pbs", "type");
  ASSERT_TRUE(a.ok());
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(*a, *b);
  auto no_default = ParsePropertyString("s3,client=minio1");
  ASSERT_FALSE(no_default.ok());
  EXPECT_EQ(no_default.status().code(), Code::kInvalidArgument);
  EXPECT_NE(no_default.status().message().find("value 's3' without key"), std::string::npos);
  // A bare value given twice is a duplicate of the default key.
  EXPECT_FALSE(ParsePropertyString("read-only,offline", "type").ok());
}

TEST(PropertyStringTest, QuotedValues) {
  auto r = ParsePropertyString("type=read-only,message=\"disk swap, back at 10:00\"", "type");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(*r, (KV{{"type", "read-only"}, {"message", "disk swap, back at 10:00"}}));
  // The proxmox-schema iterator example.
  auto e = ParsePropertyString(
      R"("value w/o key",fst=v1,sec="with = in it",third=3,x="and \" and '\\' \n")", "d");
  ASSERT_TRUE(e.ok()) << e.status().ToString();
  EXPECT_EQ(*e, (KV{{"d", "value w/o key"},
                    {"fst", "v1"},
                    {"sec", "with = in it"},
                    {"third", "3"},
                    {"x", "and \" and '\\' \n"}}));
  // An inner quote in an unquoted value is literal; '=' after the key is part of the value.
  auto lit = ParsePropertyString("a=x\"y,b=c=d");
  ASSERT_TRUE(lit.ok());
  EXPECT_EQ(*lit, (KV{{"a", "x\"y"}, {"b", "c=d"}}));
}

TEST(PropertyStringTest, Errors) {
  EXPECT_FALSE(ParsePropertyString(R"(key="open \\ value)").ok());
  EXPECT_FALSE(ParsePropertyString(R"(key="open \\ value\")").ok());
  EXPECT_FALSE(ParsePropertyString(R"(key="bad \t escape")").ok());
  auto garbage = ParsePropertyString(R"(key="v"x,b=1)");
  ASSERT_FALSE(garbage.ok());
  EXPECT_NE(garbage.status().message().find("garbage after quoted string"), std::string::npos);
  auto dup = ParsePropertyString("a=1,a=2");
  ASSERT_FALSE(dup.ok());
  EXPECT_NE(dup.status().message().find("parameter 'a': duplicate parameter."),
            std::string::npos);
  EXPECT_FALSE(ParsePropertyString("=1").ok());
}

TEST(PropertyStringTest, FormatRoundTrips) {
  KV kv{{"type", "read-only"}, {"message", "disk swap, back at 10:00"}};
  EXPECT_EQ(FormatPropertyString(kv), "type=read-only,message=\"disk swap, back at 10:00\"");
  EXPECT_EQ(FormatPropertyString(kv, "type"), "read-only,message=\"disk swap, back at 10:00\"");
  KV odd{{"a", "q\"uo\\te\nnl"}, {"b", "\"lead"}, {"c", ""}, {"d", "plain"}};
  std::string s = FormatPropertyString(odd);
  EXPECT_EQ(s, R"(a="q\"uo\\te\nnl",b="\"lead",c=,d=plain)");
  auto back = ParsePropertyString(s);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(*back, odd);
  EXPECT_EQ(FormatPropertyString({}), "");
}

TEST(PropertyStringTest, PercentDecode) {
  EXPECT_EQ(PercentDecode("disk%20swap%2C%20back%20soon"), "disk swap, back soon");
  EXPECT_EQ(PercentDecode("100%"), "100%");
  EXPECT_EQ(PercentDecode("a%zzb"), "a%zzb");
  EXPECT_EQ(PercentDecode("caf%C3%A9"), "caf\xC3\xA9");
  EXPECT_EQ(PercentDecode("bad%FF"), "");  // invalid UTF-8 shows as empty, like PBS
}

}  // namespace
}  // namespace pbskit
