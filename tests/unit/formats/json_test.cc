#include "pbskit/formats/json.h"

#include <gtest/gtest.h>

#include <string>

namespace pbskit {
namespace {

boost::json::value Parse(const std::string& s) { return boost::json::parse(s); }

TEST(SerdeJson, PrettyLayout) {
  boost::json::object o;
  o["b"] = 1;
  o["a"] = boost::json::array{1, "x", nullptr, true};
  o["empty_obj"] = boost::json::object{};
  o["empty_arr"] = boost::json::array{};
  o["nested"] = boost::json::object{{"k", false}};
  // Keys stay in the order the object holds them.
  EXPECT_EQ(ToSerdePretty(o),
            "{\n"
            "  \"b\": 1,\n"
            "  \"a\": [\n"
            "    1,\n"
            "    \"x\",\n"
            "    null,\n"
            "    true\n"
            "  ],\n"
            "  \"empty_obj\": {},\n"
            "  \"empty_arr\": [],\n"
            "  \"nested\": {\n"
            "    \"k\": false\n"
            "  }\n"
            "}");
  EXPECT_EQ(ToSerdeCompact(o),
            "{\"b\":1,\"a\":[1,\"x\",null,true],\"empty_obj\":{},\"empty_arr\":[],"
            "\"nested\":{\"k\":false}}");
  EXPECT_EQ(ToSerdePretty(boost::json::object{}), "{}");
  EXPECT_EQ(ToSerdePretty(boost::json::array{}), "[]");
  EXPECT_EQ(ToSerdePretty(nullptr), "null");
}

TEST(SerdeJson, StringEscapes) {
  const std::string s = std::string("q\"b\\s/\b\f\n\r\t") + '\x01' + '\x1f' + '\x7f' + "ünï日";
  std::string out;
  AppendSerdeString(s, &out);
  EXPECT_EQ(out, "\"q\\\"b\\\\s/\\b\\f\\n\\r\\t\\u0001\\u001f\x7fünï日\"");
  EXPECT_EQ(ToSerdeCompact(boost::json::value(s)), out);
  std::string nul;
  AppendSerdeString(std::string_view("\0", 1), &nul);
  EXPECT_EQ(nul, "\"\\u0000\"");
}

TEST(SerdeJson, Numbers) {
  EXPECT_EQ(ToSerdeCompact(int64_t{-5}), "-5");
  EXPECT_EQ(ToSerdeCompact(uint64_t{18446744073709551615u}), "18446744073709551615");
  EXPECT_EQ(ToSerdeCompact(int64_t{-9223372036854775807 - 1}), "-9223372036854775808");
  // Rust ryu formatting of f64.
  EXPECT_EQ(ToSerdeCompact(1.0), "1.0");
  EXPECT_EQ(ToSerdeCompact(0.0), "0.0");
  EXPECT_EQ(ToSerdeCompact(-0.0), "-0.0");
  EXPECT_EQ(ToSerdeCompact(0.1), "0.1");
  EXPECT_EQ(ToSerdeCompact(1.5), "1.5");
  EXPECT_EQ(ToSerdeCompact(123456.789), "123456.789");
  EXPECT_EQ(ToSerdeCompact(1e16), "1e16");
  EXPECT_EQ(ToSerdeCompact(1234567890123456.0), "1234567890123456.0");
  EXPECT_EQ(ToSerdeCompact(1.5e20), "1.5e20");
  EXPECT_EQ(ToSerdeCompact(0.0001), "0.0001");
  EXPECT_EQ(ToSerdeCompact(0.00001), "0.00001");
  EXPECT_EQ(ToSerdeCompact(0.000001), "1e-6");
  EXPECT_EQ(ToSerdeCompact(1.25e-7), "1.25e-7");
}

TEST(CanonicalJson, SortsKeysAtEveryLevelAndRejectsNull) {
  auto v = Parse(R"({"b":{"z":1,"a":[{"y":2,"x":"s"}]},"a":true,"B":0,"é":1,"e":2})");
  auto c = ToCanonicalJson(v);
  ASSERT_TRUE(c.ok());
  // Bytewise order: uppercase before lowercase, UTF-8 multi-byte last.
  EXPECT_EQ(*c, R"({"B":0,"a":true,"b":{"a":[{"x":"s","y":2}],"z":1},"e":2,"é":1})");
  auto with_null = ToCanonicalJson(Parse(R"({"a":[1,null]})"));
  ASSERT_FALSE(with_null.ok());
  EXPECT_EQ(with_null.status().code(), Code::kInvalidArgument);
  EXPECT_FALSE(ToCanonicalJson(nullptr).ok());
}

TEST(SerdeJson, SortedKeysCopiesDeep) {
  auto v = Parse(R"({"b":{"d":1,"c":2},"a":[{"z":0,"y":1}]})");
  EXPECT_EQ(ToSerdeCompact(SortedKeys(v)), R"({"a":[{"y":1,"z":0}],"b":{"c":2,"d":1}})");
}

}  // namespace
}  // namespace pbskit
