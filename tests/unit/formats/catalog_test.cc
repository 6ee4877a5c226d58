#include "pbskit/formats/catalog.h"

#include <gtest/gtest.h>

#include <limits>
#include <random>
#include <string>
#include <vector>

#include "pbskit/formats/crypto.h"
#include "pbskit/formats/data_blob.h"
#include "pbskit/formats/dynamic_index.h"
#include "test_support.h"

namespace pbskit {
namespace {

std::vector<uint8_t> Bytes(std::initializer_list<int> v) {
  std::vector<uint8_t> out;
  for (int b : v) out.push_back(static_cast<uint8_t>(b));
  return out;
}

std::vector<uint8_t> U64(uint64_t v) {
  std::vector<uint8_t> out;
  AppendVarU64(v, &out);
  return out;
}
std::vector<uint8_t> I64(int64_t v) {
  std::vector<uint8_t> out;
  AppendVarI64(v, &out);
  return out;
}

TEST(CatalogVarint, Vectors) {  // FORMATS.md §12.7
  EXPECT_EQ(U64(0), Bytes({0x00}));
  EXPECT_EQ(U64(127), Bytes({0x7f}));
  EXPECT_EQ(U64(128), Bytes({0x80, 0x01}));
  EXPECT_EQ(U64(300), Bytes({0xac, 0x02}));
  EXPECT_EQ(I64(1600000000), Bytes({0x80, 0xa0, 0xf8, 0xfa, 0x05}));
  EXPECT_EQ(I64(-1), Bytes({0x81, 0x00}));
  EXPECT_EQ(I64(-200), Bytes({0xc8, 0x81, 0x00}));
  EXPECT_EQ(U64(std::numeric_limits<uint64_t>::max()).size(), 10u);
  EXPECT_EQ(I64(std::numeric_limits<int64_t>::min()).size(), 11u);
}

TEST(CatalogVarint, RoundTrips) {
  for (uint64_t v : {uint64_t{0}, uint64_t{126}, uint64_t{127}, uint64_t{128},
                     (uint64_t{1} << 12) - 1, (uint64_t{1} << 20) - 1, (uint64_t{1} << 50) - 1,
                     uint64_t{1} << 63, std::numeric_limits<uint64_t>::max()}) {
    auto enc = U64(v);
    size_t pos = 0;
    auto dec = ReadVarU64(enc, &pos, "test");
    ASSERT_TRUE(dec.ok()) << v;
    EXPECT_EQ(*dec, v);
    EXPECT_EQ(pos, enc.size());
  }
  for (int64_t v : {int64_t{0}, int64_t{1}, int64_t{-1}, int64_t{126}, int64_t{-126}, int64_t{-127},
                    int64_t{-128}, int64_t{-200}, (int64_t{1} << 12) - 1, -(int64_t{1} << 20) + 1,
                    (int64_t{1} << 50) - 1, -(int64_t{1} << 50),
                    std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::max()}) {
    auto enc = I64(v);
    size_t pos = 0;
    auto dec = ReadVarI64(enc, &pos, "test");
    ASSERT_TRUE(dec.ok()) << v;
    EXPECT_EQ(*dec, v);
    EXPECT_EQ(pos, enc.size());
  }
  // Non-negative i64 values are encoded like u64 (compatibility of the two decoders).
  for (uint64_t v : {uint64_t{0}, uint64_t{300}, uint64_t{1} << 62}) {
    auto enc = U64(v);
    size_t pos = 0;
    EXPECT_EQ(ReadVarI64(enc, &pos, "test").value(), static_cast<int64_t>(v));
  }
}

TEST(CatalogVarint, RejectsMalformed) {
  size_t pos = 0;
  EXPECT_EQ(ReadVarU64({}, &pos, "x").status().code(), Code::kCorruption);
  auto unterminated = Bytes({0x80, 0x80});
  pos = 0;
  EXPECT_EQ(ReadVarU64(unterminated, &pos, "x").status().code(), Code::kCorruption);
  std::vector<uint8_t> eleven(10, 0xff);
  eleven.push_back(0x01);
  pos = 0;
  EXPECT_EQ(ReadVarU64(eleven, &pos, "x").status().code(), Code::kCorruption);
  auto overflow = U64(std::numeric_limits<uint64_t>::max());
  overflow.back() = 0x02;  // bit 64 set
  pos = 0;
  EXPECT_EQ(ReadVarU64(overflow, &pos, "x").status().code(), Code::kCorruption);
  auto big_positive = U64(uint64_t{1} << 63);  // beyond i64::MAX
  pos = 0;
  EXPECT_EQ(ReadVarI64(big_positive, &pos, "x").status().code(), Code::kCorruption);
  std::vector<uint8_t> no_end(11, 0x81);
  pos = 0;
  EXPECT_EQ(ReadVarI64(no_end, &pos, "x").status().code(), Code::kCorruption);
  auto zero = Bytes({0x00});
  pos = 0;
  EXPECT_EQ(ReadVarI64(zero, &pos, "x").value(), 0);
}

TEST(Catalog, SpecExampleBytes) {  // FORMATS.md §12.7
  CatalogWriter w;
  ASSERT_TRUE(w.StartDirectory("root.pxar.didx").ok());
  ASSERT_TRUE(w.AddFile("a", 5, 1600000000).ok());
  ASSERT_TRUE(w.AddSymlink("l").ok());
  ASSERT_TRUE(w.EndDirectory().ok());
  auto out = w.Finish();
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  std::vector<uint8_t> expected =
      Bytes({0x91, 0xfd, 0x60, 0xf9, 0xc4, 0x67, 0x58, 0xd5,                                      //
             0x0d, 0x02, 0x66, 0x01, 0x61, 0x05, 0x80, 0xa0, 0xf8, 0xfa, 0x05, 0x6c, 0x01, 0x6c,  //
             0x12, 0x01, 0x64, 0x0e});
  const std::string name = "root.pxar.didx";
  expected.insert(expected.end(), name.begin(), name.end());
  for (int b : {0x0e, 0x16, 0, 0, 0, 0, 0, 0, 0}) expected.push_back(static_cast<uint8_t>(b));
  EXPECT_EQ(*out, expected);
  EXPECT_EQ(out->size(), 49u);

  auto r = CatalogReader::Open(*out, "example");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->root_offset(), 22u);
  auto root = r->ReadDirectory(22);
  ASSERT_TRUE(root.ok());
  ASSERT_EQ(root->size(), 1u);
  EXPECT_EQ((*root)[0].offset, 8u);
  EXPECT_EQ(r->List().value(),
            "d \"root.pxar.didx\"\n"
            "f \"root.pxar.didx/a\" 5 1600000000\n"
            "l \"root.pxar.didx/l\"\n");
}

TEST(Catalog, WriterStateErrors) {
  CatalogWriter w;
  EXPECT_EQ(w.EndDirectory().code(), Code::kInvalidArgument);
  EXPECT_EQ(w.StartDirectory("").code(), Code::kInvalidArgument);
  EXPECT_EQ(w.AddFile("a/b", 1, 1).code(), Code::kInvalidArgument);
  EXPECT_EQ(w.AddFile(std::string(4096, 'x'), 1, 1).code(), Code::kInvalidArgument);
  ASSERT_TRUE(w.StartDirectory("root.pxar.didx").ok());
  EXPECT_EQ(w.Finish().status().code(), Code::kInvalidArgument);  // still open
  ASSERT_TRUE(w.EndDirectory().ok());
  ASSERT_TRUE(w.Finish().ok());
  EXPECT_EQ(w.Finish().status().code(), Code::kInvalidArgument);
  EXPECT_EQ(w.AddFifo("p").code(), Code::kInvalidArgument);
}

TEST(Catalog, EveryEntryTypeRoundTrips) {
  CatalogWriter w;
  ASSERT_TRUE(w.StartDirectory("root.pxar.didx").ok());
  ASSERT_TRUE(w.StartDirectory("dir").ok());
  ASSERT_TRUE(w.StartDirectory("empty").ok());
  ASSERT_TRUE(w.EndDirectory().ok());
  ASSERT_TRUE(w.AddFile("old", 1, -86400).ok());
  ASSERT_TRUE(w.EndDirectory().ok());
  ASSERT_TRUE(w.AddBlockDevice("b").ok());
  ASSERT_TRUE(w.AddCharDevice("c").ok());
  ASSERT_TRUE(w.AddHardlink("h").ok());
  ASSERT_TRUE(w.AddFifo("p").ok());
  ASSERT_TRUE(w.AddSocket("s").ok());
  ASSERT_TRUE(w.AddFile("quote\"back\\slash\ttab", 0, 0).ok());
  ASSERT_TRUE(w.AddFile(std::string("bad\xff") + "utf8", 1, 2).ok());
  ASSERT_TRUE(w.EndDirectory().ok());
  ASSERT_TRUE(w.StartDirectory("other.pxar.didx").ok());
  ASSERT_TRUE(w.EndDirectory().ok());
  auto out = w.Finish().value();
  auto r = CatalogReader::Open(out, "all").value();
  EXPECT_EQ(r.List().value(),
            "d \"root.pxar.didx\"\n"
            "d \"root.pxar.didx/dir\"\n"
            "d \"root.pxar.didx/dir/empty\"\n"
            "f \"root.pxar.didx/dir/old\" 1 -86400\n"
            "b \"root.pxar.didx/b\"\n"
            "c \"root.pxar.didx/c\"\n"
            "h \"root.pxar.didx/h\"\n"
            "p \"root.pxar.didx/p\"\n"
            "s \"root.pxar.didx/s\"\n"
            "f \"root.pxar.didx/quote\\\"back\\\\slash\\ttab\" 0 0\n"
            "f \"root.pxar.didx/bad\\xffutf8\" 1 2\n"
            "d \"other.pxar.didx\"\n");
}

// The catalog of a fixture snapshot: its one chunk, decoded.
std::vector<uint8_t> FixtureCatalog(const std::string& snapshot) {
  const std::string base = "pbs-3.2.4-datastore/";
  const std::string rel = base + snapshot + "/catalog.pcat1.didx";
  auto idx = DynamicIndex::Parse(test::ReadFile(test::Fixture(rel)), rel).value();
  EXPECT_EQ(idx.chunk_count(), 1u);
  const std::string hex = ToHex(idx.entry(0).digest);
  auto blob = DataBlob::FromRaw(
      test::ReadFile(test::Fixture(base + ".chunks/" + hex.substr(0, 4) + "/" + hex)));
  EXPECT_TRUE(blob.ok()) << blob.status().ToString();
  auto data = blob->Decode(nullptr).value();
  EXPECT_EQ(ToHex(Sha256(data)), hex);
  EXPECT_EQ(data.size(), idx.size());
  return data;
}

TEST(Catalog, FixtureListings) {
  struct Case {
    std::string snapshot;
    std::string listing;
  };
  const std::vector<Case> cases = {
      {"ct/101/2024-05-01T11:00:00Z",
       "d \"root.pxar.didx\"\n"
       "d \"root.pxar.didx/dev\"\n"
       "c \"root.pxar.didx/dev/null\"\n"
       "d \"root.pxar.didx/etc\"\n"
       "f \"root.pxar.didx/etc/hostname\" 6 1714478400\n"
       "f \"root.pxar.didx/etc/hosts\" 55 1714478400\n"
       "f \"root.pxar.didx/etc/passwd\" 78 1714478400\n"
       "d \"root.pxar.didx/home\"\n"
       "d \"root.pxar.didx/home/user\"\n"
       "f \"root.pxar.didx/home/user/.bashrc\" 17 1714478400\n"
       "f \"root.pxar.didx/home/user/grüße-日本.txt\" 11 1714478400\n"
       "f \"root.pxar.didx/home/user/notes with spaces.txt\" 19 1714478400\n"
       "d \"root.pxar.didx/root\"\n"
       "f \"root.pxar.didx/root/empty\" 0 1714478400\n"
       "f \"root.pxar.didx/root/hardlink-a\" 11 1714478400\n"
       "h \"root.pxar.didx/root/hardlink-b\"\n"
       "d \"root.pxar.didx/run\"\n"
       "p \"root.pxar.didx/run/initctl\"\n"
       "d \"root.pxar.didx/tmp\"\n"
       "d \"root.pxar.didx/usr\"\n"
       "d \"root.pxar.didx/usr/bin\"\n"
       "f \"root.pxar.didx/usr/bin/tool\" 131072 1714478400\n"
       "d \"root.pxar.didx/usr/lib\"\n"
       "l \"root.pxar.didx/usr/lib/libfoo.so.1\"\n"
       "f \"root.pxar.didx/usr/lib/libfoo.so.1.2.3\" 32768 1714478400\n"
       "d \"root.pxar.didx/var\"\n"
       "d \"root.pxar.didx/var/log\"\n"
       "f \"root.pxar.didx/var/log/messages\" 307200 1714478400\n"},
      {"ns/a/host/web/2024-05-03T08:00:00Z",
       "d \"root.pxar.didx\"\n"
       "d \"root.pxar.didx/etc\"\n"
       "d \"root.pxar.didx/etc/nginx\"\n"
       "f \"root.pxar.didx/etc/nginx/nginx.conf\" 2048 1714716000\n"
       "d \"root.pxar.didx/srv\"\n"
       "d \"root.pxar.didx/srv/www\"\n"
       "d \"root.pxar.didx/srv/www/img\"\n"
       "f \"root.pxar.didx/srv/www/img/logo.bin\" 16384 1714716000\n"
       "f \"root.pxar.didx/srv/www/index.html\" 40 1714716000\n"
       "f \"root.pxar.didx/srv/www/style.css\" 23 1714716000\n"},
      {"ns/a/ns/b/host/web/2024-05-04T08:00:00Z",
       "d \"root.pxar.didx\"\n"
       "d \"root.pxar.didx/etc\"\n"
       "d \"root.pxar.didx/etc/nginx\"\n"
       "f \"root.pxar.didx/etc/nginx/nginx.conf\" 2048 1714802400\n"
       "d \"root.pxar.didx/srv\"\n"
       "d \"root.pxar.didx/srv/www\"\n"
       "d \"root.pxar.didx/srv/www/img\"\n"
       "f \"root.pxar.didx/srv/www/img/logo.bin\" 16384 1714802400\n"
       "f \"root.pxar.didx/srv/www/index.html\" 40 1714802400\n"
       "f \"root.pxar.didx/srv/www/new-page.html\" 40 1714802400\n"
       "f \"root.pxar.didx/srv/www/style.css\" 23 1714802400\n"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.snapshot);
    const auto data = FixtureCatalog(c.snapshot);
    auto r = CatalogReader::Open(data, c.snapshot + "/catalog.pcat1.didx");
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    auto listing = r->List();
    ASSERT_TRUE(listing.ok()) << listing.status().ToString();
    EXPECT_EQ(*listing, c.listing);

    // Writing the walked tree again reproduces the stream byte for byte.
    CatalogWriter w;
    std::vector<std::string> open;  // directory paths currently open
    Status st = r->Walk([&](const std::string& path, const CatalogEntry& e) -> Status {
      const std::string parent =
          path.substr(0, path.rfind('/') == std::string::npos ? 0 : path.rfind('/'));
      while (!open.empty() && open.back() != parent) {
        PBSKIT_RETURN_IF_ERROR(w.EndDirectory());
        open.pop_back();
      }
      switch (e.type) {
        case CatalogEntryType::kDirectory:
          open.push_back(path);
          return w.StartDirectory(e.name);
        case CatalogEntryType::kFile:
          return w.AddFile(e.name, e.size, e.mtime);
        case CatalogEntryType::kSymlink:
          return w.AddSymlink(e.name);
        case CatalogEntryType::kHardlink:
          return w.AddHardlink(e.name);
        case CatalogEntryType::kBlockDevice:
          return w.AddBlockDevice(e.name);
        case CatalogEntryType::kCharDevice:
          return w.AddCharDevice(e.name);
        case CatalogEntryType::kFifo:
          return w.AddFifo(e.name);
        case CatalogEntryType::kSocket:
          return w.AddSocket(e.name);
      }
      return Status::OK();
    });
    ASSERT_TRUE(st.ok()) << st.ToString();
    for (; !open.empty(); open.pop_back()) ASSERT_TRUE(w.EndDirectory().ok());
    auto rebuilt = w.Finish();
    ASSERT_TRUE(rebuilt.ok());
    EXPECT_EQ(*rebuilt, data);
  }
}

TEST(Catalog, ListDirectoryByPath) {
  const auto data = FixtureCatalog("ct/101/2024-05-01T11:00:00Z");
  auto r = CatalogReader::Open(data, "ct101").value();
  auto root = r.ListDirectory("/");
  ASSERT_TRUE(root.ok()) << root.status().ToString();
  ASSERT_EQ(root->size(), 1u);
  EXPECT_EQ((*root)[0].name, "root.pxar.didx");
  EXPECT_EQ(r.ListDirectory("").value().size(), 1u);

  auto user = r.ListDirectory("/root.pxar.didx/home/user/");
  ASSERT_TRUE(user.ok()) << user.status().ToString();
  std::vector<std::string> names;
  for (const auto& e : *user) names.push_back(e.name);
  EXPECT_EQ(names,
            (std::vector<std::string>{".bashrc", "grüße-日本.txt", "notes with spaces.txt"}));
  EXPECT_EQ((*user)[2].size, 19u);
  EXPECT_EQ((*user)[2].mtime, 1714478400);

  auto missing = r.ListDirectory("root.pxar.didx/nope/x");
  EXPECT_EQ(missing.status().code(), Code::kNotFound);
  EXPECT_NE(missing.status().message().find("root.pxar.didx/nope"), std::string::npos);
  EXPECT_EQ(r.ListDirectory("root.pxar.didx/etc/hosts").status().code(), Code::kInvalidArgument);

  std::string q;
  AppendQuotedPath("a\"b\x01\x7f", &q);
  EXPECT_EQ(q, "\"a\\\"b\\u{1}\\u{7f}\"");
}

// PBS's list_dir_contents lookup: "/" is the root, empty components are real (and missing)
// names, and the not-found message quotes the whole path.
TEST(Catalog, ListDirContentsLikePbs) {
  const auto data = FixtureCatalog("ct/101/2024-05-01T11:00:00Z");
  auto r = CatalogReader::Open(data, "ct101").value();
  auto root = r.ListDirContents("/");
  ASSERT_TRUE(root.ok()) << root.status().ToString();
  ASSERT_EQ(root->size(), 1u);
  EXPECT_EQ((*root)[0].name, "root.pxar.didx");
  auto user = r.ListDirContents("/root.pxar.didx/home/user");
  ASSERT_TRUE(user.ok()) << user.status().ToString();
  EXPECT_EQ(user->size(), 3u);
  EXPECT_TRUE(r.ListDirContents("root.pxar.didx/home/user").ok());

  auto trailing = r.ListDirContents("/root.pxar.didx/home/user/");
  EXPECT_EQ(trailing.status().code(), Code::kNotFound);
  EXPECT_EQ(trailing.status().message(),
            "path \"/root.pxar.didx/home/user/\" not found in catalog");
  EXPECT_EQ(r.ListDirContents("").status().message(), "path \"\" not found in catalog");
  EXPECT_EQ(r.ListDirContents("/root.pxar.didx/..").status().code(), Code::kNotFound);
  auto nul = r.ListDirContents(std::string("/root.pxar.didx/a\0b", 19));
  EXPECT_EQ(nul.status().message(), "path \"/root.pxar.didx/a\\0b\" not found in catalog");
  auto file = r.ListDirContents("/root.pxar.didx/etc/hosts");
  EXPECT_EQ(file.status().code(), Code::kInvalidArgument);
  EXPECT_EQ(file.status().message(), "parent is not a directory - internal error");
  EXPECT_EQ(r.ListDirContents("/root.pxar.didx/etc/hosts/x").status().message(),
            "parent is not a directory - internal error");
}

TEST(Catalog, GarbageIsCorruption) {
  const auto good = FixtureCatalog("ct/101/2024-05-01T11:00:00Z");
  auto open_list = [](const std::vector<uint8_t>& bytes) -> Status {
    auto r = CatalogReader::Open(bytes, "garbage");
    if (!r.ok()) return r.status();
    return r->List().status();
  };
  ASSERT_TRUE(open_list(good).ok());
  EXPECT_EQ(open_list({}).code(), Code::kCorruption);
  EXPECT_EQ(open_list(std::vector<uint8_t>(good.begin(), good.begin() + 15)).code(),
            Code::kCorruption);
  auto magic = good;
  magic[3] ^= 0x40;
  Status st = open_list(magic);
  EXPECT_EQ(st.code(), Code::kCorruption);
  EXPECT_NE(st.message().find("magic"), std::string::npos);
  auto root = good;
  StoreLe64(root.data() + root.size() - 8, root.size());
  EXPECT_EQ(open_list(root).code(), Code::kCorruption);
  auto self_loop = CatalogWriter();
  ASSERT_TRUE(self_loop.StartDirectory("x").ok());
  ASSERT_TRUE(self_loop.EndDirectory().ok());
  auto loop_bytes = self_loop.Finish().value();
  // Root block: len, count 1, 'd', name_len 1, 'x', offset -> make the offset 0 (itself).
  loop_bytes[loop_bytes.size() - 9] = 0;
  EXPECT_EQ(open_list(loop_bytes).code(), Code::kCorruption);

  // Every truncation and many random byte flips: an error is always Corruption, never a crash.
  for (size_t n = 0; n < good.size(); ++n) {
    Status s = open_list(std::vector<uint8_t>(good.begin(), good.begin() + n));
    EXPECT_EQ(s.code(), Code::kCorruption) << "truncated to " << n;
  }
  std::mt19937 rng(7);
  for (int i = 0; i < 20000; ++i) {
    auto bad = good;
    const int flips = 1 + static_cast<int>(rng() % 4);
    for (int f = 0; f < flips; ++f) bad[rng() % bad.size()] = static_cast<uint8_t>(rng());
    Status s = open_list(bad);
    if (!s.ok()) {
      EXPECT_EQ(s.code(), Code::kCorruption) << s.ToString();
    }
  }
}

}  // namespace
}  // namespace pbskit
