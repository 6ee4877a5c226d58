// ArchiveReader, RestoreArchive, CheckManifestKey, DecodeAndCheckChunk and ServerArchiveName on
// a store written by SnapshotWriter: plain, encrypted and sign-only snapshots with fixed and
// dynamic indexes and blobs, random access through the index accessors, the end of an archive,
// and the failures a reader must report (missing / corrupt chunk, wrong key, damaged manifest
// entries). One store is shared by the suite; tests that damage it use snapshots of their own.
#include "pbskit/datastore/archive_reader.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <dirent.h>
#include <memory>
#include <random>

#include "pbskit/datastore/locks.h"
#include "pbskit/datastore/snapshot_writer.h"
#include "pbskit/formats/crypto.h"
#include "pbskit/formats/data_blob.h"
#include "test_support.h"

namespace pbskit {
namespace {

constexpr uint64_t kChunk = 64 * 1024;  // small fixed chunks: many boundaries, little data

std::vector<uint8_t> MakeData(size_t size, uint32_t seed) {
  std::vector<uint8_t> v(size);
  std::mt19937 rng(seed);
  for (size_t i = 0; i < size; ++i) {
    // Random bytes with runs of a repeated pattern so the buzhash chunker finds boundaries.
    v[i] = (i / 50000) % 3 == 1 ? static_cast<uint8_t>(i % 251) : static_cast<uint8_t>(rng());
  }
  return v;
}

bool Exists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

std::array<uint8_t, 32> Key(uint8_t salt) {
  std::array<uint8_t, 32> k;
  for (int i = 0; i < 32; ++i) k[i] = static_cast<uint8_t>(i * 7 + salt);
  return k;
}

BackupDir Dir(const char* id, int64_t t) { return BackupDir{BackupGroup{BackupType::kVm, id}, t}; }

// Data and names of every snapshot the suite writes.
struct Written {
  std::vector<uint8_t> image;    // drive-scsi0.img.fidx
  std::vector<uint8_t> stream;   // root.pxar.didx
  std::vector<uint8_t> config;   // qemu-server.conf.blob
};

class ArchiveReaderTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    tmp_ = new test::TempDir();
    SetLockRootForTesting(*tmp_ / "locks");
    DataStoreOptions o;
    o.sync_level = SyncLevel::kNone;
    auto s = DataStore::Create(*tmp_ / "store", "store1", PosixFilesystem(), o);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    store_ = new std::shared_ptr<DataStore>(*s);
    crypt_ = new CryptConfig(Key(1));
    other_crypt_ = new CryptConfig(Key(2));
    written_ = new std::map<std::string, Written>();
    // Plain, encrypted and sign-only snapshots with all three archive kinds.
    Write("100", 1000, CryptMode::kNone, 11);
    Write("101", 1000, CryptMode::kEncrypt, 12);
    Write("102", 1000, CryptMode::kSignOnly, 13);
    // Snapshots the failure tests damage (each has data of its own).
    Write("200", 1000, CryptMode::kNone, 20);
    Write("201", 1000, CryptMode::kNone, 21);
    Write("202", 1000, CryptMode::kNone, 22);
    Write("203", 1000, CryptMode::kNone, 23);
    Write("204", 1000, CryptMode::kEncrypt, 24);
  }
  static void TearDownTestSuite() {
    delete written_;
    delete other_crypt_;
    delete crypt_;
    delete store_;
    SetLockRootForTesting("");
    delete tmp_;
  }

  static void Write(const char* id, int64_t time, CryptMode mode, uint32_t seed) {
    SnapshotWriterOptions o;
    o.dir = Dir(id, time);
    o.crypt_mode = mode;
    o.crypt = mode == CryptMode::kNone ? nullptr : crypt_;
    auto w = SnapshotWriter::Begin(*store_, o);
    ASSERT_TRUE(w.ok()) << w.status().ToString();
    Written data;
    // 17 fixed chunks, the last one short; ~1.5 MiB of stream; a small config file.
    data.image = MakeData(16 * kChunk + 777, seed);
    data.stream = MakeData(1536 * 1024 + 5, seed + 1000);
    std::string conf = "boot: order=scsi0\ncores: 2\nname: vm" + std::string(id) + "\n";
    data.config.assign(conf.begin(), conf.end());
    MemoryByteSource image(data.image), stream(data.stream);
    auto a = (*w)->AddFixedIndex("drive-scsi0.img.fidx", image, kChunk);
    ASSERT_TRUE(a.ok()) << a.status().ToString();
    auto b = (*w)->AddDynamicIndex("root.pxar.didx", stream, 64 * 1024);
    ASSERT_TRUE(b.ok()) << b.status().ToString();
    auto c = (*w)->AddBlob("qemu-server.conf.blob", data.config);
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    auto m = (*w)->Finish();
    ASSERT_TRUE(m.ok()) << m.status().ToString();
    (*written_)[id] = std::move(data);
  }

  static DataStore& store() { return **store_; }
  static const Written& W(const char* id) { return written_->at(id); }

  static Result<std::unique_ptr<ArchiveReader>> Open(const char* id, const std::string& archive,
                                                     const CryptConfig* crypt) {
    return ArchiveReader::Open(*store_, {}, Dir(id, 1000), archive, crypt);
  }

  // Reads a whole archive; `out` gets what the sink received even when the read fails.
  static Status ReadInto(ArchiveReader& r, std::vector<uint8_t>* out,
                         ArchiveReadStats* stats = nullptr) {
    return r.ReadAll(
        [&](std::span<const uint8_t> d) {
          out->insert(out->end(), d.begin(), d.end());
          return Status::OK();
        },
        stats);
  }

  // Reads [offset, offset + len) of an index archive through the reader's index (FindChunk,
  // chunk_range) and DecodeAndCheckChunk, the way a random-access reader does.
  static Result<std::vector<uint8_t>> ReadAt(const ArchiveReader& r, uint64_t offset,
                                             uint64_t len, const CryptConfig* crypt) {
    const FixedIndex* f = r.fixed_index();
    const DynamicIndex* d = r.dynamic_index();
    std::vector<uint8_t> out, raw, plain;
    const uint64_t end = offset + len;
    while (offset < end) {
      size_t i = f ? f->FindChunk(offset) : d->FindChunk(offset);
      if (i == (f ? f->chunk_count() : d->chunk_count()))
        return Status::InvalidArgument("offset " + std::to_string(offset) + " past the end");
      auto [start, stop] = f ? f->chunk_range(i) : d->chunk_range(i);
      const Digest& digest = f ? f->digest(i) : d->entry(i).digest;
      PBSKIT_RETURN_IF_ERROR(store().chunk_store().LoadChunkInto(digest, &raw));
      PBSKIT_RETURN_IF_ERROR(DecodeAndCheckChunk(raw, digest, stop - start,
                                                 r.file_info().crypt_mode, crypt, &plain));
      uint64_t take = std::min(stop, end) - offset;
      out.insert(out.end(), plain.begin() + (offset - start),
                 plain.begin() + (offset - start + take));
      offset += take;
    }
    return out;
  }

  static test::TempDir* tmp_;
  static std::shared_ptr<DataStore>* store_;
  static CryptConfig* crypt_;
  static CryptConfig* other_crypt_;
  static std::map<std::string, Written>* written_;
};

test::TempDir* ArchiveReaderTest::tmp_ = nullptr;
std::shared_ptr<DataStore>* ArchiveReaderTest::store_ = nullptr;
CryptConfig* ArchiveReaderTest::crypt_ = nullptr;
CryptConfig* ArchiveReaderTest::other_crypt_ = nullptr;
std::map<std::string, Written>* ArchiveReaderTest::written_ = nullptr;

TEST(ServerArchiveNameTest, ClientNamesMapToServerNames) {
  EXPECT_EQ(ServerArchiveName("drive-scsi0.img"), "drive-scsi0.img.fidx");
  EXPECT_EQ(ServerArchiveName("drive-scsi0.img.fidx"), "drive-scsi0.img.fidx");
  EXPECT_EQ(ServerArchiveName("root.pxar"), "root.pxar.didx");
  EXPECT_EQ(ServerArchiveName("root.mpxar"), "root.mpxar.didx");
  EXPECT_EQ(ServerArchiveName("root.ppxar"), "root.ppxar.didx");
  EXPECT_EQ(ServerArchiveName("catalog.pcat1"), "catalog.pcat1.didx");
  EXPECT_EQ(ServerArchiveName("root.pxar.didx"), "root.pxar.didx");
  EXPECT_EQ(ServerArchiveName("qemu-server.conf"), "qemu-server.conf.blob");
  EXPECT_EQ(ServerArchiveName("qemu-server.conf.blob"), "qemu-server.conf.blob");
  EXPECT_EQ(ServerArchiveName("notes"), "notes.blob");
}

TEST_F(ArchiveReaderTest, PlainFixedIndexReadsBackExactly) {
  auto r = Open("100", "drive-scsi0.img.fidx", nullptr);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const ArchiveReader& reader = **r;
  EXPECT_EQ(reader.type(), ArchiveType::kFixedIndex);
  ASSERT_NE(reader.fixed_index(), nullptr);
  EXPECT_EQ(reader.dynamic_index(), nullptr);
  EXPECT_EQ(reader.index_size(), W("100").image.size());
  EXPECT_EQ(reader.file_info().filename, "drive-scsi0.img.fidx");
  EXPECT_EQ(reader.file_info().crypt_mode, CryptMode::kNone);
  EXPECT_EQ(reader.manifest().backup_id, "100");
  EXPECT_EQ(reader.fixed_index()->chunk_count(), 17u);

  std::vector<uint8_t> out;
  ArchiveReadStats stats;
  ASSERT_TRUE(ReadInto(**r, &out, &stats).ok());
  EXPECT_TRUE(out == W("100").image);
  EXPECT_EQ(stats.chunks, 17u);
  EXPECT_EQ(stats.decoded_bytes, W("100").image.size());
  uint64_t raw = 0;
  for (size_t i = 0; i < 17; ++i) {
    auto st = store().chunk_store().StatChunk(reader.fixed_index()->digest(i));
    ASSERT_TRUE(st.ok());
    raw += static_cast<uint64_t>(st->st_size);
  }
  EXPECT_EQ(stats.raw_bytes, raw);
  // A second ReadAll reads the archive again; stats accumulate.
  out.clear();
  ASSERT_TRUE(ReadInto(**r, &out, &stats).ok());
  EXPECT_TRUE(out == W("100").image);
  EXPECT_EQ(stats.chunks, 34u);
}

TEST_F(ArchiveReaderTest, PlainDynamicIndexAndBlobReadBackExactly) {
  auto r = Open("100", "root.pxar.didx", nullptr);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ((*r)->type(), ArchiveType::kDynamicIndex);
  ASSERT_NE((*r)->dynamic_index(), nullptr);
  EXPECT_EQ((*r)->fixed_index(), nullptr);
  EXPECT_EQ((*r)->index_size(), W("100").stream.size());
  EXPECT_GT((*r)->dynamic_index()->chunk_count(), 3u);  // the chunker did cut the stream
  std::vector<uint8_t> out;
  ArchiveReadStats stats;
  ASSERT_TRUE(ReadInto(**r, &out, &stats).ok());
  EXPECT_TRUE(out == W("100").stream);
  EXPECT_EQ(stats.chunks, (*r)->dynamic_index()->chunk_count());
  EXPECT_EQ(stats.decoded_bytes, W("100").stream.size());

  auto b = Open("100", "qemu-server.conf.blob", nullptr);
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  EXPECT_EQ((*b)->type(), ArchiveType::kBlob);
  EXPECT_EQ((*b)->index_size(), std::nullopt);
  EXPECT_EQ((*b)->fixed_index(), nullptr);
  EXPECT_EQ((*b)->dynamic_index(), nullptr);
  out.clear();
  ArchiveReadStats bstats;
  ASSERT_TRUE(ReadInto(**b, &out, &bstats).ok());
  EXPECT_TRUE(out == W("100").config);
  EXPECT_EQ(bstats.chunks, 0u);
  EXPECT_EQ(bstats.raw_bytes, (*b)->file_info().size);
  EXPECT_EQ(bstats.decoded_bytes, W("100").config.size());
}

TEST_F(ArchiveReaderTest, EncryptedArchivesNeedTheRightKey) {
  for (const char* archive : {"drive-scsi0.img.fidx", "root.pxar.didx", "qemu-server.conf.blob"}) {
    SCOPED_TRACE(archive);
    auto r = Open("101", archive, crypt_);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ((*r)->file_info().crypt_mode, CryptMode::kEncrypt);
    std::vector<uint8_t> out;
    ASSERT_TRUE(ReadInto(**r, &out).ok());
    const Written& w = W("101");
    EXPECT_TRUE(out == (std::string(archive) == "drive-scsi0.img.fidx" ? w.image
                        : std::string(archive) == "root.pxar.didx" ? w.stream
                                                                   : w.config));

    auto no_key = Open("101", archive, nullptr);
    ASSERT_FALSE(no_key.ok());
    EXPECT_EQ(no_key.status().code(), Code::kInvalidArgument);
    EXPECT_EQ(no_key.status().message(),
              "missing key - manifest was created with key " + crypt_->FingerprintString());

    auto wrong = Open("101", archive, other_crypt_);
    ASSERT_FALSE(wrong.ok());
    EXPECT_EQ(wrong.status().code(), Code::kInvalidArgument);
    EXPECT_EQ(wrong.status().message().rfind("wrong key - manifest's key " +
                                                 crypt_->FingerprintString() +
                                                 " does not match provided key " +
                                                 other_crypt_->FingerprintString(),
                                             0),
              0u)
        << wrong.status().message();
  }
  // The encrypted chunk files hold no plaintext: the digests are keyed.
  auto r = Open("101", "drive-scsi0.img.fidx", crypt_);
  ASSERT_TRUE(r.ok());
  const Digest& d0 = (*r)->fixed_index()->digest(0);
  std::span<const uint8_t> first(W("101").image.data(), kChunk);
  EXPECT_NE(d0, Sha256(first));
  EXPECT_EQ(d0, crypt_->ComputeDigest(first));
}

TEST_F(ArchiveReaderTest, SignOnlyArchivesAreSignedButPlain) {
  auto r = Open("102", "drive-scsi0.img.fidx", crypt_);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ((*r)->file_info().crypt_mode, CryptMode::kSignOnly);
  ASSERT_TRUE((*r)->manifest().signature.has_value());
  std::vector<uint8_t> out;
  ASSERT_TRUE(ReadInto(**r, &out).ok());
  EXPECT_TRUE(out == W("102").image);
  // Plain chunks with keyed digests: the chunk decodes without the key, but the digest check
  // needs it, exactly as proxmox-backup-client reads sign-only backups.
  auto no_key = Open("102", "drive-scsi0.img.fidx", nullptr);
  ASSERT_FALSE(no_key.ok());
  EXPECT_EQ(no_key.status().code(), Code::kInvalidArgument);
  auto wrong = Open("102", "qemu-server.conf.blob", other_crypt_);
  ASSERT_FALSE(wrong.ok());
  EXPECT_EQ(wrong.status().code(), Code::kInvalidArgument);
}

TEST_F(ArchiveReaderTest, CheckManifestKeyRules) {
  auto plain = store().LoadManifest({}, Dir("100", 1000));
  auto enc = store().LoadManifest({}, Dir("101", 1000));
  ASSERT_TRUE(plain.ok() && enc.ok());
  // Unsigned, no fingerprint: with or without a key.
  EXPECT_TRUE(CheckManifestKey(*plain, nullptr).ok());
  EXPECT_TRUE(CheckManifestKey(*plain, crypt_).ok());
  EXPECT_TRUE(CheckManifestKey(*enc, crypt_).ok());
  EXPECT_EQ(CheckManifestKey(*enc, nullptr).code(), Code::kInvalidArgument);
  EXPECT_EQ(CheckManifestKey(*enc, other_crypt_).code(), Code::kInvalidArgument);
  // A signature that does not match the signed content.
  Manifest tampered = *enc;
  tampered.files[0].size += 1;
  Status st = CheckManifestKey(tampered, crypt_);
  EXPECT_EQ(st.code(), Code::kCorruption);
  EXPECT_EQ(st.message(), "wrong signature in manifest");
  // A fingerprint that is not one.
  Manifest bad_fp = *enc;
  bad_fp.unprotected["key-fingerprint"] = "not-a-fingerprint";
  EXPECT_EQ(CheckManifestKey(bad_fp, crypt_).code(), Code::kCorruption);
}

TEST_F(ArchiveReaderTest, RandomAccessAcrossChunkBoundaries) {
  auto fidx = Open("100", "drive-scsi0.img.fidx", nullptr);
  auto didx = Open("100", "root.pxar.didx", nullptr);
  ASSERT_TRUE(fidx.ok() && didx.ok());
  const auto& image = W("100").image;
  const auto& stream = W("100").stream;
  struct Case {
    uint64_t offset, len;
  };
  // Inside one chunk, across one boundary, across several, the first and the last byte.
  for (Case c : {Case{5, 100}, Case{kChunk - 10, 20}, Case{kChunk * 3 - 1, kChunk * 2 + 2},
                 Case{0, 1}, Case{image.size() - 1, 1}, Case{16 * kChunk - 3, 3 + 777}}) {
    SCOPED_TRACE(c.offset);
    auto got = ReadAt(**fidx, c.offset, c.len, nullptr);
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    EXPECT_TRUE(std::equal(got->begin(), got->end(), image.begin() + c.offset));
    EXPECT_EQ(got->size(), c.len);
  }
  const DynamicIndex& d = *(*didx)->dynamic_index();
  uint64_t b1 = d.entry(0).end, b2 = d.entry(1).end;
  for (Case c : {Case{b1 - 1, 2}, Case{b1 - 100, b2 - b1 + 200}, Case{0, stream.size()},
                 Case{stream.size() - 1, 1}}) {
    SCOPED_TRACE(c.offset);
    auto got = ReadAt(**didx, c.offset, c.len, nullptr);
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    EXPECT_TRUE(std::equal(got->begin(), got->end(), stream.begin() + c.offset));
    EXPECT_EQ(got->size(), c.len);
  }
  // Encrypted archives the same way, with the key.
  auto enc = Open("101", "drive-scsi0.img.fidx", crypt_);
  ASSERT_TRUE(enc.ok());
  auto got = ReadAt(**enc, kChunk - 7, 14, crypt_);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_TRUE(std::equal(got->begin(), got->end(), W("101").image.begin() + kChunk - 7));
}

TEST_F(ArchiveReaderTest, TheEndOfTheArchive) {
  auto fidx = Open("100", "drive-scsi0.img.fidx", nullptr);
  auto didx = Open("100", "root.pxar.didx", nullptr);
  ASSERT_TRUE(fidx.ok() && didx.ok());
  const FixedIndex& f = *(*fidx)->fixed_index();
  const DynamicIndex& d = *(*didx)->dynamic_index();
  // The last fixed chunk is short and ends exactly at the image size.
  auto [s, e] = f.chunk_range(f.chunk_count() - 1);
  EXPECT_EQ(e, W("100").image.size());
  EXPECT_EQ(e - s, 777u);
  EXPECT_EQ(d.chunk_range(d.chunk_count() - 1).second, W("100").stream.size());
  // Offsets at or past the end belong to no chunk.
  EXPECT_EQ(f.FindChunk(f.size()), f.chunk_count());
  EXPECT_EQ(f.FindChunk(f.size() - 1), f.chunk_count() - 1);
  EXPECT_EQ(d.FindChunk(d.size()), d.chunk_count());
  EXPECT_EQ(d.FindChunk(d.size() - 1), d.chunk_count() - 1);
  EXPECT_FALSE(ReadAt(**fidx, f.size() - 1, 2, nullptr).ok());
  EXPECT_FALSE(ReadAt(**didx, d.size(), 1, nullptr).ok());
  // The last chunk checked against a wrong (full-chunk) length is refused.
  std::vector<uint8_t> raw, plain;
  ASSERT_TRUE(store().chunk_store().LoadChunkInto(f.digest(f.chunk_count() - 1), &raw).ok());
  Status st = DecodeAndCheckChunk(raw, f.digest(f.chunk_count() - 1), kChunk, CryptMode::kNone,
                                  nullptr, &plain);
  EXPECT_EQ(st.code(), Code::kCorruption);
  EXPECT_NE(st.message().find("wrong length (65536 != 777)"), std::string::npos) << st.message();
}

TEST_F(ArchiveReaderTest, RepeatedChunksAreReadEachTime) {
  SnapshotWriterOptions o;
  o.dir = Dir("300", 1000);
  auto w = SnapshotWriter::Begin(*store_, o);
  ASSERT_TRUE(w.ok());
  std::vector<uint8_t> zeros(5 * kChunk, 0);
  MemoryByteSource src(zeros);
  ASSERT_TRUE((*w)->AddFixedIndex("disk.img.fidx", src, kChunk).ok());
  ASSERT_TRUE((*w)->Finish().ok());
  auto r = ArchiveReader::Open(*store_, {}, o.dir, "disk.img.fidx", nullptr);
  ASSERT_TRUE(r.ok());
  std::vector<uint8_t> out;
  ArchiveReadStats stats;
  ASSERT_TRUE(ReadInto(**r, &out, &stats).ok());
  EXPECT_TRUE(out == zeros);
  EXPECT_EQ(stats.chunks, 5u);
  EXPECT_EQ(stats.decoded_bytes, zeros.size());
}

TEST_F(ArchiveReaderTest, OpenErrors) {
  auto missing_snapshot = ArchiveReader::Open(*store_, {}, Dir("100", 999), "drive-scsi0.img.fidx",
                                              nullptr);
  EXPECT_EQ(missing_snapshot.status().code(), Code::kNotFound);
  auto missing_archive = Open("100", "drive-scsi1.img.fidx", nullptr);
  EXPECT_EQ(missing_archive.status().code(), Code::kNotFound);
  EXPECT_EQ(missing_archive.status().message(),
            "manifest does not contain file 'drive-scsi1.img.fidx'");
  auto manifest = Open("100", "index.json.blob", nullptr);
  EXPECT_EQ(manifest.status().code(), Code::kInvalidArgument);
  auto hostile = Open("100", "../101/qemu-server.conf.blob", nullptr);
  EXPECT_FALSE(hostile.ok());
}

TEST_F(ArchiveReaderTest, SinkErrorStopsTheRead) {
  auto r = Open("100", "drive-scsi0.img.fidx", nullptr);
  ASSERT_TRUE(r.ok());
  int calls = 0;
  Status st = (*r)->ReadAll([&](std::span<const uint8_t>) {
    return ++calls == 3 ? Status::IoError("disk full") : Status::OK();
  });
  EXPECT_EQ(st.code(), Code::kIoError);
  EXPECT_EQ(st.message(), "disk full");
  EXPECT_EQ(calls, 3);
}

TEST_F(ArchiveReaderTest, MissingChunk) {
  auto r = Open("200", "drive-scsi0.img.fidx", nullptr);
  ASSERT_TRUE(r.ok());
  const Digest d = (*r)->fixed_index()->digest(5);
  const std::string path = store().chunk_store().ChunkPath(d);
  ASSERT_EQ(::unlink(path.c_str()), 0);
  std::vector<uint8_t> out;
  Status st = ReadInto(**r, &out);
  EXPECT_EQ(st.code(), Code::kNotFound);
  EXPECT_EQ(st.message(), "chunk " + ToHex(d) + ": missing in chunk store (" + path + ")");
  // Everything before the missing chunk was delivered, nothing after it.
  ASSERT_EQ(out.size(), 5 * kChunk);
  EXPECT_TRUE(std::equal(out.begin(), out.end(), W("200").image.begin()));
  // A restore leaves neither the target nor its temporary file.
  const std::string target = *tmp_ / "restore-missing.img";
  Status rs = RestoreArchive(**r, target);
  EXPECT_EQ(rs.code(), Code::kNotFound);
  EXPECT_FALSE(Exists(target));
  DIR* dir = ::opendir(tmp_->path().c_str());
  ASSERT_NE(dir, nullptr);
  while (struct dirent* e = ::readdir(dir))
    EXPECT_EQ(std::string(e->d_name).find("restore-missing.img.tmp_"), std::string::npos);
  ::closedir(dir);
  // Other archives of the store are not affected.
  auto other = Open("100", "drive-scsi0.img.fidx", nullptr);
  out.clear();
  EXPECT_TRUE(ReadInto(**other, &out).ok());
}

TEST_F(ArchiveReaderTest, CorruptChunk) {
  auto r = Open("201", "root.pxar.didx", nullptr);
  ASSERT_TRUE(r.ok());
  const Digest d = (*r)->dynamic_index()->entry(1).digest;
  const std::string path = store().chunk_store().ChunkPath(d);
  auto bytes = test::ReadFile(path);
  bytes[bytes.size() / 2] ^= 0x10;  // payload bit: the CRC no longer matches
  test::WriteFile(path, bytes);
  std::vector<uint8_t> out;
  Status st = ReadInto(**r, &out);
  EXPECT_EQ(st.code(), Code::kCorruption);
  EXPECT_EQ(st.message().rfind("chunk " + ToHex(d) + ": ", 0), 0u) << st.message();
  EXPECT_EQ(out.size(), (*r)->dynamic_index()->entry(0).end);
  // The chunk file is left alone (readers never rename or write).
  EXPECT_TRUE(Exists(path));
  EXPECT_FALSE(Exists(path + ".0.bad"));
}

TEST_F(ArchiveReaderTest, ChunkCarryingAnotherDigestsData) {
  auto r = Open("203", "drive-scsi0.img.fidx", nullptr);
  ASSERT_TRUE(r.ok());
  const FixedIndex& f = *(*r)->fixed_index();
  // Chunk 2's file replaced by chunk 3's (valid blob, valid CRC, wrong content).
  auto other = store().chunk_store().LoadChunk(f.digest(3));
  ASSERT_TRUE(other.ok());
  test::WriteFile(store().chunk_store().ChunkPath(f.digest(2)), *other);
  std::vector<uint8_t> out;
  Status st = ReadInto(**r, &out);
  EXPECT_EQ(st.code(), Code::kCorruption);
  EXPECT_EQ(st.message(), "chunk " + ToHex(f.digest(2)) + ": detected chunk with wrong digest.");
}

TEST_F(ArchiveReaderTest, DamagedManifestEntries) {
  const BackupDir dir = Dir("202", 1000);
  auto m = store().LoadManifest({}, dir);
  ASSERT_TRUE(m.ok());
  const Manifest good = *m;
  auto store_manifest = [&](const Manifest& mm) {
    auto lock = store().LockSnapshot({}, dir);
    ASSERT_TRUE(lock.ok());
    ASSERT_TRUE(store().StoreManifest({}, dir, mm).ok());
  };
  Manifest bad = good;
  for (auto& f : bad.files)
    if (f.filename == "drive-scsi0.img.fidx") f.size += 1;
  store_manifest(bad);
  auto r = Open("202", "drive-scsi0.img.fidx", nullptr);
  EXPECT_EQ(r.status().code(), Code::kCorruption);
  EXPECT_EQ(r.status().message(),
            "wrong size for file 'drive-scsi0.img.fidx' (" +
                std::to_string(W("202").image.size() + 1) + " != " +
                std::to_string(W("202").image.size()) + ")");

  bad = good;
  for (auto& f : bad.files)
    if (f.filename == "root.pxar.didx") f.csum[0] ^= 1;
  store_manifest(bad);
  r = Open("202", "root.pxar.didx", nullptr);
  EXPECT_EQ(r.status().code(), Code::kCorruption);
  EXPECT_EQ(r.status().message(), "wrong checksum for file 'root.pxar.didx'");
  store_manifest(good);
  EXPECT_TRUE(Open("202", "root.pxar.didx", nullptr).ok());

  // A blob file changed on disk no longer matches its manifest checksum.
  const std::string blob = store().SnapshotPath({}, dir) + "/qemu-server.conf.blob";
  auto raw = test::ReadFile(blob);
  raw.back() ^= 1;
  test::WriteFile(blob, raw);
  r = Open("202", "qemu-server.conf.blob", nullptr);
  EXPECT_EQ(r.status().code(), Code::kCorruption);
  EXPECT_EQ(r.status().message(), "wrong checksum for file 'qemu-server.conf.blob'");
}

TEST_F(ArchiveReaderTest, DecodeAndCheckChunkRules) {
  auto plain = Open("100", "drive-scsi0.img.fidx", nullptr);
  auto enc = Open("204", "drive-scsi0.img.fidx", crypt_);
  ASSERT_TRUE(plain.ok() && enc.ok());
  const Digest pd = (*plain)->fixed_index()->digest(0);
  const Digest ed = (*enc)->fixed_index()->digest(0);
  auto praw = store().chunk_store().LoadChunk(pd);
  auto eraw = store().chunk_store().LoadChunk(ed);
  ASSERT_TRUE(praw.ok() && eraw.ok());
  std::vector<uint8_t> out;
  EXPECT_TRUE(DecodeAndCheckChunk(*praw, pd, kChunk, CryptMode::kNone, nullptr, &out).ok());
  EXPECT_TRUE(std::equal(out.begin(), out.end(), W("100").image.begin()));
  EXPECT_TRUE(DecodeAndCheckChunk(*eraw, ed, kChunk, CryptMode::kEncrypt, crypt_, &out).ok());
  EXPECT_TRUE(std::equal(out.begin(), out.end(), W("204").image.begin()));
  // Crypt mode of the index against the chunk's magic, both ways.
  Status st = DecodeAndCheckChunk(*praw, pd, kChunk, CryptMode::kEncrypt, crypt_, &out);
  EXPECT_EQ(st.code(), Code::kCorruption);
  EXPECT_NE(st.message().find("Index and chunk CryptMode don't match (index encrypt, chunk none)"),
            std::string::npos)
      << st.message();
  st = DecodeAndCheckChunk(*eraw, ed, kChunk, CryptMode::kNone, crypt_, &out);
  EXPECT_EQ(st.code(), Code::kCorruption);
  // An encrypted chunk without key, and with the wrong key.
  st = DecodeAndCheckChunk(*eraw, ed, kChunk, CryptMode::kEncrypt, nullptr, &out);
  EXPECT_EQ(st.code(), Code::kInvalidArgument) << st.ToString();
  st = DecodeAndCheckChunk(*eraw, ed, kChunk, CryptMode::kEncrypt, other_crypt_, &out);
  EXPECT_EQ(st.code(), Code::kCorruption) << st.ToString();
  EXPECT_EQ(st.message().rfind("chunk " + ToHex(ed) + ": ", 0), 0u);
  // Wrong digest, truncated header, bad CRC.
  Digest wrong = pd;
  wrong[31] ^= 1;
  st = DecodeAndCheckChunk(*praw, wrong, kChunk, CryptMode::kNone, nullptr, &out);
  EXPECT_EQ(st.message(), "chunk " + ToHex(wrong) + ": detected chunk with wrong digest.");
  std::vector<uint8_t> shortraw(praw->begin(), praw->begin() + 6);
  EXPECT_EQ(DecodeAndCheckChunk(shortraw, pd, kChunk, CryptMode::kNone, nullptr, &out).code(),
            Code::kCorruption);
  std::vector<uint8_t> badcrc = *praw;
  badcrc[8] ^= 0xff;
  EXPECT_EQ(DecodeAndCheckChunk(badcrc, pd, kChunk, CryptMode::kNone, nullptr, &out).code(),
            Code::kCorruption);
}

TEST_F(ArchiveReaderTest, RestoreWritesTheExactBytes) {
  for (const char* archive : {"drive-scsi0.img.fidx", "root.pxar.didx", "qemu-server.conf.blob"}) {
    SCOPED_TRACE(archive);
    auto r = Open("101", archive, crypt_);
    ASSERT_TRUE(r.ok());
    const std::string target = *tmp_ / (std::string("restored-") + archive);
    ArchiveReadStats stats;
    ASSERT_TRUE(RestoreArchive(**r, target, &stats).ok());
    const Written& w = W("101");
    const auto& want = std::string(archive) == "drive-scsi0.img.fidx" ? w.image
                       : std::string(archive) == "root.pxar.didx"     ? w.stream
                                                                      : w.config;
    EXPECT_TRUE(test::ReadFile(target) == want);
    EXPECT_EQ(stats.decoded_bytes, want.size());
    struct stat st;
    ASSERT_EQ(::stat(target.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0644u);
    // An existing target is never overwritten.
    Status again = RestoreArchive(**r, target);
    EXPECT_EQ(again.code(), Code::kAlreadyExists);
    EXPECT_TRUE(test::ReadFile(target) == want);
  }
}

TEST_F(ArchiveReaderTest, RestoreToStandardOutput) {
  auto r = Open("100", "qemu-server.conf.blob", nullptr);
  ASSERT_TRUE(r.ok());
  const std::string capture = *tmp_ / "stdout-capture";
  int fd = ::open(capture.c_str(), O_CREAT | O_TRUNC | O_WRONLY, 0600);
  ASSERT_GE(fd, 0);
  fflush(stdout);
  int saved = ::dup(1);
  ::dup2(fd, 1);
  Status st = RestoreArchive(**r, "-");
  ::dup2(saved, 1);
  ::close(saved);
  ::close(fd);
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_TRUE(test::ReadFile(capture) == W("100").config);
  EXPECT_FALSE(Exists(*tmp_ / "-"));
}

}  // namespace
}  // namespace pbskit
