// vzdump file names, time stamps and decompressing streams; ImportVzdump on a generated VMA.
#include "pbskit/importers/vzdump_import.h"

#include <gtest/gtest.h>
#include <zlib.h>
#include <zstd.h>

#include <cstring>

#include "pbskit/datastore/locks.h"
#include "pbskit/formats/vma.h"
#include "test_support.h"

namespace pbskit {
namespace {

TEST(VzdumpNameTest, ParsesVmAndContainerNames) {
  auto n = ParseVzdumpFileName("vzdump-qemu-100-2024_01_31-12_34_56.vma.zst");
  ASSERT_TRUE(n.ok()) << n.status().ToString();
  EXPECT_EQ(n->type, "qemu");
  EXPECT_EQ(n->vmid, "100");
  EXPECT_EQ(n->stamp, "2024_01_31-12_34_56");
  EXPECT_EQ(n->format, "vma");
  EXPECT_EQ(n->compression, VzdumpCompression::kZstd);
  EXPECT_EQ(n->log_name, "vzdump-qemu-100-2024_01_31-12_34_56.log");
  auto c = ParseVzdumpFileName("vzdump-lxc-123456789-2020_02_29-00_00_00.tar.lzo");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->format, "tar");
  EXPECT_EQ(c->compression, VzdumpCompression::kLzo);
  auto plain = ParseVzdumpFileName("vzdump-qemu-999-2024_01_31-12_34_56.vma");
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(plain->compression, VzdumpCompression::kNone);
}

TEST(VzdumpNameTest, RejectsOtherNames) {
  for (const char* bad : {"test.vma.gz", "vzdump-qemu-10-2024_01_31-12_34_56.vma",
                          "vzdump-qemu-0100-2024_01_31-12_34_56.vma",
                          "vzdump-qemu-100-2024_01_31-12_34.vma",
                          "vzdump-qemu-100-2024_01_31-12_34_56.vma.bz3"}) {
    auto n = ParseVzdumpFileName(bad);
    EXPECT_FALSE(n.ok()) << bad;
    if (!n.ok()) {
      EXPECT_NE(n.status().ToString().find(bad), std::string::npos);
    }
  }
}

TEST(VzdumpNameTest, StampUsesTheGivenTimeZone) {
  auto utc = VzdumpStampToEpoch("2024_01_31-12_00_00", "UTC");
  ASSERT_TRUE(utc.ok());
  EXPECT_EQ(*utc, 1706702400);
  // Vienna is UTC+1 in winter, UTC+2 in summer.
  auto vie = VzdumpStampToEpoch("2024_01_31-12_00_00", "Europe/Vienna");
  ASSERT_TRUE(vie.ok());
  EXPECT_EQ(*vie, 1706702400 - 3600);
  auto summer = VzdumpStampToEpoch("2024_07_01-12_00_00", "Europe/Vienna");
  ASSERT_TRUE(summer.ok());
  EXPECT_EQ(*summer, 1719835200 - 7200);  // 2024-07-01T12:00:00Z minus 2 h
  EXPECT_FALSE(VzdumpStampToEpoch("2024_13_31-12_00_00", "UTC").ok());
}

std::vector<uint8_t> ReadAll(ByteSource& s) {
  std::vector<uint8_t> out, buf(1000);
  for (;;) {
    auto n = s.Read(buf);
    EXPECT_TRUE(n.ok()) << n.status().ToString();
    if (!n.ok() || *n == 0) break;
    out.insert(out.end(), buf.begin(), buf.begin() + static_cast<long>(*n));
  }
  return out;
}

TEST(VzdumpStreamTest, DetectsAndDecompresses) {
  test::TempDir tmp;
  std::vector<uint8_t> data(300000);
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>(i * 7 / 13);
  // zstd: two concatenated frames.
  std::vector<uint8_t> z;
  for (int part = 0; part < 2; ++part) {
    std::vector<uint8_t> f(ZSTD_compressBound(data.size() / 2));
    f.resize(ZSTD_compress(f.data(), f.size(), data.data() + part * data.size() / 2,
                           data.size() / 2, 1));
    z.insert(z.end(), f.begin(), f.end());
  }
  test::WriteFile(tmp / "a.zst", z);
  VzdumpCompression c;
  uint64_t counted = 0;
  auto s = OpenVzdumpStream(tmp / "a.zst", &c, &counted);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(c, VzdumpCompression::kZstd);
  EXPECT_EQ(ReadAll(**s), data);
  EXPECT_EQ(counted, z.size());

  // gzip: two members.
  {
    gzFile gz = gzopen((tmp / "b.gz").c_str(), "wb");
    gzwrite(gz, data.data(), 100000);
    gzclose(gz);
    gz = gzopen((tmp / "b.gz").c_str(), "ab");
    gzwrite(gz, data.data() + 100000, static_cast<unsigned>(data.size() - 100000));
    gzclose(gz);
  }
  auto g = OpenVzdumpStream(tmp / "b.gz", &c, nullptr);
  ASSERT_TRUE(g.ok());
  EXPECT_EQ(c, VzdumpCompression::kGzip);
  EXPECT_EQ(ReadAll(**g), data);

  test::WriteFile(tmp / "c.vma", data);
  auto p = OpenVzdumpStream(tmp / "c.vma", &c, nullptr);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(c, VzdumpCompression::kNone);
  EXPECT_EQ(ReadAll(**p), data);
}

TEST(VzdumpStreamTest, TruncatedCompressionIsCorruption) {
  test::TempDir tmp;
  std::vector<uint8_t> data(200000, 5);
  std::vector<uint8_t> z(ZSTD_compressBound(data.size()));
  z.resize(ZSTD_compress(z.data(), z.size(), data.data(), data.size(), 1));
  z.resize(z.size() - 3);
  test::WriteFile(tmp / "t.zst", z);
  VzdumpCompression c;
  auto s = OpenVzdumpStream(tmp / "t.zst", &c, nullptr);
  ASSERT_TRUE(s.ok());
  std::vector<uint8_t> buf(1 << 20);
  Status st;
  for (;;) {
    auto n = (*s)->Read(buf);
    if (!n.ok()) {
      st = n.status();
      break;
    }
    if (*n == 0) break;
  }
  EXPECT_TRUE(st.IsCorruption()) << st.ToString();
  EXPECT_NE(st.ToString().find("truncated"), std::string::npos);
}

TEST(VzdumpStreamTest, MissingFileIsNotFound) {
  VzdumpCompression c;
  auto s = OpenVzdumpStream("/nonexistent/vzdump.vma", &c, nullptr);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), Code::kNotFound);
}

TEST(VzdumpImportTest, ImportsAndAbortsOnDamage) {
  test::TempDir tmp;
  SetLockRootForTesting(tmp / "locks");
  auto store = DataStore::Create(tmp / "store", "store");
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  std::vector<VmaClusterInput> in;
  for (uint32_t c = 0; c < 70; ++c)
    in.push_back({1, 69 - c, static_cast<uint16_t>(c % 3 ? 0xffff : 0),
                  c % 3 ? std::vector<uint8_t>(kVmaClusterSize, static_cast<uint8_t>(c)) :
                          std::vector<uint8_t>()});
  VmaWriteOptions o;
  o.ctime = 1600000000;
  auto vma = EncodeVma({}, {{1, "drive-sata0", 70 * kVmaClusterSize}}, in, o);
  ASSERT_TRUE(vma.ok());
  test::WriteFile(tmp / "disk.vma", *vma);
  VzdumpImportOptions opt;
  opt.backup_id = "500";  // the name is not a vzdump name: time from the header
  auto r = ImportVzdump(*store, tmp / "disk.vma", opt);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->dir.ToString(), "vm/500/2020-09-13T12:26:40Z");
  EXPECT_EQ(r->archives, std::vector<std::string>{"drive-sata0.img.fidx"});
  EXPECT_EQ(r->chunks_new, 2u);

  // Cut inside the data: refused, the snapshot is gone; salvage keeps what is there.
  auto cut = *vma;
  cut.resize(cut.size() - 100000);
  test::WriteFile(tmp / "cut.vma", cut);
  opt.backup_time = 1600000100;
  auto bad = ImportVzdump(*store, tmp / "cut.vma", opt);
  ASSERT_FALSE(bad.ok());
  EXPECT_TRUE(bad.status().IsCorruption()) << bad.status().ToString();
  auto snaps = (*store)->ListSnapshots({}, BackupGroup{BackupType::kVm, "500"});
  ASSERT_TRUE(snaps.ok());
  EXPECT_EQ(snaps->size(), 1u);
  opt.salvage = true;
  auto salvaged = ImportVzdump(*store, tmp / "cut.vma", opt);
  ASSERT_TRUE(salvaged.ok()) << salvaged.status().ToString();
  EXPECT_FALSE(salvaged->gaps.empty());
  EXPECT_NE(salvaged->damage.find("intact up to byte"), std::string::npos);
  auto notes = (*store)->GetSnapshotNotes({}, salvaged->dir);
  ASSERT_TRUE(notes.ok());
  EXPECT_NE(notes->find("Imported with --salvage from cut.vma"), std::string::npos) << *notes;
  SetLockRootForTesting("");
}

}  // namespace
}  // namespace pbskit
