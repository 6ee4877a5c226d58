// The `virtual` tape drive: PBS directory layout, positioning, file marks, labels, capacity.
#include "pbskit/datastore/tape/virtual_drive.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "pbskit/formats/tape/media_catalog.h"
#include "test_support.h"

namespace pbskit::tape {
namespace {

using pbskit::test::TempDir;

std::unique_ptr<VirtualTapeDrive> OpenDrive(const TempDir& dir,
                                            uint64_t max_size = kVirtualDriveDefaultMaxSize) {
  auto d = VirtualTapeDrive::Open(PosixFilesystem(), dir.path(), max_size, 0);
  EXPECT_TRUE(d.ok()) << d.status().ToString();
  return std::move(d).value();
}

Status WriteStream(VirtualTapeDrive* d, const std::string& text) {
  PBSKIT_ASSIGN_OR_RETURN(auto dev, d->WriteFile());
  BlockedWriter w(dev.get());
  PBSKIT_RETURN_IF_ERROR(
      w.Write(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(text.data()), text.size()))
          .status());
  return w.Finish(false).status();
}

Result<std::string> ReadStream(VirtualTapeDrive* d, BlockedReader::OpenKind* kind) {
  PBSKIT_ASSIGN_OR_RETURN(auto dev, d->ReadNextFile());
  BlockedReader r;
  PBSKIT_ASSIGN_OR_RETURN(*kind, BlockedReader::Open(dev.get(), &r));
  if (*kind != BlockedReader::OpenKind::kStream) return std::string();
  PBSKIT_ASSIGN_OR_RETURN(auto data, r.ReadToEnd());
  return std::string(data.begin(), data.end());
}

TEST(VirtualDrive, LayoutLoadUnload) {
  TempDir dir;
  auto d = OpenDrive(dir);
  EXPECT_EQ(d->Rewind().message(), "drive is empty (no tape loaded).");
  ASSERT_TRUE(d->LoadMedia("TAPE01").ok());
  EXPECT_EQ(test::ReadText(dir / "tape-TAPE01.json"), "{\n  \"files\": 0\n}");
  EXPECT_EQ(test::ReadText(dir / "drive-status.json"),
            "{\n  \"current_tape\": {\n    \"name\": \"TAPE01\",\n    \"pos\": 0\n  }\n}");
  ASSERT_TRUE(d->LoadMedia("TAPE02").ok());
  auto tapes = d->OnlineMediaLabelTexts();
  ASSERT_TRUE(tapes.ok());
  EXPECT_EQ(tapes->size(), 2u);
  ASSERT_TRUE(d->UnloadMedia().ok());
  EXPECT_EQ(test::ReadText(dir / "drive-status.json"), "{\n  \"current_tape\": null\n}");
  EXPECT_FALSE((*d->CurrentTape()).has_value());
  EXPECT_EQ(d->LoadMediaFromSlot(3).message(), "slot 3 is empty");
  ASSERT_TRUE(d->LoadMediaFromSlot(1).ok());
  EXPECT_EQ((*d->CurrentTape())->name, (*tapes)[0]);
  EXPECT_FALSE(d->LoadMedia("../x").ok());
}

TEST(VirtualDrive, FilesFilemarksAndPositioning) {
  TempDir dir;
  auto d = OpenDrive(dir);
  ASSERT_TRUE(d->LoadMedia("T1").ok());
  BlockedReader::OpenKind kind;
  // empty tape: end of data at once
  ASSERT_TRUE(ReadStream(d.get(), &kind).ok());
  EXPECT_EQ(kind, BlockedReader::OpenKind::kEndOfStream);
  EXPECT_EQ(d->MoveToLastFile().message(), "move_to_last_file failed - media contains no data");

  ASSERT_TRUE(WriteStream(d.get(), "file zero").ok());
  ASSERT_TRUE(WriteStream(d.get(), "file one").ok());
  ASSERT_TRUE(WriteStream(d.get(), "file two").ok());
  EXPECT_EQ(*d->TapeFiles(), 3u);
  EXPECT_EQ(*d->CurrentFileNumber(), 3u);
  EXPECT_EQ(test::ReadFile(dir / "tapefile-1-T1.json").size(), kBlockSize);

  ASSERT_TRUE(d->Rewind().ok());
  EXPECT_EQ(*ReadStream(d.get(), &kind), "file zero");
  EXPECT_EQ(*d->CurrentFileNumber(), 1u);
  ASSERT_TRUE(d->MoveToLastFile().ok());
  EXPECT_EQ(*ReadStream(d.get(), &kind), "file two");
  ASSERT_TRUE(ReadStream(d.get(), &kind).ok());
  EXPECT_EQ(kind, BlockedReader::OpenKind::kEndOfStream);
  EXPECT_EQ(d->MoveToFile(4).message(), "invalid file nr");

  // writing at file 1 erases files 1 and 2
  ASSERT_TRUE(d->MoveToFile(1).ok());
  ASSERT_TRUE(WriteStream(d.get(), "new one").ok());
  EXPECT_EQ(*d->TapeFiles(), 2u);
  EXPECT_FALSE(test::ReadFile(dir / "tapefile-0-T1.json").empty());
  ASSERT_TRUE(d->MoveToEom().ok());
  EXPECT_EQ(*d->CurrentFileNumber(), 2u);
  ASSERT_TRUE(d->MoveToFile(1).ok());
  EXPECT_EQ(*ReadStream(d.get(), &kind), "new one");

  // a second filemark on one writer is refused
  auto dev = d->WriteFile();
  ASSERT_TRUE(dev.ok());
  EXPECT_TRUE((*dev)->WriteFilemark().ok());
  EXPECT_FALSE((*dev)->WriteFilemark().ok());
  dev->reset();
  // that file is empty: reads as a lone filemark
  ASSERT_TRUE(d->MoveToFile(2).ok());
  ASSERT_TRUE(ReadStream(d.get(), &kind).ok());
  EXPECT_EQ(kind, BlockedReader::OpenKind::kEndOfFile);

  ASSERT_TRUE(d->FormatMedia().ok());
  EXPECT_EQ(*d->TapeFiles(), 0u);
}

TEST(VirtualDrive, DamagedTapeFile) {
  TempDir dir;
  auto d = OpenDrive(dir);
  ASSERT_TRUE(d->LoadMedia("T1").ok());
  ASSERT_TRUE(WriteStream(d.get(), std::string(300000, 'x')).ok());
  auto bytes = test::ReadFile(dir / "tapefile-0-T1.json");
  ASSERT_EQ(bytes.size(), 2 * kBlockSize);
  bytes.resize(kBlockSize + 100);
  test::WriteFile(dir / "tapefile-0-T1.json", bytes);
  ASSERT_TRUE(d->Rewind().ok());
  BlockedReader::OpenKind kind;
  auto r = ReadStream(d.get(), &kind);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kIoError);
  EXPECT_NE(r.status().message().find("got wrong block size"), std::string::npos);
}

TEST(VirtualDrive, LabelsRoundTrip) {
  TempDir dir;
  auto d = OpenDrive(dir);
  ASSERT_TRUE(d->LoadMedia("TAPE01").ok());
  MediaSetLabel set;
  set.pool = "p1";
  set.uuid = RandomUuid();
  EXPECT_EQ(d->WriteMediaSetLabel(set).message(), "media is empty (no label).");
  auto none = d->ReadLabel();
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->label.has_value());

  MediaLabel label;
  label.uuid = RandomUuid();
  label.label_text = "TAPE01";
  label.ctime = 1700000000;
  ASSERT_TRUE(d->WriteMediaLabel(label).ok());
  auto only = d->ReadLabel();
  ASSERT_TRUE(only.ok()) << only.status().ToString();
  ASSERT_TRUE(only->label.has_value());
  EXPECT_EQ(only->label->uuid, label.uuid);

  ASSERT_TRUE(d->WriteMediaSetLabel(set).ok());
  ASSERT_TRUE(d->MoveToEom().ok());
  ASSERT_TRUE(WriteStream(d.get(), "old data").ok());
  EXPECT_EQ(*d->TapeFiles(), 3u);
  set.seq_nr = 2;
  set.ctime = 1700000500;
  ASSERT_TRUE(d->WriteMediaSetLabel(set).ok());
  EXPECT_EQ(*d->TapeFiles(), 2u);  // file 2 ("old data") is gone
  auto both = d->ReadLabel();
  ASSERT_TRUE(both.ok()) << both.status().ToString();
  ASSERT_TRUE(both->media_set.has_value());
  EXPECT_EQ(both->media_set->uuid, set.uuid);
  EXPECT_EQ(both->media_set->seq_nr, 2u);
  EXPECT_EQ(both->label->label_text, "TAPE01");

  set.encryption_key_fingerprint = "aa:bb";
  EXPECT_EQ(d->WriteMediaSetLabel(set).code(), Code::kUnsupported);
}

TEST(VirtualDrive, EndOfTape) {
  TempDir dir;
  // room for 4 blocks; file 0 takes one
  auto d = OpenDrive(dir, 4 * kBlockSize);
  ASSERT_TRUE(d->LoadMedia("T1").ok());
  ASSERT_TRUE(WriteStream(d.get(), "x").ok());
  auto dev = d->WriteFile();
  ASSERT_TRUE(dev.ok());
  std::vector<uint8_t> block(kBlockSize, 0);
  for (int i = 0; i < 3; ++i) EXPECT_FALSE(*(*dev)->WriteBlock(block)) << i;
  EXPECT_TRUE(*(*dev)->WriteBlock(block));
  EXPECT_TRUE(*(*dev)->WriteBlock(block));
  auto full = (*dev)->WriteBlock(block);
  ASSERT_FALSE(full.ok());
  EXPECT_EQ(full.status().code(), Code::kIoError);
}

TEST(VirtualDrive, ContentFilesMatchCatalog) {
  TempDir dir;
  auto d = OpenDrive(dir);
  ASSERT_TRUE(d->LoadMedia("TAPE01").ok());
  MediaLabel label;
  label.uuid = RandomUuid();
  label.label_text = "TAPE01";
  ASSERT_TRUE(d->WriteMediaLabel(label).ok());
  MediaSetLabel set;
  set.pool = "p1";
  set.uuid = RandomUuid();
  ASSERT_TRUE(d->WriteMediaSetLabel(set).ok());

  // file 2: a snapshot archive header (JSON only, the pxar body is not needed here)
  std::string json = "{\n  \"snapshot\": \"vm/100/2024-01-01T00:00:00Z\",\n  \"store\": \"s1\"\n}";
  MediaContentHeader h;
  h.content_magic = kSnapshotArchiveMagic11;
  h.uuid = RandomUuid();
  h.size = static_cast<uint32_t>(json.size());
  {
    auto dev = d->WriteFile();
    ASSERT_TRUE(dev.ok());
    BlockedWriter w(dev->get());
    auto raw = h.Encode();
    ASSERT_TRUE(w.Write(raw).ok());
    ASSERT_TRUE(w.Write(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(json.data()),
                                                 json.size()))
                    .ok());
    ASSERT_TRUE(w.Finish(false).ok());
  }
  MediaCatalogBuilder catalog(label.uuid);
  ASSERT_TRUE(catalog.RegisterLabel(label.uuid, 0, 0).ok());
  ASSERT_TRUE(catalog.RegisterLabel(set.uuid, set.seq_nr, 1).ok());
  ASSERT_TRUE(catalog.RegisterSnapshot(h.uuid, 2, "s1", "vm/100/2024-01-01T00:00:00Z").ok());

  // read file 2 back and check it against the catalog entry
  ASSERT_TRUE(d->MoveToFile(2).ok());
  auto dev = d->ReadNextFile();
  ASSERT_TRUE(dev.ok());
  BlockedReader r;
  ASSERT_EQ(*BlockedReader::Open(dev->get(), &r), BlockedReader::OpenKind::kStream);
  MediaContentHeader back;
  std::string data;
  ASSERT_TRUE(ReadContentHeader(&r, kSnapshotArchiveMagic11, 1, kLabelMaxSize, &back, &data).ok());
  EXPECT_EQ(data, json);
  auto parsed = ParseMediaCatalog(catalog.pending(), label.uuid, set);
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  ASSERT_EQ(parsed->entries.size(), 3u);
  EXPECT_EQ(parsed->entries[2].uuid, back.uuid);
  EXPECT_EQ(parsed->content.at("s1").snapshot_index.at("vm/100/2024-01-01T00:00:00Z"), 2u);
}

TEST(VirtualDrive, LockIsExclusive) {
  TempDir dir;
  auto d = OpenDrive(dir);
  auto second =
      VirtualTapeDrive::Open(PosixFilesystem(), dir.path(), kVirtualDriveDefaultMaxSize, 0);
  // flock locks are per open file description, so a second open in the same process conflicts
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), Code::kBusy);
  d.reset();
  EXPECT_TRUE(VirtualTapeDrive::Open(PosixFilesystem(), dir.path()).ok());
  EXPECT_EQ(VirtualTapeDrive::Open(PosixFilesystem(), dir / "missing").status().code(),
            Code::kNotFound);
}

}  // namespace
}  // namespace pbskit::tape
