// MediaContentHeader and label files: the label-file vector of TAPE.md §4, round trips, errors.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "pbskit/formats/tape/media_content.h"

namespace pbskit::tape {
namespace {

Uuid U(const char* s) { return *ParseUuid(s); }

TEST(TapeUuid, TextForms) {
  Uuid u = U("01020304-0506-0708-090a-0b0c0d0e0f10");
  EXPECT_EQ(u[0], 1);
  EXPECT_EQ(u[15], 0x10);
  EXPECT_EQ(UuidToString(u), "01020304-0506-0708-090a-0b0c0d0e0f10");
  EXPECT_EQ(*ParseUuid("0102030405060708090A0B0C0D0E0F10"), u);
  EXPECT_FALSE(ParseUuid("01020304-0506-0708-090a0b0c0d0e0f10-").ok());
  EXPECT_FALSE(ParseUuid("xyz").ok());
  Uuid r = RandomUuid();
  EXPECT_EQ(r[6] >> 4, 4);
  EXPECT_NE(r, RandomUuid());
}

TEST(TapeContentHeader, LabelFileVector) {
  MediaLabel label;
  label.uuid = U("11111111-2222-3333-4444-555555555555");
  label.label_text = "TAPE01";
  label.ctime = 1700000000;
  label.pool = "p1";  // the 117-byte JSON of the vector is the §5.1 example, pool included
  std::vector<uint8_t> tape;
  BufferTapeWriter dev(&tape);
  ASSERT_TRUE(
      WriteMediaLabelFile(&dev, label, 1700000000, U("01020304-0506-0708-090a-0b0c0d0e0f10")).ok());
  ASSERT_EQ(tape.size(), kBlockSize);
  const std::vector<uint8_t> want = {
      0xdc, 0xbd, 0xaf, 0xca, 0xeb, 0xa0, 0xa5, 0x28, 0x01, 0xa5, 0x00, 0x00, 0x00, 0x00,
      0x00, 0x00, 0x63, 0xee, 0x14, 0x9f, 0xcd, 0xf2, 0x9b, 0x0c, 0x2a, 0x05, 0xbf, 0x3c,
      0xb0, 0x30, 0xaa, 0x39, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a,
      0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10, 0x00, 0xf1, 0x53, 0x65, 0x00, 0x00, 0x00, 0x00,
      0x75, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x7b, 0x0a, 0x20, 0x20, 0x22, 0x63,
      0x74, 0x69, 0x6d, 0x65, 0x22, 0x3a, 0x20, 0x31, 0x37, 0x30};
  EXPECT_EQ(std::vector<uint8_t>(tape.begin(), tape.begin() + 80), want);
  std::string json(tape.begin() + 64, tape.begin() + 64 + 117);
  EXPECT_EQ(json,
            "{\n  \"ctime\": 1700000000,\n  \"label_text\": \"TAPE01\",\n  \"pool\": "
            "\"p1\",\n  \"uuid\": \"11111111-2222-3333-4444-555555555555\"\n}");

  BufferTapeReader in(tape);
  BlockedReader r;
  ASSERT_EQ(*BlockedReader::Open(&in, &r), BlockedReader::OpenKind::kStream);
  auto back = ReadMediaLabelFile(&r);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->uuid, label.uuid);
  EXPECT_EQ(back->label_text, "TAPE01");
  EXPECT_EQ(back->ctime, 1700000000);
  EXPECT_EQ(back->pool.value_or(""), "p1");
}

TEST(TapeContentHeader, MediaSetLabelRoundTripWithKeyConfig) {
  MediaSetLabel set;
  set.pool = "p1";
  set.uuid = U("aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee");
  set.seq_nr = 3;
  set.ctime = 1700000100;
  set.encryption_key_fingerprint = "00:11";
  set.key_config_json = "{\n  \"kdf\": null,\n  \"data\": \"AAAA\"\n}";
  std::vector<uint8_t> tape;
  BufferTapeWriter dev(&tape);
  ASSERT_TRUE(WriteMediaSetLabelFile(&dev, set, 1700000100).ok());
  BufferTapeReader in(tape);
  BlockedReader r;
  ASSERT_EQ(*BlockedReader::Open(&in, &r), BlockedReader::OpenKind::kStream);
  auto back = ReadMediaSetLabelFile(&r);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->pool, "p1");
  EXPECT_EQ(back->uuid, set.uuid);
  EXPECT_EQ(back->seq_nr, 3u);
  EXPECT_EQ(back->ctime, 1700000100);
  EXPECT_EQ(back->encryption_key_fingerprint.value_or(""), "00:11");
  EXPECT_NE(back->key_config_json.find("\"data\": \"AAAA\""), std::string::npos);
  EXPECT_FALSE(back->IsUnassigned());
  MediaSetLabel legacy;
  EXPECT_TRUE(legacy.IsUnassigned());
}

TEST(TapeContentHeader, LabelWithPoolSortedKeys) {
  MediaLabel label;
  label.uuid = U("11111111-2222-3333-4444-555555555555");
  label.label_text = "TAPE01";
  label.ctime = 1700000000;
  label.pool = "p1";
  EXPECT_EQ(label.ToJson(),
            "{\n  \"ctime\": 1700000000,\n  \"label_text\": \"TAPE01\",\n  \"pool\": \"p1\",\n"
            "  \"uuid\": \"11111111-2222-3333-4444-555555555555\"\n}");
  auto back = MediaLabel::FromJson(label.ToJson());
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->pool.value_or(""), "p1");
  auto bad = MediaLabel::FromJson("{\"uuid\": \"x\"}");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message().rfind("unable to parse drive label - ", 0), 0u);
}

TEST(TapeContentHeader, CheckErrors) {
  MediaContentHeader h;
  h.content_magic = kMediaLabelMagic;
  h.size = 10;
  EXPECT_TRUE(h.Check(kMediaLabelMagic, 1, kLabelMaxSize).ok());
  EXPECT_EQ(h.Check(kMediaSetLabelMagic, 1, kLabelMaxSize).message(),
            "MediaContentHeader: wrong content magic");
  h.size = 0;
  EXPECT_EQ(h.Check(kMediaLabelMagic, 1, kLabelMaxSize).message(),
            "MediaContentHeader: got unexpected size");
  auto raw = h.Encode();
  raw[0] ^= 1;
  EXPECT_EQ(MediaContentHeader::Decode(raw).Check(kMediaLabelMagic, 0, 1).message(),
            "MediaContentHeader: wrong magic");
  EXPECT_STREQ(ContentMagicName(kSnapshotArchiveMagic12), "snapshot archive v1.2");
}

TEST(TapeContentHeader, DataAfterLabelIsRefused) {
  MediaLabel label;
  label.uuid = RandomUuid();
  label.label_text = "T2";
  std::string json = label.ToJson();
  MediaContentHeader h;
  h.content_magic = kMediaLabelMagic;
  h.size = static_cast<uint32_t>(json.size());
  std::vector<uint8_t> tape;
  BufferTapeWriter dev(&tape);
  {
    BlockedWriter w(&dev);
    auto raw = h.Encode();
    ASSERT_TRUE(w.Write(raw).ok());
    std::string body = json + "junk";
    ASSERT_TRUE(w.Write(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(body.data()),
                                                 body.size()))
                    .ok());
    ASSERT_TRUE(w.Finish(false).ok());
  }
  BufferTapeReader in(tape);
  BlockedReader r;
  ASSERT_EQ(*BlockedReader::Open(&in, &r), BlockedReader::OpenKind::kStream);
  auto back = ReadMediaLabelFile(&r);
  ASSERT_FALSE(back.ok());
  EXPECT_EQ(back.status().message(), "got unexpected data after label");
}

}  // namespace
}  // namespace pbskit::tape
