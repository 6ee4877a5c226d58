#include "pbskit/formats/crypt_config.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "pbskit/formats/crypto.h"

namespace pbskit {
namespace {

std::array<uint8_t, 32> SequenceKey() {
  std::array<uint8_t, 32> k;
  for (int i = 0; i < 32; i++) k[i] = static_cast<uint8_t>(i);
  return k;
}

std::array<uint8_t, 32> NinesKey() {
  std::array<uint8_t, 32> k;
  k.fill(9);
  return k;
}

std::vector<uint8_t> BlobTestData() {
  std::vector<uint8_t> data;
  for (int v = 0; v < 5; v++) data.insert(data.end(), 10, static_cast<uint8_t>(v));
  return data;
}

TEST(CryptConfigTest, FingerprintInputConstant) {
  EXPECT_EQ(ToHex(kFingerprintInput),
            "6ed0ef77471fff4d55c7a8fe4a9db62161407f134c725ddf30992d25ec45ed26");
}

TEST(CryptConfigTest, SequenceKeyIdKeyAndFingerprint) {
  // FORMATS.md §12.2, pbs-key-config unit tests.
  CryptConfig c(SequenceKey());
  EXPECT_EQ(ToHex(c.id_key()), "7c2c013efd07f3b25717a485263343cd4d292a4b65c200bb3b18ea227abe225c");
  EXPECT_EQ(c.FingerprintString(),
            "0e:ab:d4:46:0b:6e:b9:ca:34:50:23:de:e2:b7:78:c7:90:e5:4a:16:83:b9:65:9c:0a:57:ae:19:"
            "90:90:15:9b");
  Digest fp = c.Fingerprint();
  EXPECT_EQ(fp[0], 14);
  EXPECT_EQ(fp[1], 171);
  EXPECT_EQ(fp[31], 155);
  EXPECT_EQ(c.FingerprintString().size(), 95u);
  EXPECT_EQ(ShortFingerprint(fp), "0e:ab:d4:46:0b:6e:b9:ca");
}

TEST(CryptConfigTest, NinesKeyIdKeyFingerprintAndDigest) {
  CryptConfig c(NinesKey());
  EXPECT_EQ(ToHex(c.id_key()), "d8574fc7e9bcffc3127c21c78bebf73504a3be683e4dba652865f23435609353");
  EXPECT_EQ(ToHex(c.Fingerprint()),
            "1ac82c72fbbb6206ec158977f8f9e8743fbe4f783f314f45c82fa087f9b5cd8a");
  auto data = BlobTestData();
  EXPECT_EQ(ToHex(c.ComputeDigest(data)),
            "01aa8f2cdd4ba5c87d86255764358ea2ab3dbf473379dcc9397217148908c1d1");
  EXPECT_EQ(ToHex(ComputeChunkDigest(data, &c)),
            "01aa8f2cdd4ba5c87d86255764358ea2ab3dbf473379dcc9397217148908c1d1");
  EXPECT_EQ(ToHex(ComputeChunkDigest(data, nullptr)),
            "c8b59f3093e5268919b92e8e91074d14205c1ae70fac35aec7021603c9e3b63f");
}

TEST(CryptConfigTest, ChunkStoreDigestVectors) {
  std::vector<uint8_t> two = {0, 1};
  EXPECT_EQ(ToHex(ComputeChunkDigest(two, nullptr)),
            "b413f47d13ee2fe6c845b2ee141af81de858df4ec549a58b7970bb96645bc8d2");
  std::vector<uint8_t> zeros(4 << 20);
  EXPECT_EQ(ToHex(ComputeChunkDigest(zeros, nullptr)),
            "bb9f8df61474d25e71fa00722318cd387396ca1736605e1248821cc0de3d3af8");
}

TEST(CryptConfigTest, SignIsHmacWithIdKey) {
  CryptConfig c(SequenceKey());
  std::vector<uint8_t> msg = {'a', 'b', 'c'};
  EXPECT_EQ(c.Sign(msg), HmacSha256(c.id_key(), msg));
  CryptConfig other(NinesKey());
  EXPECT_NE(c.Sign(msg), other.Sign(msg));
}

TEST(CryptConfigTest, FingerprintTextFormat) {
  // pbs-api-types test vector.
  Digest d = {0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa,
              0xbb, 0xcc, 0xdd, 0xee, 0xff, 0x10, 0x20, 0x30, 0x40, 0x50, 0x60,
              0x70, 0x80, 0x90, 0xa0, 0xb0, 0xc0, 0xd0, 0xe0, 0xf0, 0x01};
  const std::string text =
      "00:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd:ee:ff:10:20:30:40:50:60:70:80:90:a0:b0:c0:d0:"
      "e0:f0:01";
  EXPECT_EQ(FormatFingerprint(d), text);
  auto parsed = ParseFingerprint(text);
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_EQ(*parsed, d);
  auto plain = ParseFingerprint(ToHex(d));
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(*plain, d);
  auto upper = ParseFingerprint(
      "00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:10:20:30:40:50:60:70:"
      "80:90:A0:B0:C0:D0:E0:F0:01");
  ASSERT_TRUE(upper.ok());
  EXPECT_EQ(*upper, d);
}

TEST(CryptConfigTest, ParseFingerprintRejectsBadText) {
  EXPECT_EQ(ParseFingerprint("00:11").status().code(), Code::kInvalidArgument);
  EXPECT_EQ(ParseFingerprint(std::string(64, 'g')).status().code(), Code::kInvalidArgument);
  EXPECT_EQ(ParseFingerprint("").status().code(), Code::kInvalidArgument);
  EXPECT_EQ(ParseFingerprint(std::string(66, 'a')).status().code(), Code::kInvalidArgument);
}

}  // namespace
}  // namespace pbskit
