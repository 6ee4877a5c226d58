// `pbskit import vzdump`: generated VMAs (zstd, gzip, plain; unordered clusters over several
// devices and chunks; side files) and the real truncated Proxmox VE sample (refused, then
// salvaged). Every import is checked with `pbskit verify` and by restoring the images.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <zlib.h>
#include <zstd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <random>

#include "pbskit/datastore/datastore.h"
#include "pbskit/formats/crypto.h"
#include "pbskit/formats/data_blob.h"
#include "pbskit/formats/fixed_index.h"
#include "pbskit/formats/hex.h"
#include "pbskit/formats/vma.h"
#include "test_support.h"

namespace pbskit {
namespace {

namespace fs = std::filesystem;

bool Contains(const std::string& text, const std::string& needle) {
  return text.find(needle) != std::string::npos;
}

std::vector<uint8_t> Zstd(const std::vector<uint8_t>& in) {
  std::vector<uint8_t> out(ZSTD_compressBound(in.size()));
  out.resize(ZSTD_compress(out.data(), out.size(), in.data(), in.size(), 3));
  return out;
}

void WriteGzip(const std::string& path, const std::vector<uint8_t>& data) {
  gzFile gz = gzopen(path.c_str(), "wb");
  ASSERT_NE(gz, nullptr);
  ASSERT_EQ(gzwrite(gz, data.data(), static_cast<unsigned>(data.size())),
            static_cast<int>(data.size()));
  gzclose(gz);
}

class ImportCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = tmp_ / "store1";
    auto r = Run({"datastore", "create", "store1", store_});
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  test::CommandResult Run(std::vector<std::string> args) {
    return test::RunCli(args, {"PBSKIT_CONFIG_DIR=" + (tmp_ / "etc"),
                               "PBSKIT_LOCK_ROOT=" + (tmp_ / "run/locks")});
  }
  std::string Restore(const std::string& snap, const std::string& archive) {
    std::string out = tmp_ / ("restored-" + std::to_string(restores_++));
    auto r = Run({"restore", "--store", "store1", snap, archive, out});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return out;
  }
  void ExpectVerifies() {
    auto r = Run({"verify", "--store", "store1"});
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  }

  test::TempDir tmp_;
  std::string store_;
  int restores_ = 0;
};

std::vector<uint8_t> Pattern(uint32_t seed) {
  std::vector<uint8_t> v(kVmaClusterSize);
  std::mt19937 rng(seed);
  for (auto& b : v) b = static_cast<uint8_t>(rng());
  return v;
}

TEST_F(ImportCliTest, SpecVectorWithSideFiles) {
  VmaWriteOptions o;
  o.ctime = 1700000000;
  std::string conf = "memory: 512\n";
  std::string fw = "[OPTIONS]\nenable: 1\n";
  std::vector<uint8_t> a(kVmaClusterSize, 0), b(kVmaClusterSize, 0);
  std::memset(a.data(), 'A', 4096);
  std::memset(b.data(), 'B', 4096);
  auto vma = EncodeVma({{"qemu-server.conf", {conf.begin(), conf.end()}},
                        {"qemu-server.fw", {fw.begin(), fw.end()}}},
                       {{1, "drive-scsi0", 69632}}, {{1, 1, 1, b}, {1, 0, 1, a}}, o);
  ASSERT_TRUE(vma.ok());
  const std::string base = "vzdump-qemu-100-2024_01_31-12_00_00";
  const std::string file = tmp_ / (base + ".vma.zst");
  test::WriteFile(file, Zstd(*vma));
  test::WriteText(file + ".notes", "nightly {{guestname}}\n");
  test::WriteText(tmp_ / (base + ".log"), "2024-01-31 12:00:00 INFO: Starting Backup of VM 100\n");
  test::WriteText(file + ".protected", "");

  auto r = Run({"import", "vzdump", file, "--store", "store1", "--time-zone", "UTC"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(Contains(r.out, "as vm/100/2024-01-31T12:00:00Z")) << r.out;
  EXPECT_TRUE(Contains(r.out, "compression: zstd")) << r.out;

  const std::string snap = "vm/100/2024-01-31T12:00:00Z";
  auto store = DataStore::Open(store_, "store1");
  ASSERT_TRUE(store.ok());
  auto dir = BackupDir::Parse(snap);
  ASSERT_TRUE(dir.ok());
  auto m = (*store)->LoadManifest({}, *dir);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  std::vector<std::string> names;
  for (const auto& f : m->files) names.push_back(f.filename);
  EXPECT_EQ(names, (std::vector<std::string>{"qemu-server.conf.blob", "fw.conf.blob",
                                             "drive-scsi0.img.fidx"}));
  const FileInfo* img = m->Lookup("drive-scsi0.img.fidx");
  ASSERT_NE(img, nullptr);
  EXPECT_EQ(img->size, 69632u);
  EXPECT_EQ(ToHex(img->csum), "29242e8703f9a067887bd080afa12d143d7f686196cfd3c6274aa99e7640eae5");

  EXPECT_EQ(test::Sha256Hex(test::ReadFile(Restore(snap, "drive-scsi0.img"))),
            "455fb1ca4559c4deeaf889c83064388a0d8cb3c301e98cecd7fc93b5af951aaa");
  EXPECT_EQ(test::ReadText(Restore(snap, "qemu-server.conf")), conf);
  EXPECT_EQ(test::ReadText(Restore(snap, "fw.conf")), fw);
  auto notes = (*store)->GetSnapshotNotes({}, *dir);
  ASSERT_TRUE(notes.ok());
  EXPECT_EQ(*notes, "nightly {{guestname}}\n");
  auto prot = (*store)->IsProtected({}, *dir);
  ASSERT_TRUE(prot.ok());
  EXPECT_TRUE(*prot);
  auto log = test::ReadFile((*store)->SnapshotPath({}, *dir) + "/client.log.blob");
  auto blob = DataBlob::FromRaw(log);
  ASSERT_TRUE(blob.ok());
  auto text = blob->Decode(nullptr);
  ASSERT_TRUE(text.ok());
  EXPECT_EQ(std::string(text->begin(), text->end()),
            "2024-01-31 12:00:00 INFO: Starting Backup of VM 100\n");
  ExpectVerifies();

  // The same file again: the snapshot exists.
  auto again = Run({"import", "vzdump", file, "--store", "store1", "--time-zone", "UTC"});
  EXPECT_EQ(again.exit_code, 1);
  EXPECT_TRUE(Contains(again.err, "Error: ")) << again.err;
}

// Two devices, clusters shuffled across extents, several 4 MiB chunks, a short last chunk,
// all-zero clusters; gzip-compressed; a second import reuses every chunk.
TEST_F(ImportCliTest, UnorderedClustersOverSeveralChunks) {
  const uint64_t size1 = 9 * 1024 * 1024 + 4096 + 100;  // 3 chunks, last one short
  const uint64_t size2 = 8 * 1024 * 1024;               // 2 chunks, the second all zero
  std::vector<uint8_t> img1(size1, 0), img2(size2, 0);
  std::vector<VmaClusterInput> in;
  auto add = [&](uint8_t dev, std::vector<uint8_t>& img, uint32_t c, bool data) {
    VmaClusterInput ci{dev, c, 0, {}};
    if (data) {
      ci.data = Pattern(dev * 100000 + c);
      ci.mask = 0xffff;
      uint64_t off = uint64_t{c} * kVmaClusterSize;
      uint64_t n = std::min<uint64_t>(kVmaClusterSize, img.size() - off);
      if (n < kVmaClusterSize) std::fill(ci.data.begin() + n, ci.data.end(), 0);
      std::memcpy(img.data() + off, ci.data.data(), n);
    }
    in.push_back(std::move(ci));
  };
  const uint32_t n1 = static_cast<uint32_t>((size1 + kVmaClusterSize - 1) / kVmaClusterSize);
  for (uint32_t c = 0; c < n1; ++c) add(1, img1, c, c % 7 != 3);
  for (uint32_t c = 0; c < 128; ++c) add(2, img2, c, c < 40 && c % 5 == 0);
  std::mt19937 rng(42);
  std::shuffle(in.begin(), in.end(), rng);
  VmaWriteOptions o;
  auto vma = EncodeVma({}, {{1, "drive-virtio0", size1}, {2, "drive-virtio1", size2}}, in, o);
  ASSERT_TRUE(vma.ok());
  const std::string file = tmp_ / "vzdump-qemu-9001-2023_06_01-08_30_00.vma.gz";
  WriteGzip(file, *vma);

  auto r = Run({"import", "vzdump", file, "--store", "store1", "--time-zone", "UTC",
                "--output-format", "json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = boost::json::parse(r.out).as_array().at(0).as_object();
  EXPECT_EQ(j.at("compression").as_string(), "gzip");
  EXPECT_EQ(j.at("backup-time").as_int64(), 1685608200);
  EXPECT_EQ(j.at("image-bytes").as_int64(), static_cast<int64_t>(size1 + size2));

  const std::string snap = "vm/9001/2023-06-01T08:30:00Z";
  EXPECT_EQ(test::ReadFile(Restore(snap, "drive-virtio0.img")), img1);
  EXPECT_EQ(test::ReadFile(Restore(snap, "drive-virtio1.img")), img2);
  ExpectVerifies();

  // Same data as a newer snapshot: nothing new to store.
  const std::string file2 = tmp_ / "vzdump-qemu-9001-2023_06_02-08_30_00.vma";
  test::WriteFile(file2, *vma);
  auto r2 = Run({"import", "vzdump", file2, "--store", "store1", "--time-zone", "UTC",
                 "--output-format", "json"});
  ASSERT_EQ(r2.exit_code, 0) << r2.err;
  auto j2 = boost::json::parse(r2.out).as_array().at(0).as_object();
  EXPECT_EQ(j2.at("compression").as_string(), "none");
  EXPECT_EQ(j2.at("chunks-new").as_int64(), 0);
  EXPECT_GT(j2.at("chunks-reused").as_int64(), 0);
}

TEST_F(ImportCliTest, TruncatedInsideDataIsRefusedWithoutLeftovers) {
  VmaWriteOptions o;
  std::vector<VmaClusterInput> in;
  for (uint32_t c = 0; c < 80; ++c) in.push_back({1, c, 0xffff, Pattern(c)});
  auto vma = EncodeVma({}, {{1, "drive-scsi0", 80 * kVmaClusterSize}}, in, o);
  ASSERT_TRUE(vma.ok());
  vma->resize(vma->size() - 70000);
  const std::string file = tmp_ / "vzdump-qemu-100-2024_01_31-12_00_00.vma";
  test::WriteFile(file, *vma);
  auto r = Run({"import", "vzdump", file, "--store", "store1"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(Contains(r.err, "refusing to import")) << r.err;
  EXPECT_TRUE(Contains(r.err, "intact up to byte")) << r.err;
  EXPECT_FALSE(fs::exists(store_ + "/vm/100")) << "partial snapshot left behind";
}

// A container archive name whose content is no tar at all: refused, nothing left behind.
TEST_F(ImportCliTest, ContainerArchiveThatIsNoTarIsRefused) {
  const std::string file = tmp_ / "vzdump-lxc-101-2024_01_31-12_00_00.tar.zst";
  test::WriteText(file, "x");
  auto r = Run({"import", "vzdump", file, "--store", "store1"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(Contains(r.err, "is not a tar archive")) << r.err;
  EXPECT_FALSE(fs::exists(store_ + "/ct/101"));
}

// The real truncated PVE sample: refused, then salvaged; the restored ranges match the
// fixture README.
TEST_F(ImportCliTest, RealTruncatedSampleRefusedThenSalvaged) {
  const std::string file = tmp_ / "vzdump-qemu-100-2020_05_01-10_00_00.vma.gz";
  fs::copy_file(test::Fixture("vma/test.vma.gz"), file);

  auto refused = Run({"import", "vzdump", file, "--store", "store1", "--time-zone", "UTC"});
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_TRUE(Contains(refused.err, "missing 163724 clusters of device 1 (drive-scsi0)"))
      << refused.err;
  EXPECT_TRUE(Contains(refused.err, "intact up to byte 538112")) << refused.err;
  EXPECT_FALSE(fs::exists(store_ + "/vm/100/2020-05-01T10:00:00Z"));

  auto r = Run({"import", "vzdump", file, "--store", "store1", "--time-zone", "UTC", "--salvage"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(Contains(r.out, "salvaged damaged archive")) << r.out;

  auto store = DataStore::Open(store_, "store1");
  ASSERT_TRUE(store.ok());
  auto dir = BackupDir::Parse("vm/100/2020-05-01T10:00:00Z");
  ASSERT_TRUE(dir.ok());
  auto notes = (*store)->GetSnapshotNotes({}, *dir);
  ASSERT_TRUE(notes.ok());
  EXPECT_TRUE(Contains(*notes, "drive-scsi0: clusters 23-31 missing")) << *notes;

  auto fidx_bytes = test::ReadFile((*store)->SnapshotPath({}, *dir) + "/drive-scsi0.img.fidx");
  auto fidx = FixedIndex::Parse(fidx_bytes, "drive-scsi0.img.fidx");
  ASSERT_TRUE(fidx.ok());
  EXPECT_EQ(fidx->size(), 10737418240u);
  ASSERT_EQ(fidx->chunk_count(), 2560u);
  for (size_t i = 1; i < fidx->chunk_count(); ++i)
    ASSERT_EQ(ToHex(fidx->digest(i)),
              "bb9f8df61474d25e71fa00722318cd387396ca1736605e1248821cc0de3d3af8")
        << "chunk " << i;
  auto raw = (*store)->chunk_store().LoadChunk(fidx->digest(0));
  ASSERT_TRUE(raw.ok());
  auto blob = DataBlob::FromRaw(*raw);
  ASSERT_TRUE(blob.ok());
  auto chunk = blob->Decode(nullptr);
  ASSERT_TRUE(chunk.ok());
  ASSERT_EQ(chunk->size(), 4194304u);
  EXPECT_EQ(ToHex(Sha256(std::span<const uint8_t>(chunk->data(), 65536))),
            "cf4adcf1933a8c9a0a3ff5588e1400e6beea8a32212b3a35ba08c7b08e4e6b1f");
  EXPECT_TRUE(std::all_of(chunk->begin() + 65536, chunk->begin() + 1048576,
                          [](uint8_t b) { return b == 0; }));
  EXPECT_EQ(ToHex(Sha256(std::span<const uint8_t>(chunk->data() + 1048576, 1507328 - 1048576))),
            "8c989a3aa590795fa919ccb7d1f28651c85f8a0d9ba00ab22cdd9fb760fa7955");
  EXPECT_TRUE(std::all_of(chunk->begin() + 1507328, chunk->end(), [](uint8_t b) { return !b; }));
  auto conf = test::ReadFile(Restore("vm/100/2020-05-01T10:00:00Z", "qemu-server.conf"));
  EXPECT_EQ(test::Sha256Hex(conf),
            "383cc8e9ab35d6a56b9a83b502263942253c807216c83eccae89a23ef040f950");
  ExpectVerifies();
}

}  // namespace
}  // namespace pbskit
