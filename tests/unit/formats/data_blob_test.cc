#include "pbskit/formats/data_blob.h"

#include <gtest/gtest.h>
#include <zstd.h>

#include <filesystem>
#include <string>
#include <vector>

#include "pbskit/formats/crypto.h"
#include "pbskit/formats/hex.h"
#include "test_support.h"

namespace pbskit {
namespace {

namespace fs = std::filesystem;

std::vector<uint8_t> TestData() {  // FORMATS.md §12.3
  std::vector<uint8_t> data;
  for (int v = 0; v < 5; v++) data.insert(data.end(), 10, static_cast<uint8_t>(v));
  return data;
}

std::array<uint8_t, 32> NinesKey() {
  std::array<uint8_t, 32> k;
  k.fill(9);
  return k;
}

// One zstd frame without the content size field (as PBS <= 3.2.7's streaming encoder wrote).
std::vector<uint8_t> FrameWithoutContentSize(const std::vector<uint8_t>& data) {
  ZSTD_CCtx* cctx = ZSTD_createCCtx();
  ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, 1);
  ZSTD_CCtx_setParameter(cctx, ZSTD_c_contentSizeFlag, 0);
  std::vector<uint8_t> out(ZSTD_compressBound(data.size()));
  size_t n = ZSTD_compress2(cctx, out.data(), out.size(), data.data(), data.size());
  ZSTD_freeCCtx(cctx);
  EXPECT_FALSE(ZSTD_isError(n));
  out.resize(n);
  EXPECT_EQ(ZSTD_getFrameContentSize(out.data(), out.size()), ZSTD_CONTENTSIZE_UNKNOWN);
  return out;
}

std::vector<uint8_t> CompressedBlob(const std::vector<uint8_t>& payload) {
  std::vector<uint8_t> raw(12 + payload.size());
  for (int i = 0; i < 8; i++) raw[i] = kCompressedBlobMagic[i];
  uint32_t crc = Crc32(payload);
  for (int i = 0; i < 4; i++) raw[8 + i] = static_cast<uint8_t>(crc >> (8 * i));
  for (size_t i = 0; i < payload.size(); i++) raw[12 + i] = payload[i];
  return raw;
}

std::vector<uint8_t> Pseudorandom(size_t n, uint32_t seed) {
  std::vector<uint8_t> out(n);
  uint32_t x = seed;
  for (auto& b : out) {
    x = x * 1664525u + 1013904223u;
    b = static_cast<uint8_t>(x >> 24);
  }
  return out;
}

TEST(DataBlobTest, MagicsAreSha256Prefixes) {
  auto prefix = [](std::string_view s) {
    Digest d = Sha256(s);
    std::array<uint8_t, 8> m;
    std::copy(d.begin(), d.begin() + 8, m.begin());
    return m;
  };
  EXPECT_EQ(kUncompressedBlobMagic, prefix("Proxmox Backup uncompressed blob v1.0"));
  EXPECT_EQ(kCompressedBlobMagic, prefix("Proxmox Backup zstd compressed blob v1.0"));
  EXPECT_EQ(kEncryptedBlobMagic, prefix("Proxmox Backup encrypted blob v1.0"));
  EXPECT_EQ(kEncrCompressedBlobMagic, prefix("Proxmox Backup zstd compressed encrypted blob v1.0"));
}

TEST(DataBlobTest, UncompressedVectorBytes) {
  auto data = TestData();
  auto blob = DataBlob::Encode(data, nullptr, /*compress=*/false);
  ASSERT_TRUE(blob.ok()) << blob.status().ToString();
  EXPECT_EQ(ToHex(blob->raw()), "42ab3807be8370a1128dc15c" + ToHex(data));
  EXPECT_EQ(blob->raw().size(), 62u);
  EXPECT_EQ(blob->stored_crc(), 0x5cc18d12u);
  EXPECT_EQ(blob->ComputeCrc(), 0x5cc18d12u);
  EXPECT_FALSE(blob->is_encrypted());
  EXPECT_FALSE(blob->is_compressed());
  auto decoded = blob->Decode(nullptr);
  ASSERT_TRUE(decoded.ok());
  EXPECT_EQ(*decoded, data);
}

TEST(DataBlobTest, EncryptedVectorBytesWithFixedIv) {
  CryptConfig crypt(NinesKey());
  std::array<uint8_t, 16> iv;
  for (int i = 0; i < 16; i++) iv[i] = static_cast<uint8_t>(i);
  auto data = TestData();
  auto blob = DataBlob::EncodeWithIv(data, &crypt, /*compress=*/false, iv);
  ASSERT_TRUE(blob.ok()) << blob.status().ToString();
  const std::string ciphertext =
      "36336ba72aa6a2ab4cbdbb28948162f4063a7b44929e5e324d4112445c20b7cf8cdd988bef13c361d630243ab7"
      "816a2ae05e";
  EXPECT_EQ(ToHex(blob->raw()),
            "7b6785be222d4cf0"
            "0041b37e"
            "000102030405060708090a0b0c0d0e0f"
            "dcefa2ac87a8b01ad7c6df3366244045" +
                ciphertext);
  EXPECT_EQ(blob->raw().size(), 94u);  // 44-byte header + 50 (FORMATS.md says 48/98: wrong)
  EXPECT_EQ(blob->stored_crc(), 0x7eb34100u);
  EXPECT_TRUE(blob->is_encrypted());
  EXPECT_FALSE(blob->is_compressed());

  // And the decoder reads the vector given as bytes.
  auto parsed = DataBlob::FromRaw(blob->raw());
  ASSERT_TRUE(parsed.ok());
  auto decoded = parsed->Decode(&crypt);
  ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
  EXPECT_EQ(*decoded, data);
  EXPECT_EQ(ToHex(crypt.ComputeDigest(*decoded)),
            "01aa8f2cdd4ba5c87d86255764358ea2ab3dbf473379dcc9397217148908c1d1");
}

TEST(DataBlobTest, RoundTripsAllKinds) {
  CryptConfig crypt(NinesKey());
  std::vector<std::vector<uint8_t>> inputs = {{},
                                              TestData(),
                                              std::vector<uint8_t>(4 << 20, 0),
                                              Pseudorandom(100000, 7),
                                              std::vector<uint8_t>(1, 0x42)};
  for (const auto& data : inputs) {
    for (bool compress : {false, true}) {
      for (const CryptConfig* c : std::array<const CryptConfig*, 2>{nullptr, &crypt}) {
        auto blob = DataBlob::Encode(data, c, compress);
        ASSERT_TRUE(blob.ok()) << blob.status().ToString();
        EXPECT_EQ(blob->is_encrypted(), c != nullptr);
        EXPECT_EQ(blob->stored_crc(), blob->ComputeCrc());
        auto again = DataBlob::FromRaw(blob->raw());
        ASSERT_TRUE(again.ok()) << again.status().ToString();
        std::vector<uint8_t> out = {1, 2, 3};  // stale content must be replaced
        ASSERT_TRUE(again->DecodeTo(c, &out).ok());
        EXPECT_EQ(out, data) << "size " << data.size() << " compress " << compress;
        std::vector<uint8_t> zc;
        ASSERT_TRUE(CheckBlobHeader(blob->raw(), true).ok());
        ASSERT_TRUE(DecodeBlob(blob->raw(), c, &zc).ok());
        EXPECT_EQ(zc, data);
      }
    }
  }
}

TEST(DataBlobTest, CompressionChoice) {
  auto zeros = std::vector<uint8_t>(1 << 20, 0);
  auto blob = DataBlob::Encode(zeros, nullptr, true);
  ASSERT_TRUE(blob.ok());
  EXPECT_TRUE(blob->is_compressed());
  EXPECT_LT(blob->raw().size(), 1000u);
  // Incompressible data is stored uncompressed even when compression is asked for.
  auto noise = Pseudorandom(65536, 3);
  auto plain = DataBlob::Encode(noise, nullptr, true);
  ASSERT_TRUE(plain.ok());
  EXPECT_FALSE(plain->is_compressed());
  EXPECT_EQ(plain->raw().size(), noise.size() + 12);
  CryptConfig crypt(NinesKey());
  auto enc = DataBlob::Encode(zeros, &crypt, true);
  ASSERT_TRUE(enc.ok());
  EXPECT_TRUE(enc->is_compressed());
  EXPECT_TRUE(enc->is_encrypted());
  EXPECT_EQ(std::vector<uint8_t>(enc->raw().begin(), enc->raw().begin() + 8),
            std::vector<uint8_t>(kEncrCompressedBlobMagic.begin(), kEncrCompressedBlobMagic.end()));
}

TEST(DataBlobTest, RandomIvPerBlob) {
  CryptConfig crypt(NinesKey());
  auto a = DataBlob::Encode(TestData(), &crypt, false);
  auto b = DataBlob::Encode(TestData(), &crypt, false);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NE(a->raw(), b->raw());
}

TEST(DataBlobTest, CrcFlipIsCorruption) {
  auto blob = DataBlob::Encode(TestData(), nullptr, false);
  ASSERT_TRUE(blob.ok());
  auto raw = blob->raw();
  raw[20] ^= 0x01;
  auto bad = DataBlob::FromRaw(raw);
  ASSERT_FALSE(bad.ok());
  EXPECT_TRUE(bad.status().IsCorruption());
  EXPECT_NE(bad.status().message().find("stored 0x5cc18d12"), std::string::npos)
      << bad.status().message();
  EXPECT_TRUE(CheckBlobHeader(raw, true).IsCorruption());
  // Without the CRC check the header is accepted.
  EXPECT_TRUE(DataBlob::FromRaw(raw, /*check_crc=*/false).ok());
  EXPECT_TRUE(CheckBlobHeader(raw, false).ok());
  // A flip in the stored CRC itself is caught as well.
  auto raw2 = blob->raw();
  raw2[8] ^= 0x80;
  EXPECT_TRUE(DataBlob::FromRaw(raw2).status().IsCorruption());
}

TEST(DataBlobTest, TruncatedAndEmptyAndWrongMagic) {
  EXPECT_TRUE(DataBlob::FromRaw({}).status().IsCorruption());
  auto blob = DataBlob::Encode(TestData(), nullptr, false);
  ASSERT_TRUE(blob.ok());
  std::vector<uint8_t> short_raw(blob->raw().begin(), blob->raw().begin() + 11);
  EXPECT_TRUE(DataBlob::FromRaw(short_raw).status().IsCorruption());
  // An encrypted magic needs 44 header bytes (magic, crc, iv, tag).
  CryptConfig crypt(NinesKey());
  auto enc = DataBlob::Encode(TestData(), &crypt, false);
  ASSERT_TRUE(enc.ok());
  std::vector<uint8_t> enc_short(enc->raw().begin(), enc->raw().begin() + 40);
  auto st = DataBlob::FromRaw(enc_short, false).status();
  EXPECT_TRUE(st.IsCorruption());
  EXPECT_NE(st.message().find("encrypted blob too small"), std::string::npos);
  // Wrong magic.
  auto raw = blob->raw();
  raw[0] ^= 0xff;
  st = DataBlob::FromRaw(raw).status();
  EXPECT_TRUE(st.IsCorruption());
  EXPECT_NE(st.message().find("wrong magic"), std::string::npos);
  std::vector<uint8_t> out;
  EXPECT_TRUE(DecodeBlob(raw, nullptr, &out).IsCorruption());
  // A zero-length payload is a valid (empty) uncompressed blob.
  auto empty = DataBlob::Encode({}, nullptr, true);
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(empty->raw().size(), 12u);
  auto parsed = DataBlob::FromRaw(empty->raw());
  ASSERT_TRUE(parsed.ok());
  auto dec = parsed->Decode(nullptr);
  ASSERT_TRUE(dec.ok());
  EXPECT_TRUE(dec->empty());
}

TEST(DataBlobTest, DamagedZstdIsCorruption) {
  auto blob = DataBlob::Encode(std::vector<uint8_t>(100000, 'a'), nullptr, true);
  ASSERT_TRUE(blob.ok());
  ASSERT_TRUE(blob->is_compressed());
  // Truncate the zstd frame and fix the CRC so only the decoder can notice.
  auto raw = blob->raw();
  raw.resize(raw.size() - 3);
  uint32_t crc = Crc32(std::span<const uint8_t>(raw).subspan(12));
  for (int i = 0; i < 4; i++) raw[8 + i] = static_cast<uint8_t>(crc >> (8 * i));
  auto parsed = DataBlob::FromRaw(raw);
  ASSERT_TRUE(parsed.ok());
  EXPECT_TRUE(parsed->Decode(nullptr).status().IsCorruption());
  // Compressed magic with an empty payload.
  auto p2 = DataBlob::FromRaw(CompressedBlob({}));
  ASSERT_TRUE(p2.ok());
  EXPECT_TRUE(p2->Decode(nullptr).status().IsCorruption());
}

TEST(DataBlobTest, EncryptedNeedsRightKey) {
  CryptConfig crypt(NinesKey());
  std::array<uint8_t, 32> other_key{};
  other_key[0] = 1;
  CryptConfig other(other_key);
  for (bool compress : {false, true}) {
    auto blob = DataBlob::Encode(std::vector<uint8_t>(5000, 7), &crypt, compress);
    ASSERT_TRUE(blob.ok());
    auto missing = blob->Decode(nullptr);
    EXPECT_EQ(missing.status().code(), Code::kInvalidArgument);
    EXPECT_NE(missing.status().message().find("missing key"), std::string::npos);
    EXPECT_TRUE(blob->Decode(&other).status().IsCorruption());
    // A flipped ciphertext byte with a recomputed CRC fails the GCM tag.
    auto raw = blob->raw();
    raw[60] ^= 1;
    uint32_t crc = Crc32(std::span<const uint8_t>(raw).subspan(kEncryptedBlobHeaderSize));
    for (int i = 0; i < 4; i++) raw[8 + i] = static_cast<uint8_t>(crc >> (8 * i));
    std::vector<uint8_t> out;
    ASSERT_TRUE(CheckBlobHeader(raw, true).ok());
    EXPECT_TRUE(DecodeBlob(raw, &crypt, &out).IsCorruption());
  }
}

TEST(DataBlobTest, MultipleFramesWithAndWithoutContentSize) {
  // Frames from the single-shot encoder (content size present) and from a streaming encoder
  // (no content size), alone and concatenated: the reader decodes all frames to the end.
  auto part1 = Pseudorandom(3000, 1);
  part1.insert(part1.end(), 20000, 'x');
  auto part2 = std::vector<uint8_t>(300000, 'y');
  auto blob1 = DataBlob::Encode(part1, nullptr, true);
  ASSERT_TRUE(blob1.ok());
  ASSERT_TRUE(blob1->is_compressed());
  std::vector<uint8_t> frame1(blob1->raw().begin() + 12, blob1->raw().end());
  std::vector<uint8_t> frame2 = FrameWithoutContentSize(part2);
  std::vector<uint8_t> both_data = part1;
  both_data.insert(both_data.end(), part2.begin(), part2.end());

  struct Case {
    std::vector<uint8_t> payload, expect;
  };
  std::vector<uint8_t> f12 = frame1, f21 = frame2;
  f12.insert(f12.end(), frame2.begin(), frame2.end());
  f21.insert(f21.end(), frame1.begin(), frame1.end());
  std::vector<uint8_t> data21 = part2;
  data21.insert(data21.end(), part1.begin(), part1.end());
  std::vector<Case> cases = {{frame2, part2}, {f12, both_data}, {f21, data21}};
  for (const auto& c : cases) {
    auto raw = CompressedBlob(c.payload);
    ASSERT_TRUE(CheckBlobHeader(raw, true).ok());
    std::vector<uint8_t> out(7, 1);
    Status st = DecodeBlob(raw, nullptr, &out);
    ASSERT_TRUE(st.ok()) << st.ToString();
    EXPECT_EQ(out, c.expect);
    // Reusing a large output buffer gives the same result.
    std::vector<uint8_t> big(10 << 20, 5);
    ASSERT_TRUE(DecodeBlob(raw, nullptr, &big).ok());
    EXPECT_EQ(big, c.expect);
  }
  // A truncated frame without content size is corruption, not a short result.
  std::vector<uint8_t> cut(frame2.begin(), frame2.end() - 4);
  std::vector<uint8_t> out;
  EXPECT_TRUE(DecodeBlob(CompressedBlob(cut), nullptr, &out).IsCorruption());
}

TEST(DataBlobTest, TooLargeIsRejected) {
  std::vector<uint8_t> big(kMaxBlobSize + 1);
  auto r = DataBlob::Encode(big, nullptr, false);
  EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
}

// Every chunk of the PBS 3.2.4 fixture datastore decodes (plain, zstd, encrypted-zstd) to data
// whose digest is the chunk's file name.
TEST(DataBlobTest, FixtureChunksDecodeToTheirDigest) {
  auto key_bytes = FromHex("e113c9cd55f4e85a04b7ebecd54081cf610273d0ac9b7b9f7680c0107078642b");
  ASSERT_TRUE(key_bytes.ok());
  std::array<uint8_t, 32> key;
  std::copy(key_bytes->begin(), key_bytes->end(), key.begin());
  CryptConfig crypt(key);

  int plain = 0, compressed = 0, encrypted = 0;
  for (const auto& dir : fs::directory_iterator(test::Fixture("pbs-3.2.4-datastore/.chunks"))) {
    for (const auto& f : fs::directory_iterator(dir.path())) {
      std::string name = f.path().filename().string();
      auto raw = test::ReadFile(f.path().string());
      auto blob = DataBlob::FromRaw(raw);
      ASSERT_TRUE(blob.ok()) << name << ": " << blob.status().ToString();
      const CryptConfig* c = blob->is_encrypted() ? &crypt : nullptr;
      auto data = blob->Decode(c);
      ASSERT_TRUE(data.ok()) << name << ": " << data.status().ToString();
      EXPECT_EQ(ToHex(ComputeChunkDigest(*data, c)), name);
      std::vector<uint8_t> zc;
      ASSERT_TRUE(DecodeBlob(raw, c, &zc).ok());
      EXPECT_EQ(zc, *data);
      if (blob->is_encrypted()) {
        encrypted++;
        EXPECT_TRUE(blob->is_compressed());
      } else if (blob->is_compressed()) {
        compressed++;
      } else {
        plain++;
      }
    }
  }
  // Fixture README: encrypted-zstd 3, plain-uncompressed 2, plain-zstd 14.
  EXPECT_EQ(encrypted, 3);
  EXPECT_EQ(plain, 2);
  EXPECT_EQ(compressed, 14);
}

TEST(DataBlobTest, FixtureBlobFiles) {
  auto raw = test::ReadFile(
      test::Fixture("pbs-3.2.4-datastore/ct/101/2024-05-01T11:00:00Z/pct.conf.blob"));
  auto blob = DataBlob::FromRaw(raw);
  ASSERT_TRUE(blob.ok());
  EXPECT_TRUE(blob->is_compressed());
  auto data = blob->Decode(nullptr);
  ASSERT_TRUE(data.ok());
  EXPECT_EQ(data->size(), 104u);
  EXPECT_EQ(test::Sha256Hex(*data),
            "4587121623ed9a97847d6f34236983c3746287f42a2f5a6d82bbdf1eb40c177c");
  auto rsa = DataBlob::FromRaw(test::ReadFile(
      test::Fixture("pbs-3.2.4-datastore/vm/200/2024-05-05T12:00:00Z/rsa-encrypted.key.blob")));
  ASSERT_TRUE(rsa.ok());
  EXPECT_FALSE(rsa->is_compressed());
  EXPECT_FALSE(rsa->is_encrypted());
  EXPECT_EQ(rsa->raw().size(), 12u + 512u);
}

}  // namespace
}  // namespace pbskit

namespace pbskit {
namespace {

TEST(DataBlobTest, SetCrcAndRewriteBlobCrc) {
  auto blob = DataBlob::Encode(std::vector<uint8_t>(1000, 3), nullptr, true);
  ASSERT_TRUE(blob.ok());
  uint32_t good = blob->stored_crc();
  blob->set_crc(0x12345678);
  EXPECT_EQ(blob->stored_crc(), 0x12345678u);
  EXPECT_TRUE(CheckBlobHeader(blob->raw(), true).IsCorruption());
  blob->set_crc(blob->ComputeCrc());
  EXPECT_EQ(blob->stored_crc(), good);
  auto raw = blob->raw();
  raw[9] ^= 0xff;
  ASSERT_TRUE(RewriteBlobCrc(raw).ok());
  EXPECT_EQ(raw, blob->raw());
  std::vector<uint8_t> junk(20, 0);
  EXPECT_EQ(RewriteBlobCrc(junk).code(), Code::kInvalidArgument);
}

TEST(DataBlobTest, VerifyUnencryptedChunk) {
  std::vector<uint8_t> data(70000, 'q');
  Digest digest = Sha256(data);
  auto blob = DataBlob::Encode(data, nullptr, true);
  ASSERT_TRUE(blob.ok());
  std::vector<uint8_t> scratch;
  EXPECT_TRUE(VerifyUnencryptedChunk(blob->raw(), data.size(), digest, &scratch).ok());
  Status len = VerifyUnencryptedChunk(blob->raw(), data.size() + 1, digest, &scratch);
  EXPECT_TRUE(len.IsCorruption());
  EXPECT_EQ(len.message(), "detected chunk with wrong length (70000 != 70001)");
  Digest other = digest;
  other[0] ^= 1;
  Status dig = VerifyUnencryptedChunk(blob->raw(), data.size(), other, &scratch);
  EXPECT_TRUE(dig.IsCorruption());
  EXPECT_EQ(dig.message(), "detected chunk with wrong digest.");
  std::array<uint8_t, 32> key{};
  CryptConfig crypt(key);
  auto enc = DataBlob::Encode(data, &crypt, true);
  ASSERT_TRUE(enc.ok());
  EXPECT_EQ(VerifyUnencryptedChunk(enc->raw(), data.size(), digest, &scratch).code(),
            Code::kInvalidArgument);
}

}  // namespace
}  // namespace pbskit
