#include "pbskit/formats/crypto.h"

#include <gtest/gtest.h>
#include <zlib.h>

#include <random>
#include <string>

namespace pbskit {
namespace {

std::vector<uint8_t> Bytes(std::string_view s) { return {s.begin(), s.end()}; }

TEST(CryptoTest, Crc32MatchesBlobVector) {
  // FORMATS.md §12.3: ten 00, ten 01, ..., ten 04.
  std::vector<uint8_t> data;
  for (int v = 0; v < 5; v++) data.insert(data.end(), 10, static_cast<uint8_t>(v));
  EXPECT_EQ(Crc32(data), 0x5cc18d12u);
  EXPECT_EQ(ToHex(Sha256(data)), "c8b59f3093e5268919b92e8e91074d14205c1ae70fac35aec7021603c9e3b63f");
}

// Crc32 folds long inputs 64 bytes at a time (carry-less multiplication) and finishes the tail
// with zlib: every length, start offset and seed must give zlib's own result.
TEST(CryptoTest, Crc32AgreesWithZlibAtEveryLengthOffsetAndSeed) {
  std::mt19937 rng(7);
  std::vector<uint8_t> buf(70000);
  for (auto& b : buf) b = static_cast<uint8_t>(rng());
  auto zlib = [](const uint8_t* p, size_t n, uint32_t seed) {
    return static_cast<uint32_t>(crc32(seed, p, static_cast<uInt>(n)));
  };
  for (uint32_t seed : {0u, 1u, 0xffffffffu, 0x5cc18d12u}) {
    for (size_t offset = 0; offset < 16; ++offset) {
      for (size_t len = 0; len <= 700; ++len) {
        const uint8_t* p = buf.data() + offset;
        ASSERT_EQ(Crc32(std::span<const uint8_t>(p, len), seed), zlib(p, len, seed))
            << "len " << len << " offset " << offset << " seed " << seed;
      }
    }
  }
  for (size_t len : {4096u, 65535u, 65536u, 69999u}) {
    EXPECT_EQ(Crc32(std::span<const uint8_t>(buf.data(), len)), zlib(buf.data(), len, 0))
        << len;
  }
  // Chained: a CRC continued from the result over the first part equals the one-pass CRC.
  const uint32_t first = Crc32(std::span<const uint8_t>(buf.data(), 1000));
  EXPECT_EQ(Crc32(std::span<const uint8_t>(buf.data() + 1000, 50000), first),
            Crc32(std::span<const uint8_t>(buf.data(), 51000)));
  // All-zero and all-one blocks: the folding must not cancel out.
  std::vector<uint8_t> zeros(4096, 0), ones(4096, 0xff);
  EXPECT_EQ(Crc32(zeros), zlib(zeros.data(), zeros.size(), 0));
  EXPECT_EQ(Crc32(ones), zlib(ones.data(), ones.size(), 0));
}

TEST(CryptoTest, Pbkdf2IdKeyVector) {
  // FORMATS.md §12.2: K = 00..1f, id_key = PBKDF2(K, "_id_key", 10, 32).
  std::vector<uint8_t> k(32);
  for (int i = 0; i < 32; i++) k[i] = static_cast<uint8_t>(i);
  auto id = Pbkdf2Sha256(k, Bytes("_id_key"), 10, 32);
  EXPECT_EQ(ToHex(id), "7c2c013efd07f3b25717a485263343cd4d292a4b65c200bb3b18ea227abe225c");
}

TEST(CryptoTest, ScryptManifestKeyVector) {
  // FORMATS.md §12.4: scrypt("test", salt "", N=65536, r=8, p=1).
  auto k = Scrypt(Bytes("test"), {}, 65536, 8, 1, 32);
  ASSERT_TRUE(k.ok()) << k.status().ToString();
  EXPECT_EQ(ToHex(*k), "28cdb1a3bef39396c3860e00d448fe7a0efd8244486ab6feb30457681d31597e");
}

TEST(CryptoTest, AesGcmVectorAndTamper) {
  // FORMATS.md §12.3 encrypted blob with K = 09*32, IV = 00..0f (compressed? no: plain data).
  std::array<uint8_t, 32> key;
  key.fill(9);
  std::array<uint8_t, 16> iv;
  for (int i = 0; i < 16; i++) iv[i] = static_cast<uint8_t>(i);
  std::vector<uint8_t> data;
  for (int v = 0; v < 5; v++) data.insert(data.end(), 10, static_cast<uint8_t>(v));
  std::vector<uint8_t> ct;
  std::array<uint8_t, 16> tag;
  ASSERT_TRUE(Aes256GcmEncrypt(key, iv, data, &ct, &tag).ok());
  EXPECT_EQ(ToHex(tag), "dcefa2ac87a8b01ad7c6df3366244045");
  EXPECT_EQ(ToHex(ct),
            "36336ba72aa6a2ab4cbdbb28948162f4063a7b44929e5e324d4112445c20b7cf8cdd988bef13c361d630"
            "243ab7816a2ae05e");
  EXPECT_EQ(Crc32(ct), 0x7eb34100u);
  std::vector<uint8_t> back;
  ASSERT_TRUE(Aes256GcmDecrypt(key, iv, tag, ct, &back).ok());
  EXPECT_EQ(back, data);
  ct[3] ^= 1;
  EXPECT_TRUE(Aes256GcmDecrypt(key, iv, tag, ct, &back).IsCorruption());
}

TEST(CryptoTest, HexAndBase64RoundTrip) {
  EXPECT_EQ(ToHex(std::vector<uint8_t>{0x00, 0xab, 0xff}), "00abff");
  EXPECT_FALSE(FromHex("abc").ok());
  EXPECT_FALSE(FromHex("zz").ok());
  EXPECT_TRUE(IsDigestHex(std::string(64, 'a')));
  EXPECT_FALSE(IsDigestHex(std::string(63, 'a')));
  auto raw = Base64Decode("4RPJzVX06FoEt+vs1UCBz2ECc9Csm3ufdoDAEHB4ZCs=");
  ASSERT_TRUE(raw.ok());
  EXPECT_EQ(ToHex(*raw), "e113c9cd55f4e85a04b7ebecd54081cf610273d0ac9b7b9f7680c0107078642b");
  EXPECT_EQ(Base64Encode(*raw), "4RPJzVX06FoEt+vs1UCBz2ECc9Csm3ufdoDAEHB4ZCs=");
  EXPECT_FALSE(Base64Decode("abc").ok());
  Sha256Stream s;
  s.Update("ab");
  s.Update("c");
  EXPECT_EQ(s.Finish(), Sha256("abc"));
}

// The base64 crate's (0.22) decoding rules and messages, as proxmox_base64::decode uses them.
TEST(CryptoTest, Base64IndifferentPadFollowsTheRustCrate) {
  auto text = [](std::string_view b64) {
    auto r = Base64DecodeIndifferentPad(b64);
    EXPECT_TRUE(r.ok()) << b64 << ": " << r.status().ToString();
    return r.ok() ? std::string(r->begin(), r->end()) : std::string("<error>");
  };
  EXPECT_EQ(text(""), "");
  EXPECT_EQ(text("QQ=="), "A");
  EXPECT_EQ(text("QQ="), "A");
  EXPECT_EQ(text("QQ"), "A");
  EXPECT_EQ(text("QUI"), "AB");
  EXPECT_EQ(text("QUJD"), "ABC");
  EXPECT_EQ(text("L3Jvb3QucHhhci5kaWR4L2V0Yw=="), "/root.pxar.didx/etc");
  EXPECT_EQ(text("L3Jvb3QucHhhci5kaWR4L2V0Yw"), "/root.pxar.didx/etc");
  auto err = [](std::string_view b64) {
    auto r = Base64DecodeIndifferentPad(b64);
    EXPECT_FALSE(r.ok()) << b64;
    EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
    return r.status().message();
  };
  EXPECT_EQ(err("!!!!"), "Invalid symbol 33, offset 0.");
  EXPECT_EQ(err("QUJD!UJD"), "Invalid symbol 33, offset 4.");
  EXPECT_EQ(err("QQ==QUJD"), "Invalid symbol 61, offset 2.");
  EXPECT_EQ(err("Q==="), "Invalid symbol 61, offset 1.");
  EXPECT_EQ(err("QQ=A"), "Invalid symbol 61, offset 2.");
  EXPECT_EQ(err("QUJDQ"), "Invalid input length: 5");
  EXPECT_EQ(err("QUJD\n"), "Invalid symbol 10, offset 4.");
  EXPECT_EQ(err("QR=="), "Invalid last symbol 82, offset 1.");
  EXPECT_EQ(err("QUJ-"), "Invalid symbol 45, offset 3.");
}

}  // namespace
}  // namespace pbskit
