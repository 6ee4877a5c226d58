// Reading pxar archives from a datastore: DidxPxarSource over the real PBS 3.2.4 fixture store,
// archive-name resolution, finding entries, listings from the metadata, and the tar / tar.zst /
// zip export of whole archives and of directories (read back with libarchive).
#include "pbskit/datastore/pxar_archive.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <map>

#include "../importers/pxar_store_util.h"
#include "pbskit/datastore/pxar_export.h"
#include "pbskit/datastore/snapshot_writer.h"
#include "pbskit/formats/crypto.h"
#include "pbskit/formats/hex.h"
#include "pbskit/formats/pxar/encoder.h"
#include "archive_members.h"
#include "test_support.h"

namespace pbskit {
namespace {

using pbskit::test::TempDir;

constexpr char kCtSnapshot[] = "ct/101/2024-05-01T11:00:00Z";
constexpr char kCtPxarSha[] = "80bd34b06226ac8bd829616679cd7c444c8297f3a9a5b827e5c58bfa420d00b5";

std::shared_ptr<DataStore> FixtureStore() {
  auto s = DataStore::Open(test::Fixture("pbs-3.2.4-datastore"), "store1");
  EXPECT_TRUE(s.ok()) << s.status().ToString();
  return s.ok() ? *s : nullptr;
}

BackupDir Dir(const std::string& s) {
  auto d = BackupDir::Parse(s);
  EXPECT_TRUE(d.ok()) << s;
  return *d;
}

std::vector<uint8_t> ReadAllFrom(pxar::PxarSource* src, size_t step) {
  std::vector<uint8_t> out, buf(step);
  for (;;) {
    auto n = src->Read(buf);
    EXPECT_TRUE(n.ok()) << n.status().ToString();
    if (!n.ok() || *n == 0) break;
    out.insert(out.end(), buf.begin(), buf.begin() + static_cast<long>(*n));
  }
  return out;
}

TEST(DidxPxarSource, ServesTheFixtureStreamByteExactInAnyReadSize) {
  auto store = FixtureStore();
  ASSERT_TRUE(store);
  auto idx = store->OpenDynamicIndex({}, Dir(kCtSnapshot), "root.pxar.didx");
  ASSERT_TRUE(idx.ok()) << idx.status().ToString();
  ASSERT_EQ(idx->chunk_count(), 7u);
  for (size_t step : {1u << 20, 4093u, 65536u}) {
    DidxPxarSource src(store->chunk_store(), *idx, CryptMode::kNone, nullptr, "root.pxar.didx");
    std::vector<uint8_t> all = ReadAllFrom(&src, step);
    EXPECT_EQ(all.size(), 475044u);
    EXPECT_EQ(ToHex(Sha256(all)), kCtPxarSha) << "read size " << step;
    EXPECT_EQ(src.chunks_loaded(), 7u);
  }
}

TEST(DidxPxarSource, SkipPassesWholeChunksWithoutLoadingThem) {
  auto store = FixtureStore();
  ASSERT_TRUE(store);
  auto idx = store->OpenDynamicIndex({}, Dir(kCtSnapshot), "root.pxar.didx");
  ASSERT_TRUE(idx.ok());
  DidxPxarSource whole(store->chunk_store(), *idx, CryptMode::kNone, nullptr, "a");
  std::vector<uint8_t> all = ReadAllFrom(&whole, 1 << 20);

  DidxPxarSource src(store->chunk_store(), *idx, CryptMode::kNone, nullptr, "a");
  std::vector<uint8_t> buf(100);
  ASSERT_TRUE(src.Read(buf).ok());  // chunk 0
  // Chunk 4 spans [236905, 324096): skip into its middle, past chunks 1-3.
  ASSERT_TRUE(src.Skip(250000 - 100).ok());
  auto n = src.Read(buf);
  ASSERT_TRUE(n.ok());
  ASSERT_EQ(*n, 100u);
  EXPECT_TRUE(std::equal(buf.begin(), buf.end(), all.begin() + 250000));
  EXPECT_EQ(src.chunks_loaded(), 2u);
  EXPECT_EQ(src.position(), 250100u);

  Status past = src.Skip(475044);
  EXPECT_EQ(past.code(), Code::kCorruption);
  EXPECT_NE(past.message().find("unexpected end"), std::string::npos) << past.ToString();
}

TEST(DidxPxarSource, DamagedChunkIsNamedInTheError) {
  TempDir tmp;
  test::CopyTree(test::Fixture("pbs-3.2.4-datastore"), tmp / "store");
  // Flip one payload byte of chunk 2 of ct/101's root.pxar (the CRC catches it).
  const std::string digest = "a153558903be2a7380770c02b9fbfff0d26d2f3956a3f7ff10a7ca1259adeff6";
  const std::string chunk = tmp / ("store/.chunks/a153/" + digest);
  std::vector<uint8_t> bytes = test::ReadFile(chunk);
  bytes[bytes.size() / 2] ^= 0x55;
  test::WriteFile(chunk, bytes);
  auto store = DataStore::Open(tmp / "store", "store1");
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  auto idx = (*store)->OpenDynamicIndex({}, Dir(kCtSnapshot), "root.pxar.didx");
  ASSERT_TRUE(idx.ok());
  DidxPxarSource src((*store)->chunk_store(), *idx, CryptMode::kNone, nullptr, "root.pxar.didx");
  std::vector<uint8_t> buf(1 << 20);
  Status st;
  for (;;) {
    auto n = src.Read(buf);
    if (!n.ok()) {
      st = n.status();
      break;
    }
    if (*n == 0) break;
  }
  EXPECT_EQ(st.code(), Code::kCorruption) << st.ToString();
  EXPECT_NE(st.message().find("root.pxar.didx"), std::string::npos) << st.ToString();
  EXPECT_NE(st.message().find("chunk " + digest), std::string::npos) << st.ToString();

  // A missing chunk is NotFound and names the chunk file.
  std::filesystem::remove(chunk);
  DidxPxarSource src2((*store)->chunk_store(), *idx, CryptMode::kNone, nullptr, "x");
  ASSERT_TRUE(src2.Skip(175830).ok());
  auto n = src2.Read(buf);
  ASSERT_FALSE(n.ok());
  EXPECT_EQ(n.status().code(), Code::kNotFound);
  EXPECT_NE(n.status().message().find(digest), std::string::npos) << n.status().ToString();
}

Manifest ManifestWith(std::initializer_list<const char*> files) {
  Manifest m;
  for (const char* f : files) {
    FileInfo fi;
    fi.filename = f;
    m.files.push_back(fi);
  }
  return m;
}

TEST(ResolvePxarArchiveNames, FollowsPbsGetPxarArchiveNames) {
  Manifest unified = ManifestWith({"root.pxar.didx", "catalog.pcat1.didx"});
  Manifest split = ManifestWith({"root.mpxar.didx", "root.ppxar.didx"});
  auto r = ResolvePxarArchiveNames(unified, "root.pxar");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->archive, "root.pxar.didx");
  EXPECT_FALSE(r->payload);
  for (const char* name : {"root.pxar", "root.pxar.didx", "root.mpxar", "root.ppxar.didx"}) {
    auto s = ResolvePxarArchiveNames(split, name);
    ASSERT_TRUE(s.ok()) << name << ": " << s.status().ToString();
    EXPECT_EQ(s->archive, "root.mpxar.didx") << name;
    EXPECT_EQ(s->payload.value_or(""), "root.ppxar.didx") << name;
  }
  EXPECT_EQ(ResolvePxarArchiveNames(unified, "other.pxar").status().code(), Code::kNotFound);
  EXPECT_EQ(ResolvePxarArchiveNames(unified, "root.mpxar").status().code(), Code::kNotFound);
  EXPECT_EQ(ResolvePxarArchiveNames(unified, "drive-scsi0.img").status().code(),
            Code::kInvalidArgument);
  EXPECT_TRUE(IsPxarArchiveName("root.ppxar.didx"));
  EXPECT_FALSE(IsPxarArchiveName("catalog.pcat1.didx"));
}

// A small tree encoded by the pxar encoder, stored unified (host/u) and split (host/s):
//   a/ f1, link1 (hardlink to a/f1), sub/ deep.txt
//   b/ big.bin, fifo, hl + hl2 (hardlinks to a/f1), sym -> ../a/f1
//   top.txt
class StoreArchiveTest : public ::testing::Test {
 protected:
  static pxar::Metadata Meta(uint64_t mode, int64_t mtime = 1700000000) {
    pxar::Metadata m;
    m.stat.mode = mode;
    m.stat.uid = 1000;
    m.stat.gid = 100;
    m.stat.mtime_secs = mtime;
    return m;
  }
  static std::span<const uint8_t> B(const std::string& s) {
    return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
  }
  static Status Encode(pxar::PxarSink* archive, pxar::PxarSink* payload) {
    using namespace pxar;
    PBSKIT_ASSIGN_OR_RETURN(auto enc, Encoder::Create(archive, payload, Meta(kModeIfdir | 0755)));
    PBSKIT_RETURN_IF_ERROR(enc->CreateDirectory("a", Meta(kModeIfdir | 0750)));
    PBSKIT_ASSIGN_OR_RETURN(LinkOffset f1,
                            enc->AddFile(Meta(kModeIfreg | 0644, 1700000001), "f1", B("hello\n")));
    PBSKIT_RETURN_IF_ERROR(enc->AddHardlink("link1", "a/f1", f1));
    PBSKIT_RETURN_IF_ERROR(enc->CreateDirectory("sub", Meta(kModeIfdir | 0700)));
    PBSKIT_RETURN_IF_ERROR(enc->AddFile(Meta(kModeIfreg | 0600), "deep.txt", B("deep\n")).status());
    PBSKIT_RETURN_IF_ERROR(enc->FinishDirectory());
    PBSKIT_RETURN_IF_ERROR(enc->FinishDirectory());
    PBSKIT_RETURN_IF_ERROR(enc->CreateDirectory("b", Meta(kModeIfdir | 0755)));
    PBSKIT_RETURN_IF_ERROR(enc->AddFile(Meta(kModeIfreg | 0640), "big.bin", B(*big_)).status());
    PBSKIT_RETURN_IF_ERROR(enc->AddFifo(Meta(kModeIfifo | 0640), "fifo"));
    PBSKIT_RETURN_IF_ERROR(enc->AddHardlink("hl", "a/f1", f1));
    PBSKIT_RETURN_IF_ERROR(enc->AddHardlink("hl2", "a/f1", f1));
    PBSKIT_RETURN_IF_ERROR(enc->AddSymlink(Meta(kModeIflnk | 0777), "sym", "../a/f1"));
    PBSKIT_RETURN_IF_ERROR(enc->FinishDirectory());
    PBSKIT_RETURN_IF_ERROR(enc->AddFile(Meta(kModeIfreg | 0644), "top.txt", B("top\n")).status());
    return enc->Finish();
  }
  static void SetUpTestSuite() {
    tmp_ = new TempDir();
    big_ = new std::string(test::Pattern(300000, 7));
    pxar::VectorSink unified, meta, payload;
    ASSERT_TRUE(Encode(&unified, nullptr).ok());
    ASSERT_TRUE(Encode(&meta, &payload).ok());
    auto store =
        test::OpenSmallStore(*tmp_ / "store", {unified.data(), meta.data(), payload.data()}, 65536);
    ASSERT_TRUE(store);
    store_ = new std::shared_ptr<DataStore>(store);
    auto write = [&](const char* dir, std::vector<std::pair<const char*, pxar::VectorSink*>> a) {
      SnapshotWriterOptions o;
      o.dir = Dir(dir);
      auto w = SnapshotWriter::Begin(store, o);
      ASSERT_TRUE(w.ok()) << w.status().ToString();
      for (auto& [name, sink] : a) {
        MemoryByteSource src(sink->data());
        ASSERT_TRUE((*w)->AddDynamicIndex(name, src, 65536).ok());
      }
      ASSERT_TRUE((*w)->Finish().ok());
    };
    write(kUnified, {{"root.pxar.didx", &unified}});
    write(kSplit, {{"root.mpxar.didx", &meta}, {"root.ppxar.didx", &payload}});
  }
  static void TearDownTestSuite() {
    delete store_;
    delete big_;
    delete tmp_;
  }

  static std::unique_ptr<StorePxarArchive> Open(const char* dir) {
    PxarOpenOptions o;
    o.decoder.report_directory_end = true;
    auto a = StorePxarArchive::Open(*store_, {}, Dir(dir), "root.pxar", nullptr, o);
    EXPECT_TRUE(a.ok()) << a.status().ToString();
    return a.ok() ? std::move(a).value() : nullptr;
  }
  static std::string Content(pxar::Decoder* dec) {
    std::string out;
    std::vector<uint8_t> buf(4096);
    for (;;) {
      auto n = dec->ReadContent(buf);
      EXPECT_TRUE(n.ok()) << n.status().ToString();
      if (!n.ok() || *n == 0) return out;
      out.append(reinterpret_cast<const char*>(buf.data()), *n);
    }
  }

  using Member = test::ArchiveMember;
  static std::map<std::string, Member> Members(const std::string& bytes) {
    return test::ArchiveMembers(bytes);
  }
  // The directory `path` of the archive of `dir` exported in `format` (null path: everything).
  static Result<std::string> Export(const char* dir, const char* path, PxarExportFormat format,
                                    bool with_reopen = true, PxarExportStats* stats = nullptr) {
    auto archive = Open(dir);
    if (!archive) return Status::Aborted("open failed");
    std::optional<pxar::Entry> top;
    if (path) {
      PBSKIT_ASSIGN_OR_RETURN(top, archive->Find(path));
      if (!top) return Status::NotFound(path);
    }
    PxarExportOptions o;
    o.format = format;
    StorePxarArchive* raw = archive.get();
    if (with_reopen) o.reopen = [raw] { return raw->Reopen(); };
    PBSKIT_ASSIGN_OR_RETURN(auto stream,
                            PxarExportStream::Open(archive->decoder(), top ? &*top : nullptr, o));
    std::string out, piece;
    for (bool more = true; more;) {
      PBSKIT_ASSIGN_OR_RETURN(more, stream->Next(&piece));
      out += piece;
    }
    if (stats) *stats = stream->stats();
    return out;
  }

  static constexpr const char* kUnified = "host/u/2024-06-01T00:00:00Z";
  static constexpr const char* kSplit = "host/s/2024-06-01T00:00:00Z";
  static TempDir* tmp_;
  static std::string* big_;
  static std::shared_ptr<DataStore>* store_;
};
TempDir* StoreArchiveTest::tmp_ = nullptr;
std::string* StoreArchiveTest::big_ = nullptr;
std::shared_ptr<DataStore>* StoreArchiveTest::store_ = nullptr;

TEST_F(StoreArchiveTest, FindReachesEntriesAndStopsAtTheEndOfTheirDirectory) {
  for (const char* dir : {kUnified, kSplit}) {
    auto a = Open(dir);
    ASSERT_TRUE(a);
    auto deep = a->Find("/a/sub/deep.txt");
    ASSERT_TRUE(deep.ok()) << deep.status().ToString();
    ASSERT_TRUE(deep->has_value());
    EXPECT_EQ((*deep)->kind, pxar::EntryKind::kFile);
    EXPECT_EQ(Content(a->decoder()), "deep\n");

    a = Open(dir);
    auto root = a->Find("/");
    ASSERT_TRUE(root.ok() && root->has_value());
    EXPECT_EQ((*root)->kind, pxar::EntryKind::kDirectory);

    a = Open(dir);
    auto missing = a->Find("/a/nope");
    ASSERT_TRUE(missing.ok()) << missing.status().ToString();
    EXPECT_FALSE(missing->has_value());
    // The search ended with directory a/: b/big.bin was never read.
    EXPECT_LT(a->chunks_loaded(), 3u) << dir;

    a = Open(dir);
    auto through = a->Find("/top.txt/x");
    EXPECT_EQ(through.status().code(), Code::kInvalidArgument);
    EXPECT_EQ(through.status().message(), "enter_directory() on a non-directory");
  }
}

TEST_F(StoreArchiveTest, ReopenFindsAHardlinkTarget) {
  auto a = Open(kSplit);
  ASSERT_TRUE(a);
  auto hl = a->Find("/b/hl");
  ASSERT_TRUE(hl.ok() && hl->has_value());
  EXPECT_EQ((*hl)->kind, pxar::EntryKind::kHardlink);
  EXPECT_EQ((*hl)->link_target, "a/f1");
  auto again = a->Reopen();
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  auto f1 = (*again)->Find("/" + (*hl)->link_target);
  ASSERT_TRUE(f1.ok() && f1->has_value());
  EXPECT_EQ(Content((*again)->decoder()), "hello\n");
}

TEST_F(StoreArchiveTest, MetadataListingOfDirectoriesAndOtherEntries) {
  auto l = ListPxarArchiveMetadata(*store_, {}, Dir(kSplit), "root.mpxar.didx", "/b", nullptr);
  ASSERT_TRUE(l.ok()) << l.status().ToString();
  EXPECT_EQ(l->archive, "root.mpxar.didx");
  std::string types;
  for (const PxarListEntry& e : l->entries) types += std::string(1, e.type) + e.name + " ";
  EXPECT_EQ(types, "fbig.bin pfifo hhl hhl2 lsym ");
  EXPECT_EQ(l->entries[0].size.value_or(0), 300000u);
  EXPECT_EQ(l->entries[0].path, "/b/big.bin");

  auto fifo = ListPxarArchiveMetadata(*store_, {}, Dir(kSplit), "root.pxar", "b/fifo", nullptr);
  ASSERT_TRUE(fifo.ok());
  EXPECT_FALSE(fifo->is_directory);
  EXPECT_EQ(fifo->kind_debug, "Fifo");
  auto file = ListPxarArchiveMetadata(*store_, {}, Dir(kUnified), "root.pxar", "/top.txt", nullptr);
  ASSERT_TRUE(file.ok());
  EXPECT_EQ(file->kind_debug.substr(0, 24), "File { size: 4, offset: ");
  EXPECT_NE(file->kind_debug.find("payload_offset: None }"), std::string::npos);
  auto split = ListPxarArchiveMetadata(*store_, {}, Dir(kSplit), "root.pxar", "/top.txt", nullptr);
  ASSERT_TRUE(split.ok());
  EXPECT_NE(split->kind_debug.find("payload_offset: Some("), std::string::npos);
  EXPECT_EQ(
      ListPxarArchiveMetadata(*store_, {}, Dir(kSplit), "root.pxar", "/c", nullptr).status().code(),
      Code::kNotFound);
}

TEST_F(StoreArchiveTest, ZipOfADirectoryCopiesHardlinkContentAndSkipsFifos) {
  PxarExportStats stats;
  auto zip = Export(kSplit, "/b", PxarExportFormat::kZip, true, &stats);
  ASSERT_TRUE(zip.ok()) << zip.status().ToString();
  EXPECT_EQ(zip->substr(0, 4), std::string("PK\x03\x04", 4));
  auto m = Members(*zip);
  std::string names;
  for (const auto& [name, member] : m) names += name + " ";
  EXPECT_EQ(names, "b b/big.bin b/hl b/hl2 b/sym ");
  EXPECT_EQ(m["b"].type, AE_IFDIR);
  EXPECT_EQ(m["b/big.bin"].content, *big_);
  EXPECT_EQ(m["b/big.bin"].perm, 0640u);
  EXPECT_EQ(m["b/big.bin"].mtime, 1700000000);
  EXPECT_EQ(m["b/hl"].type, AE_IFREG);
  EXPECT_EQ(m["b/hl"].content, "hello\n");
  EXPECT_EQ(m["b/hl"].mtime, 1700000001);  // the target's metadata
  EXPECT_EQ(m["b/hl2"].content, "hello\n");
  EXPECT_EQ(m["b/sym"].type, AE_IFLNK);
  EXPECT_EQ(m["b/sym"].symlink, "../a/f1");
  ASSERT_EQ(stats.warnings.size(), 1u);
  EXPECT_NE(stats.warnings[0].find("b/fifo"), std::string::npos);

  // Without a way to reopen the archive the hardlink content cannot be had.
  EXPECT_EQ(Export(kSplit, "/b", PxarExportFormat::kZip, false).status().code(),
            Code::kUnsupported);
}

TEST_F(StoreArchiveTest, TarOfADirectoryLinksInsideAndCopiesOutside) {
  auto tzst = Export(kUnified, "/b", PxarExportFormat::kTarZstd);
  ASSERT_TRUE(tzst.ok()) << tzst.status().ToString();
  EXPECT_EQ(tzst->substr(0, 4), std::string("\x28\xb5\x2f\xfd", 4));  // zstd frame magic
  auto m = Members(*tzst);
  std::string names;
  for (const auto& [name, member] : m) names += name + " ";
  EXPECT_EQ(names, "b b/big.bin b/fifo b/hl b/hl2 b/sym ");
  EXPECT_EQ(m["b/fifo"].type, AE_IFIFO);
  // a/f1 lies outside b/: its first link becomes a copy, the second links to that copy.
  EXPECT_EQ(m["b/hl"].content, "hello\n");
  EXPECT_TRUE(m["b/hl"].hardlink.empty());
  EXPECT_EQ(m["b/hl2"].hardlink, "b/hl");
  EXPECT_EQ(m["b/big.bin"].content, *big_);

  // a/link1 links inside a/: a tar hardlink, no reopen needed.
  auto tar = Export(kSplit, "/a", PxarExportFormat::kTar, false);
  ASSERT_TRUE(tar.ok()) << tar.status().ToString();
  m = Members(*tar);
  names.clear();
  for (const auto& [name, member] : m) names += name + " ";
  EXPECT_EQ(names, "a a/f1 a/link1 a/sub a/sub/deep.txt ");
  EXPECT_EQ(m["a/link1"].hardlink, "a/f1");
  EXPECT_EQ(m["a/sub"].perm, 0700u);
  EXPECT_EQ(m["a/sub/deep.txt"].content, "deep\n");
}

TEST_F(StoreArchiveTest, WholeArchiveExportHasNoRootMember) {
  auto a = Open(kUnified);
  ASSERT_TRUE(a);
  TempDir out;
  const std::string file = out / "all.tar";
  int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  ASSERT_GE(fd, 0);
  PxarExportOptions o;
  auto stats = ExportPxar(a->decoder(), fd, o);
  ::close(fd);
  ASSERT_TRUE(stats.ok()) << stats.status().ToString();
  EXPECT_EQ(stats->hardlinks, 3u);
  auto bytes = test::ReadFile(file);
  auto m = Members(std::string(bytes.begin(), bytes.end()));
  EXPECT_EQ(m.size(), 12u);
  EXPECT_EQ(m.count(""), 0u);
  EXPECT_EQ(m["b/hl"].hardlink, "a/f1");
  EXPECT_EQ(m["top.txt"].content, "top\n");
}

}  // namespace
}  // namespace pbskit
