#include "pbskit/formats/status.h"

#include <gtest/gtest.h>

#include <cerrno>

namespace pbskit {
namespace {

Result<int> Half(int v) {
  if (v % 2) return Status::InvalidArgument("odd value " + std::to_string(v));
  return v / 2;
}

Result<int> Quarter(int v) {
  PBSKIT_ASSIGN_OR_RETURN(int h, Half(v));
  return Half(h);
}

TEST(StatusTest, CodesAndMessages) {
  EXPECT_TRUE(Status::OK().ok());
  Status s = Status::Corruption("chunk ab: crc mismatch");
  EXPECT_FALSE(s.ok());
  EXPECT_TRUE(s.IsCorruption());
  EXPECT_EQ(s.ToString(), "chunk ab: crc mismatch");
  EXPECT_EQ(s.WithContext("verify").message(), "verify: chunk ab: crc mismatch");
  EXPECT_EQ(Status::FromErrno(ENOENT, "open x").code(), Code::kNotFound);
  EXPECT_EQ(Status::FromErrno(EIO, "read x").code(), Code::kIoError);
}

TEST(StatusTest, ResultPropagates) {
  auto q = Quarter(8);
  ASSERT_TRUE(q.ok());
  EXPECT_EQ(*q, 2);
  auto bad = Quarter(6);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message(), "odd value 3");
}

}  // namespace
}  // namespace pbskit
