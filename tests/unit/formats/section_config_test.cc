#include "pbskit/formats/section_config.h"

#include <gtest/gtest.h>

namespace pbskit {
namespace {

// datastore.cfg as PBS writes it (properties sorted, TAB indent, one blank line between).
constexpr char kDatastoreCfg[] =
    "datastore: store1\n"
    "\tcomment main store\n"
    "\tgc-schedule daily\n"
    "\tnotification-mode notification-system\n"
    "\tpath /mnt/datastore/store1\n"
    "\ttuning gc-atime-cutoff=1445,sync-level=filesystem\n"
    "\n"
    "datastore: usb1\n"
    "\tbacking-device 5d0b4e2a-8c1f-4f3e-9b7a-2c6d1e0f9a11\n"
    "\tgc-on-unmount true\n"
    "\tpath usb1\n"
    "\n"
    "datastore: s3store\n"
    "\tbackend type=s3,client=minio1,bucket=pbs-backups\n"
    "\tpath /var/cache/pbs-s3store\n";

constexpr char kUserCfg[] =
    "user: root@pam\n"
    "\tcomment Superuser\n"
    "\temail admin@example.com\n"
    "\n"
    "user: backup@pbs\n"
    "\tenable true\n"
    "\texpire 0\n"
    "\n"
    "token: backup@pbs!pve1\n"
    "\tcomment PVE node 1\n"
    "\tenable true\n";

constexpr char kRemoteCfg[] =
    "remote: offsite\n"
    "\tauth-id sync@pbs\n"
    "\tfingerprint 64:d3:ff:3a:a1\n"
    "\thost pbs2.example.com\n"
    "\tpassword c2VjcmV0\n";

constexpr char kSyncCfg[] =
    "sync: pull-offsite\n"
    "\tgroup-filter type:vm\n"
    "\tgroup-filter exclude:group:vm/999\n"
    "\tremote offsite\n"
    "\tremote-store store1\n"
    "\tremove-vanished false\n"
    "\tschedule hourly\n"
    "\tstore store1\n";

constexpr char kTapeCfg[] =
    "lto: drive0\n"
    "\tchanger sl3\n"
    "\tchanger-drivenum 0\n"
    "\tpath /dev/tape/by-id/scsi-10WT065325-sg\n"
    "\n"
    "changer: sl3\n"
    "\texport-slots 14,15,16\n"
    "\tpath /dev/tape/by-id/scsi-CJ0JBE0059\n"
    "\n"
    "virtual: vdrive\n"
    "\tmax-size 104857600\n"
    "\tpath /var/tmp/vtape\n";

constexpr char kMediaPoolCfg[] =
    "pool: weekly\n"
    "\tallocation sat 18:00\n"
    "\tretention 3 weeks\n"
    "\ttemplate weekly-%Y-%m-%d\n";

TEST(SectionConfigTest, ParsesDatastoreCfg) {
  auto r = SectionConfig::Parse(kDatastoreCfg, "datastore.cfg");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->sections.size(), 3u);
  const auto* s1 = r->Find("datastore", "store1");
  ASSERT_NE(s1, nullptr);
  EXPECT_EQ(s1->line, 1);
  ASSERT_NE(s1->Get("path"), nullptr);
  EXPECT_EQ(*s1->Get("path"), "/mnt/datastore/store1");
  EXPECT_EQ(*s1->Get("comment"), "main store");  // inner spaces kept
  EXPECT_EQ(*s1->Get("tuning"), "gc-atime-cutoff=1445,sync-level=filesystem");
  EXPECT_EQ(s1->LineOf("tuning"), 6);
  EXPECT_EQ(s1->Get("backend"), nullptr);
  const auto* s3 = r->Find("datastore", "s3store");
  ASSERT_NE(s3, nullptr);
  EXPECT_EQ(s3->line, 13);
  EXPECT_EQ(*s3->Get("backend"), "type=s3,client=minio1,bucket=pbs-backups");
  EXPECT_EQ(r->Find("datastore", "nope"), nullptr);
  EXPECT_EQ(r->Find("sync", "store1"), nullptr);
  EXPECT_EQ(r->OfType("datastore").size(), 3u);
}

TEST(SectionConfigTest, ParsesOtherFiles) {
  auto users = SectionConfig::Parse(kUserCfg, "user.cfg");
  ASSERT_TRUE(users.ok());
  ASSERT_EQ(users->sections.size(), 3u);
  EXPECT_EQ(users->sections[2].type, "token");
  EXPECT_EQ(users->sections[2].id, "backup@pbs!pve1");
  EXPECT_EQ(*users->sections[2].Get("comment"), "PVE node 1");

  auto remote = SectionConfig::Parse(kRemoteCfg, "remote.cfg");
  ASSERT_TRUE(remote.ok());
  EXPECT_EQ(*remote->Find("remote", "offsite")->Get("password"), "c2VjcmV0");

  auto sync = SectionConfig::Parse(kSyncCfg, "sync.cfg");
  ASSERT_TRUE(sync.ok());
  const auto* job = sync->Find("sync", "pull-offsite");
  ASSERT_NE(job, nullptr);
  EXPECT_EQ(job->GetAll("group-filter"),
            (std::vector<std::string>{"type:vm", "exclude:group:vm/999"}));
  EXPECT_EQ(*job->Get("group-filter"), "type:vm");

  auto tape = SectionConfig::Parse(kTapeCfg, "tape.cfg");
  ASSERT_TRUE(tape.ok());
  ASSERT_EQ(tape->sections.size(), 3u);
  EXPECT_EQ(tape->sections[0].type, "lto");
  EXPECT_EQ(tape->sections[1].type, "changer");
  EXPECT_EQ(*tape->sections[1].Get("export-slots"), "14,15,16");
  EXPECT_EQ(tape->sections[2].type, "virtual");

  auto pools = SectionConfig::Parse(kMediaPoolCfg, "media-pool.cfg");
  ASSERT_TRUE(pools.ok());
  EXPECT_EQ(*pools->Find("pool", "weekly")->Get("allocation"), "sat 18:00");
  EXPECT_EQ(*pools->Find("pool", "weekly")->Get("template"), "weekly-%Y-%m-%d");
}

TEST(SectionConfigTest, RoundTripIsByteExactForPbsWrittenFiles) {
  for (const char* text : {kUserCfg, kRemoteCfg, kTapeCfg, kMediaPoolCfg}) {
    auto r = SectionConfig::Parse(text, "x.cfg");
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->ToString(), text);
  }
  // sync.cfg keeps the two group-filter lines in their order while sorting.
  auto sync = SectionConfig::Parse(kSyncCfg, "sync.cfg");
  ASSERT_TRUE(sync.ok());
  EXPECT_EQ(sync->ToString(), kSyncCfg);
  EXPECT_EQ(SectionConfig().ToString(), "");
}

TEST(SectionConfigTest, WriterSortsKeysAndUsesTabs) {
  auto r = SectionConfig::Parse(
      "datastore:b\n  path /x\n    comment  two  words  \n\n\n\ndatastore: a\n\tpath /y\n",
      "datastore.cfg");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->sections[0].id, "b");
  EXPECT_EQ(*r->sections[0].Get("comment"), "two  words");
  EXPECT_EQ(r->ToString(),
            "datastore: b\n\tcomment two  words\n\tpath /x\n\ndatastore: a\n\tpath /y\n");
}

TEST(SectionConfigTest, BlankLinesCrLfAndWhitespaceOnlyLines) {
  auto r = SectionConfig::Parse("\n\n  \ndatastore: a\r\n\tpath /a\r\n \t \ndatastore: b\n\tpath /b",
                                "datastore.cfg");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->sections.size(), 2u);
  EXPECT_EQ(*r->sections[0].Get("path"), "/a");
  EXPECT_EQ(r->sections[1].line, 7);
  EXPECT_EQ(*r->sections[1].Get("path"), "/b");
}

TEST(SectionConfigTest, EmptyValueNeedsSeparatorWhitespace) {
  auto ok = SectionConfig::Parse("datastore: a\n\tcomment \n\tpath /a\n", "datastore.cfg");
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(*ok->sections[0].Get("comment"), "");
  auto bad = SectionConfig::Parse("datastore: a\n\tcomment\n\tpath /a\n", "datastore.cfg");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), Code::kInvalidArgument);
  EXPECT_EQ(bad.status().message(),
            "datastore.cfg:2: syntax error (expected section properties): property 'comment' "
            "has no value");
}

TEST(SectionConfigTest, CommentsAreSyntaxErrorsLikePbs) {
  auto before = SectionConfig::Parse("# my datastores\ndatastore: a\n\tpath /a\n", "d.cfg");
  ASSERT_FALSE(before.ok());
  EXPECT_EQ(before.status().message(), "d.cfg:1: syntax error (expected header)");
  auto inside = SectionConfig::Parse("datastore: a\n# note\n\tpath /a\n", "d.cfg");
  ASSERT_FALSE(inside.ok());
  EXPECT_EQ(inside.status().message(), "d.cfg:2: syntax error (expected section properties)");
  // An indented '#' is a property named '#' at this layer (the schema rejects it later).
  auto indented = SectionConfig::Parse("datastore: a\n\t# note here\n\tpath /a\n", "d.cfg");
  ASSERT_TRUE(indented.ok());
  EXPECT_EQ(*indented->sections[0].Get("#"), "note here");
}

TEST(SectionConfigTest, HeaderErrors) {
  auto no_blank = SectionConfig::Parse("datastore: a\n\tpath /a\ndatastore: b\n", "d.cfg");
  ASSERT_FALSE(no_blank.ok());
  EXPECT_EQ(no_blank.status().message(), "d.cfg:3: syntax error (expected section properties)");
  auto no_colon = SectionConfig::Parse("datastore a\n", "d.cfg");
  ASSERT_FALSE(no_colon.ok());
  EXPECT_EQ(no_colon.status().message(), "d.cfg:1: syntax error (expected header)");
  auto digit = SectionConfig::Parse("1datastore: a\n", "d.cfg");
  EXPECT_FALSE(digit.ok());
  auto indented = SectionConfig::Parse("\tdatastore: a\n", "d.cfg");
  EXPECT_FALSE(indented.ok());
  auto empty_id = SectionConfig::Parse("\ndatastore:  \n\tpath /a\n", "d.cfg");
  ASSERT_FALSE(empty_id.ok());
  EXPECT_EQ(empty_id.status().message(), "d.cfg:2: syntax error in section identifier: empty id");
}

TEST(SectionConfigTest, LenientCollectsEveryErrorAndKeepsGoodSections) {
  std::vector<SectionConfigError> errors;
  auto cfg = SectionConfig::ParseLenient(
      "# header comment\n"          // 1: error; the next non-indented line is tried as header
      "\tpath /orphan\n"            // 2: property of nothing: skipped
      "datastore: first\n"         // 3
      "\tpath /first\n"             // 4
      "\n"                          // 5
      "datastore: a\n"              // 6
      "\tpath /a\n"                 // 7
      "\tgc-schedule\n"             // 8: error, line skipped
      "stray line\n"                // 9: error, line skipped
      "\tcomment still a\n"         // 10
      "datastore: b\n"              // 11: error (no blank line before), still starts 'b'
      "\tpath /b\n"                 // 12
      "\n"                          // 13
      ": no type\n"                 // 14: error, its section is skipped
      "\tpath /x\n",                // 15
      "/etc/proxmox-backup/datastore.cfg", &errors);
  ASSERT_EQ(cfg.sections.size(), 3u);
  EXPECT_EQ(cfg.sections[0].id, "first");
  EXPECT_EQ(cfg.sections[0].GetAll("path"), std::vector<std::string>{"/first"});
  EXPECT_EQ(cfg.sections[1].id, "a");
  EXPECT_EQ(*cfg.sections[1].Get("comment"), "still a");
  EXPECT_EQ(cfg.sections[1].Get("gc-schedule"), nullptr);
  EXPECT_EQ(cfg.sections[2].id, "b");
  EXPECT_EQ(cfg.sections[2].line, 11);
  EXPECT_EQ(*cfg.sections[2].Get("path"), "/b");
  ASSERT_EQ(errors.size(), 5u);
  EXPECT_EQ(errors[0].ToString(),
            "/etc/proxmox-backup/datastore.cfg:1: syntax error (expected header)");
  EXPECT_EQ(errors[1].line, 8);
  EXPECT_EQ(errors[2].line, 9);
  EXPECT_EQ(errors[2].message, "syntax error (expected section properties)");
  EXPECT_EQ(errors[3].line, 11);
  EXPECT_EQ(errors[4].line, 14);
  // The strict parser stops at the first of them.
  auto strict = SectionConfig::Parse("datastore: a\n\tpath /a\ndatastore: b\n\tpath /b\n", "d");
  ASSERT_FALSE(strict.ok());
  EXPECT_EQ(strict.status().message(), "d:3: syntax error (expected section properties)");
  // A null error sink is allowed.
  auto quiet = SectionConfig::ParseLenient("oops\n", "x.cfg", nullptr);
  EXPECT_TRUE(quiet.sections.empty());
}

TEST(SectionConfigTest, SetEraseAdd) {
  auto r = SectionConfig::Parse(kSyncCfg, "sync.cfg");
  ASSERT_TRUE(r.ok());
  SectionConfigEntry* job = r->Find("sync", "pull-offsite");
  ASSERT_NE(job, nullptr);
  job->Set("schedule", "daily");
  EXPECT_EQ(*job->Get("schedule"), "daily");
  EXPECT_EQ(job->LineOf("schedule"), 7);
  job->Set("group-filter", "type:ct");  // collapses the array to one value
  EXPECT_EQ(job->GetAll("group-filter"), std::vector<std::string>{"type:ct"});
  job->Add("group-filter", "type:host");
  job->Set("owner", "sync@pbs");
  EXPECT_EQ(job->LineOf("owner"), job->line);  // set in code: no line of its own
  job->Erase("remote");
  EXPECT_EQ(job->Get("remote"), nullptr);
  EXPECT_EQ(job->properties.size(), job->property_lines.size());
  EXPECT_EQ(r->ToString(),
            "sync: pull-offsite\n"
            "\tgroup-filter type:ct\n"
            "\tgroup-filter type:host\n"
            "\towner sync@pbs\n"
            "\tremote-store store1\n"
            "\tremove-vanished false\n"
            "\tschedule daily\n"
            "\tstore store1\n");
}

}  // namespace
}  // namespace pbskit
