// inventory.json, media catalog files and the .index snapshot cache.
#include "pbskit/datastore/tape/tape_state.h"

#include <gtest/gtest.h>

#include "test_support.h"

namespace pbskit::tape {
namespace {

MediaId Media(const std::string& uuid, const std::string& label, std::optional<std::string> set,
              uint64_t seq) {
  MediaId id;
  id.label.uuid = *ParseUuid(uuid);
  id.label.label_text = label;
  id.label.ctime = 1700000000;
  id.label.pool = "p1";
  if (set) {
    MediaSetLabel s;
    s.pool = "p1";
    s.uuid = *ParseUuid(*set);
    s.seq_nr = seq;
    s.ctime = 1700000100 + static_cast<int64_t>(seq);
    id.media_set_label = s;
  }
  return id;
}

const char* kSet = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee";

TEST(TapeInventory, JsonLayoutAndUpdates) {
  test::TempDir tmp;
  Filesystem* fs = PosixFilesystem();
  auto a = Media("22222222-2222-3333-4444-555555555555", "TAPE02", kSet, 1);
  auto b = Media("11111111-2222-3333-4444-555555555555", "TAPE01", kSet, 0);
  auto inv = Inventory::Update(fs, tmp.path(), [&](Inventory* i) {
    i->Store(a, false);
    i->Store(b, false);
    i->SetLocation(b.label.uuid, "online-vdrive");
    i->SetStatus(b.label.uuid, "full");
    return Status::OK();
  });
  ASSERT_TRUE(inv.ok()) << inv.status().ToString();
  std::string text = test::ReadText(tmp.path() + "/inventory.json");
  EXPECT_EQ(
      text.rfind(
          "[\n  {\n    \"id\": {\n      \"label\": {\n        \"ctime\": 1700000000,\n"
          "        \"label_text\": \"TAPE01\",\n        \"pool\": \"p1\",\n        \"uuid\": "
          "\"11111111-2222-3333-4444-555555555555\"\n      },\n      \"media_set_label\": {\n  ",
          0),
      0u);
  EXPECT_NE(text.find("\"location\": \"online-vdrive\",\n    \"status\": \"full\"\n  }"),
            std::string::npos);
  auto loaded = Inventory::Load(fs, tmp.path());
  ASSERT_TRUE(loaded.ok());
  EXPECT_EQ(loaded->ToJson(), text);
  auto members = loaded->MediaSetMembers(*ParseUuid(kSet));
  ASSERT_TRUE(members.ok());
  ASSERT_EQ(members->size(), 2u);
  EXPECT_EQ(*(*members)[0], b.label.uuid);
  auto sets = loaded->MediaSets();
  ASSERT_EQ(sets.size(), 1u);
  EXPECT_EQ(*sets[0].start_time, 1700000100);
  EXPECT_EQ((*loaded->FindByLabel("TAPE02"))->id.label.uuid, a.label.uuid);
  EXPECT_FALSE(loaded->FindByLabel("TAPE09").ok());
  // Store with clear_status drops "full".
  auto again = Inventory::Update(fs, tmp.path(), [&](Inventory* i) {
    i->Store(b, true);
    return Status::OK();
  });
  EXPECT_FALSE(again->Find(b.label.uuid)->status.has_value());
  // Duplicate sequence numbers are refused.
  auto dup = Media("33333333-2222-3333-4444-555555555555", "TAPE03", kSet, 1);
  (void)Inventory::Update(fs, tmp.path(), [&](Inventory* i) {
    i->Store(dup, false);
    return Status::OK();
  });
  auto bad = Inventory::Load(fs, tmp.path())->MediaSetMembers(*ParseUuid(kSet));
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("found duplicate sequence number in media set '" +
                                        std::string(kSet) + "/1'"),
            std::string::npos);
}

TEST(TapeCatalogFiles, WriteAppendIndexCacheAndUnrelated) {
  test::TempDir tmp;
  TapeStatusDir state(PosixFilesystem(), tmp.path() + "/tape");
  auto id = Media("11111111-2222-3333-4444-555555555555", "TAPE01", kSet, 0);
  auto b = NewMediaCatalog(id);
  ASSERT_TRUE(b.ok());
  ASSERT_TRUE(state.WriteCatalog(id.label.uuid, b->pending()).ok());
  b->ClearPending();
  ASSERT_TRUE(b->RegisterSnapshot(RandomUuid(), 2, "store1", "vm/100/2024-01-01T00:00:00Z").ok());
  ASSERT_TRUE(
      b->RegisterSnapshot(RandomUuid(), 3, "store1", "ns/a/ct/1/2024-01-01T00:00:00Z").ok());
  ASSERT_TRUE(state.AppendCatalog(id.label.uuid, b->pending()).ok());
  auto content = state.LoadCatalog(id);
  ASSERT_TRUE(content.ok()) << content.status().ToString();
  EXPECT_EQ(content->content.at("store1").snapshot_index.size(), 2u);

  auto list = state.SnapshotList(id);
  ASSERT_TRUE(list.ok()) << list.status().ToString();
  ASSERT_EQ(list->size(), 2u);
  std::string cache = test::ReadText(state.IndexPath(id.label.uuid));
  EXPECT_EQ(cache.size(), 50u + 1 + 34 + 1 + 37 + 1);
  EXPECT_NE(cache.find("\nstore1:ns/a/ct/1/2024-01-01T00:00:00Z\n"), std::string::npos);
  // The cache is used while it matches, even if its lines were changed.
  std::string first_line = cache.substr(0, cache.find('\n') + 1);
  test::WriteText(state.IndexPath(id.label.uuid), first_line + "other:vm/1/2024-01-01T00:00:00Z\n");
  auto cached = state.SnapshotList(id);
  ASSERT_EQ(cached->size(), 1u);
  EXPECT_EQ((*cached)[0].first, "other");
  // A stale id line makes it rebuild.
  test::WriteText(state.IndexPath(id.label.uuid), "0000-0000-0000\nx:y\n");
  EXPECT_EQ(state.SnapshotList(id)->size(), 2u);

  auto found = state.MediaWithCatalogs();
  ASSERT_EQ(found->size(), 1u);
  // Same tape, other media set: the catalog is unrelated and goes.
  auto moved = Media("11111111-2222-3333-4444-555555555555", "TAPE01",
                     "bbbbbbbb-bbbb-cccc-dddd-eeeeeeeeeeee", 0);
  EXPECT_FALSE(*state.DestroyUnrelatedCatalog(id));
  EXPECT_TRUE(*state.DestroyUnrelatedCatalog(moved));
  EXPECT_FALSE(*state.CatalogExists(id.label.uuid));
  EXPECT_EQ(state.ReadCatalog(id.label.uuid).status().code(), Code::kNotFound);
}

}  // namespace
}  // namespace pbskit::tape
