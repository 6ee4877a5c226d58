// tape.cfg / media-pool.cfg / tape-job.cfg parsing, sizes, `mtx status` and density codes.
#include "pbskit/formats/tape/tape_config.h"

#include <gtest/gtest.h>

namespace pbskit::tape {
namespace {

TEST(TapeConfig, DrivesRoundTrip) {
  const std::string text =
      "virtual: vdrive\n\tmax-size 1048576\n\tpath /var/tapes\n\n"
      "lto: lto1\n\tchanger sl3\n\tchanger-drivenum 0\n\tpath /dev/tape/by-id/scsi-XYZ-sg\n\n"
      "changer: sl3\n\texport-slots 14,15\n\tpath /dev/tape/by-id/scsi-CHG\n";
  auto cfg = TapeDriveConfigFile::Parse(text, "tape.cfg");
  ASSERT_TRUE(cfg.ok()) << cfg.status().ToString();
  ASSERT_EQ(cfg->virtual_drives.size(), 1u);
  EXPECT_EQ(cfg->virtual_drives[0].path, "/var/tapes");
  EXPECT_EQ(*cfg->virtual_drives[0].max_size, 1048576u);
  ASSERT_EQ(cfg->lto_drives.size(), 1u);
  EXPECT_EQ(*cfg->lto_drives[0].changer, "sl3");
  EXPECT_EQ(*cfg->changers[0].export_slots, "14,15");
  EXPECT_EQ(cfg->ToString(), text);
  EXPECT_NE(cfg->FindVirtual("vdrive"), nullptr);
  EXPECT_TRUE(cfg->HasName("sl3"));
}

TEST(TapeConfig, Errors) {
  auto r = TapeDriveConfigFile::Parse("virtual: vd1\n\tpath /x\n\tspeed 3\n", "tape.cfg");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("tape.cfg:3: virtual 'vd1': unknown property 'speed'"),
            std::string::npos);
  r = TapeDriveConfigFile::Parse("virtual: vd1\n\tmax-size 10\n", "tape.cfg");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("missing property 'path'"), std::string::npos);
  r = TapeDriveConfigFile::Parse("robot: r1x\n\tpath /x\n", "tape.cfg");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("unknown section type 'robot'"), std::string::npos);
  r = TapeDriveConfigFile::Parse("virtual: vd1\n\tpath /x\n\tmax-size 1G\n", "tape.cfg");
  ASSERT_FALSE(r.ok());
}

TEST(TapeConfig, PoolsAndJobs) {
  auto pools = MediaPoolConfigFile::Parse(
      "pool: daily\n\tallocation continue\n\tretention 7 days\n\ttemplate %c\n", "media-pool.cfg");
  ASSERT_TRUE(pools.ok()) << pools.status().ToString();
  ASSERT_NE(pools->Find("daily"), nullptr);
  EXPECT_EQ(*pools->Find("daily")->retention, "7 days");
  EXPECT_EQ(pools->ToString(),
            "pool: daily\n\tallocation continue\n\tretention 7 days\n\ttemplate %c\n");
  auto jobs = TapeJobConfigFile::Parse(
      "backup: job1\n\tdrive vdrive\n\tgroup-filter type:vm\n\tgroup-filter group:ct/200\n"
      "\tlatest-only true\n\tpool daily\n\tschedule daily\n\tstore store1\n",
      "tape-job.cfg");
  ASSERT_TRUE(jobs.ok()) << jobs.status().ToString();
  ASSERT_EQ(jobs->jobs.size(), 1u);
  EXPECT_EQ(jobs->jobs[0].group_filter.size(), 2u);
  EXPECT_TRUE(*jobs->jobs[0].latest_only);
  auto bad = TapeJobConfigFile::Parse("backup: job1\n\tdrive vdrive\n\tstore s\n", "tape-job.cfg");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("missing property 'pool'"), std::string::npos);
}

TEST(TapeConfig, Sizes) {
  EXPECT_EQ(*ParseTapeSize("123"), 123u);
  EXPECT_EQ(*ParseTapeSize("64M"), 64u << 20);
  EXPECT_EQ(*ParseTapeSize("2GiB"), 2ull << 30);
  EXPECT_EQ(*ParseTapeSize("5MB"), 5000000u);
  EXPECT_FALSE(ParseTapeSize("M").ok());
  EXPECT_FALSE(ParseTapeSize("12 parsecs").ok());
}

// The vector from PBS's parse_mtx_status test.
TEST(MtxStatus, PbsVector) {
  const std::string output =
      " Storage Changer /dev/tape/by-id/scsi-387408F60F0000:2 Drives, 24 Slots ( 4 "
      "Import/Export )\n"
      "Data Transfer Element 0:Empty\n"
      "Data Transfer Element 1:Empty\n"
      "      Storage Element 1:Full :VolumeTag=CLN002CU\n"
      "      Storage Element 2:Full :VolumeTag=test22L1\n"
      "      Storage Element 3:Full :VolumeTag=test23L1\n"
      "      Storage Element 4:Full :VolumeTag=CLN001CU\n"
      "      Storage Element 5:Full :VolumeTag=test1\n"
      "      Storage Element 6:Empty\n      Storage Element 7:Empty\n"
      "      Storage Element 8:Empty\n      Storage Element 9:Empty\n"
      "      Storage Element 10:Empty\n      Storage Element 11:Empty\n"
      "      Storage Element 12:Empty\n      Storage Element 13:Empty\n"
      "      Storage Element 14:Empty\n      Storage Element 15:Empty\n"
      "      Storage Element 16:Empty\n      Storage Element 17:Empty\n"
      "      Storage Element 18:Empty\n      Storage Element 19:Empty\n"
      "      Storage Element 20:Empty\n"
      "      Storage Element 21 IMPORT/EXPORT:Empty\n"
      "      Storage Element 22 IMPORT/EXPORT:Empty\n"
      "      Storage Element 23 IMPORT/EXPORT:Empty\n"
      "      Storage Element 24 IMPORT/EXPORT:Empty\n";
  auto st = ParseMtxStatus(output);
  ASSERT_TRUE(st.ok()) << st.status().ToString();
  ASSERT_EQ(st->drives.size(), 2u);
  EXPECT_EQ(st->drives[1].status.kind, MtxElementStatus::Kind::kEmpty);
  ASSERT_EQ(st->slots.size(), 24u);
  EXPECT_EQ(st->slots[1].status.volume_tag, "test22L1");
  EXPECT_FALSE(st->slots[19].import_export);
  EXPECT_TRUE(st->slots[20].import_export);
  EXPECT_EQ(st->slots[23].element_address, 24u);
}

TEST(MtxStatus, LoadedDriveAndErrors) {
  auto st = ParseMtxStatus(
      "  Storage Changer /dev/sg3:1 Drives, 2 Slots ( 0 Import/Export )\n"
      "Data Transfer Element 0:Full (Storage Element 2 Loaded):VolumeTag = TAPE02L8    \n"
      "      Storage Element 1:Full :VolumeTag=TAPE01L8\n"
      "      Storage Element 2:Empty\n");
  ASSERT_TRUE(st.ok()) << st.status().ToString();
  EXPECT_EQ(*st->drives[0].loaded_slot, 2u);
  EXPECT_EQ(st->drives[0].status.volume_tag, "TAPE02L8");
  auto bad =
      ParseMtxStatus(" Storage Changer x\nData Transfer Element 1:Empty\n");  // drives start at 0
  ASSERT_FALSE(bad.ok());
  bad = ParseMtxStatus(" Storage Changer x\n      Storage Element 2:Empty\n");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("unexpected slot number"), std::string::npos);
}

TEST(TapeDensity, LtoTable) {
  EXPECT_EQ(*DensityName(0x58), "LTO-5");
  EXPECT_EQ(*DensityName(0x60), "LTO-9");
  EXPECT_FALSE(DensityName(0x42).has_value());
  EXPECT_EQ(LtoDensityTable().size(), 6u);
}

}  // namespace
}  // namespace pbskit::tape
