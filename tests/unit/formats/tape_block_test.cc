// Block layer: the pbs-tape test vectors (spec TAPE.md §3.5) and the reader's error cases.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "pbskit/formats/crypto.h"
#include "pbskit/formats/tape/blocked_stream.h"

namespace pbskit::tape {
namespace {

std::vector<uint8_t> WriteStream(const std::vector<uint8_t>& data, bool incomplete = false) {
  std::vector<uint8_t> out;
  BufferTapeWriter dev(&out);
  {
    BlockedWriter w(&dev);
    EXPECT_TRUE(w.Write(data).ok());
    auto leom = w.Finish(incomplete);
    EXPECT_TRUE(leom.ok());
    EXPECT_FALSE(*leom);
  }
  EXPECT_EQ(dev.filemarks(), 1u);
  return out;
}

Result<std::vector<uint8_t>> ReadStream(const std::vector<uint8_t>& tape) {
  BufferTapeReader dev(tape);
  BlockedReader r;
  PBSKIT_ASSIGN_OR_RETURN(auto kind, BlockedReader::Open(&dev, &r));
  if (kind != BlockedReader::OpenKind::kStream) return Status::NotFound("no stream");
  return r.ReadToEnd();
}

std::vector<uint8_t> Bytes(const std::string& s) { return {s.begin(), s.end()}; }

TEST(TapeBlock, EmptyStreamIsOneEndBlock) {
  auto tape = WriteStream({});
  ASSERT_EQ(tape.size(), kBlockSize);
  EXPECT_EQ(tape[8], kBlockFlagEndOfStream);
  EXPECT_EQ(tape[9] | tape[10] | tape[11], 0);
  auto data = ReadStream(tape);
  ASSERT_TRUE(data.ok()) << data.status().ToString();
  EXPECT_TRUE(data->empty());
}

TEST(TapeBlock, AbcVectorAndOneByteReads) {
  auto tape = WriteStream(Bytes("ABC"));
  ASSERT_EQ(tape.size(), kBlockSize);
  const std::vector<uint8_t> head = {0xdc, 0xbd, 0xaf, 0xca, 0xeb, 0xa0, 0xa5, 0x28, 0x01, 0x03,
                                     0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x41, 0x42, 0x43, 0x00};
  EXPECT_EQ(std::vector<uint8_t>(tape.begin(), tape.begin() + 20), head);
  for (size_t i = 20; i < tape.size(); ++i) ASSERT_EQ(tape[i], 0) << i;

  BufferTapeReader dev(tape);
  BlockedReader r;
  auto kind = BlockedReader::Open(&dev, &r);
  ASSERT_TRUE(kind.ok());
  ASSERT_EQ(*kind, BlockedReader::OpenKind::kStream);
  uint8_t c = 0;
  std::string got;
  for (int i = 0; i < 3; ++i) {
    auto n = r.Read(std::span<uint8_t>(&c, 1));
    ASSERT_TRUE(n.ok());
    ASSERT_EQ(*n, 1u);
    got.push_back(static_cast<char>(c));
  }
  EXPECT_EQ(got, "ABC");
  EXPECT_EQ(*r.Read(std::span<uint8_t>(&c, 1)), 0u);
  EXPECT_EQ(*r.Read(std::span<uint8_t>(&c, 1)), 0u);
  EXPECT_TRUE(*r.HasEndMarker());
  EXPECT_FALSE(*r.IsIncomplete());
}

TEST(TapeBlock, FiveMiBRandomIs21Blocks) {
  std::vector<uint8_t> data(5 * 1024 * 1024);
  RandomBytes(data);
  auto tape = WriteStream(data);
  EXPECT_EQ(tape.size(), 21u * kBlockSize);
  EXPECT_EQ(tape.size(), 5505024u);
  // sequence numbers rise from 0
  for (uint32_t i = 0; i < 21; ++i) {
    auto h = BlockHeader::Decode(std::span<const uint8_t>(tape).subspan(i * kBlockSize, 16));
    EXPECT_EQ(h.seq_nr, i);
    EXPECT_EQ(h.flags, i == 20 ? kBlockFlagEndOfStream : 0);
    EXPECT_EQ(h.size, i == 20 ? 320u : kBlockPayloadSize);
  }
  auto back = ReadStream(tape);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(*back, data);
}

TEST(TapeBlock, ExactBlockBoundaryAddsEmptyEndBlock) {
  std::vector<uint8_t> data(kBlockPayloadSize, 0x5a);
  auto tape = WriteStream(data, /*incomplete=*/true);
  ASSERT_EQ(tape.size(), 2 * kBlockSize);
  auto h = BlockHeader::Decode(std::span<const uint8_t>(tape).subspan(kBlockSize, 16));
  EXPECT_EQ(h.size, 0u);
  EXPECT_EQ(h.flags, kBlockFlagEndOfStream | kBlockFlagIncomplete);
  BufferTapeReader dev(tape);
  BlockedReader r;
  ASSERT_EQ(*BlockedReader::Open(&dev, &r), BlockedReader::OpenKind::kStream);
  EXPECT_EQ(*r.ReadToEnd(), data);
  EXPECT_TRUE(*r.IsIncomplete());
}

TEST(TapeBlock, EmptyTapeIsEndOfFile) {
  std::vector<uint8_t> empty;
  BufferTapeReader dev(empty);
  BlockedReader r;
  auto kind = BlockedReader::Open(&dev, &r);
  ASSERT_TRUE(kind.ok());
  EXPECT_EQ(*kind, BlockedReader::OpenKind::kEndOfFile);
}

TEST(TapeBlock, StreamWithoutEndMarker) {
  std::vector<uint8_t> tape;
  BufferTapeWriter dev(&tape);
  {
    BlockedWriter w(&dev);
    std::vector<uint8_t> data(kBlockPayloadSize, 1);
    ASSERT_TRUE(w.Write(data).ok());
  }  // dropped without Finish
  EXPECT_EQ(dev.filemarks(), 1u);
  ASSERT_EQ(tape.size(), kBlockSize);
  auto data = ReadStream(tape);
  ASSERT_FALSE(data.ok());
  EXPECT_EQ(data.status().code(), Code::kCorruption);
  EXPECT_EQ(data.status().message(), "detected tape stream without end marker");

  BufferTapeReader dev2(tape);
  BlockedReader r;
  ASSERT_EQ(*BlockedReader::Open(&dev2, &r), BlockedReader::OpenKind::kStream);
  auto skipped = r.SkipData();
  ASSERT_TRUE(skipped.ok()) << skipped.status().ToString();
  EXPECT_EQ(*skipped, kBlockPayloadSize);
  EXPECT_FALSE(*r.HasEndMarker());
  EXPECT_FALSE(r.IsIncomplete().ok());
}

TEST(TapeBlock, WrongMagic) {
  auto tape = WriteStream(Bytes("hello"));
  tape[0] ^= 0xff;
  auto data = ReadStream(tape);
  ASSERT_FALSE(data.ok());
  EXPECT_EQ(data.status().code(), Code::kCorruption);
  EXPECT_EQ(data.status().message(),
            "got tape block with unknown magic number - not written by PBS or incompatible LTO "
            "version");
}

TEST(TapeBlock, WrongSequenceNumber) {
  std::vector<uint8_t> data(kBlockPayloadSize + 10, 7);
  auto tape = WriteStream(data);
  tape[kBlockSize + 12] = 5;  // second block claims seq 5
  auto back = ReadStream(tape);
  ASSERT_FALSE(back.ok());
  EXPECT_EQ(back.status().message(), "detected tape block with wrong sequence number (1 != 5)");
}

TEST(TapeBlock, BadSizes) {
  auto tape = WriteStream(Bytes("x"));
  auto big = tape;
  big[9] = 0xff;
  big[10] = 0xff;
  big[11] = 0xff;
  auto r1 = ReadStream(big);
  ASSERT_FALSE(r1.ok());
  EXPECT_EQ(r1.status().message(),
            "detected tape block with wrong payload size (16777215 > 262128)");
  auto zero = tape;
  zero[8] = 0;  // not an end block
  zero[9] = 0;
  auto r2 = ReadStream(zero);
  ASSERT_FALSE(r2.ok());
  EXPECT_EQ(r2.status().message(), "detected tape block with zero payload size");
}

TEST(TapeBlock, TruncatedStream) {
  std::vector<uint8_t> data(kBlockPayloadSize * 2, 3);
  auto tape = WriteStream(data);
  tape.resize(kBlockSize + 1000);
  auto back = ReadStream(tape);
  ASSERT_FALSE(back.ok());
  EXPECT_EQ(back.status().code(), Code::kIoError);
  EXPECT_NE(back.status().message().find("got wrong block size"), std::string::npos);
}

TEST(TapeBlock, DataAfterEndMarker) {
  auto one = WriteStream(Bytes("a"));
  auto two = one;
  two.insert(two.end(), one.begin(), one.end());
  auto back = ReadStream(two);
  ASSERT_FALSE(back.ok());
  EXPECT_EQ(back.status().message(), "detected tape block after block-stream end marker");
}

TEST(TapeBlock, LeomIsStickyThenNoSpace) {
  std::vector<uint8_t> tape;
  BufferTapeWriter dev(&tape, /*max_blocks=*/2);
  BlockedWriter w(&dev);
  std::vector<uint8_t> block(kBlockPayloadSize, 9);
  EXPECT_FALSE(*w.Write(block));
  EXPECT_FALSE(*w.Write(block));
  EXPECT_TRUE(*w.Write(block));                                           // LEOM, still written
  EXPECT_TRUE(*w.Write(Bytes("z")));                                      // sticky
  EXPECT_TRUE(*w.Write(std::vector<uint8_t>(kBlockPayloadSize - 1, 1)));  // 4th block: LEOM
  auto fail = w.Write(block);
  ASSERT_FALSE(fail.ok());
  EXPECT_EQ(fail.status().code(), Code::kIoError);
  EXPECT_EQ(tape.size(), 4 * kBlockSize);
}

}  // namespace
}  // namespace pbskit::tape
