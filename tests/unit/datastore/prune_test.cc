// Prune selection: every case of PBS's tests/prune.rs (FORMATS.md §12.8), run under TZ=UTC, plus
// the unfinished-snapshot rule, keep-all and PruneGroup on a real datastore directory.
#include "pbskit/datastore/prune.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <ctime>
#include <filesystem>

#include "pbskit/datastore/locks.h"
#include "test_support.h"

namespace pbskit {
namespace {

class PruneTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* old = std::getenv("TZ");
    had_tz_ = old != nullptr;
    if (old) old_tz_ = old;
    setenv("TZ", "UTC", 1);
    tzset();
  }
  void TearDown() override {
    if (had_tz_) setenv("TZ", old_tz_.c_str(), 1);
    else unsetenv("TZ");
    tzset();
  }

 private:
  std::string old_tz_;
  bool had_tz_ = false;
};

PruneSnapshot Info(const std::string& snapshot, bool partial = false, bool is_protected = false) {
  auto d = BackupDir::Parse(snapshot);
  EXPECT_TRUE(d.ok()) << snapshot;
  return PruneSnapshot{*d, !partial, is_protected};
}

// PBS get_prune_list: snapshots whose keep() equals return_kept, oldest first.
std::vector<std::string> PruneList(const std::vector<PruneSnapshot>& list, bool return_kept,
                                   const KeepOptions& options) {
  auto info = ComputePruneInfo(list, options);
  std::vector<std::string> out;
  for (auto it = info.rbegin(); it != info.rend(); ++it) {
    if (PruneMarkKeeps(it->mark) == return_kept) out.push_back(it->snapshot.dir.ToString());
  }
  return out;
}

using Paths = std::vector<std::string>;

TEST_F(PruneTest, Protected) {
  std::vector<PruneSnapshot> list = {
      Info("host/elsa/2019-11-15T09:39:15Z", false, true),
      Info("host/elsa/2019-11-15T10:39:15Z"),
      Info("host/elsa/2019-11-15T10:49:15Z"),
      Info("host/elsa/2019-11-15T10:59:15Z", false, true),
  };
  KeepOptions o;
  o.keep_last = 1;
  EXPECT_EQ(PruneList(list, false, o), Paths{"host/elsa/2019-11-15T10:39:15Z"});
  KeepOptions h;
  h.keep_hourly = 1;
  EXPECT_EQ(PruneList(list, false, h), Paths{"host/elsa/2019-11-15T10:39:15Z"});
  auto info = ComputePruneInfo(list, o);
  ASSERT_EQ(info.size(), 4u);
  EXPECT_EQ(info[0].mark, PruneMark::kProtected);  // newest first
  EXPECT_EQ(info[1].mark, PruneMark::kKeep);
  EXPECT_EQ(info[2].mark, PruneMark::kRemove);
  EXPECT_EQ(info[3].mark, PruneMark::kProtected);
}

TEST_F(PruneTest, Hourly) {
  std::vector<PruneSnapshot> list = {
      Info("host/elsa/2019-11-15T09:39:15Z"), Info("host/elsa/2019-11-15T10:49:15Z"),
      Info("host/elsa/2019-11-15T10:59:15Z"), Info("host/elsa/2019-11-15T11:39:15Z"),
      Info("host/elsa/2019-11-15T11:49:15Z"), Info("host/elsa/2019-11-15T11:59:15Z"),
  };
  KeepOptions o3;
  o3.keep_hourly = 3;
  EXPECT_EQ(PruneList(list, false, o3),
            (Paths{"host/elsa/2019-11-15T10:49:15Z", "host/elsa/2019-11-15T11:39:15Z",
                   "host/elsa/2019-11-15T11:49:15Z"}));
  KeepOptions o2;
  o2.keep_hourly = 2;
  EXPECT_EQ(PruneList(list, true, o2),
            (Paths{"host/elsa/2019-11-15T10:59:15Z", "host/elsa/2019-11-15T11:59:15Z"}));
}

TEST_F(PruneTest, Simple2) {
  std::vector<PruneSnapshot> list = {
      Info("host/elsa/2018-11-15T11:59:15Z"), Info("host/elsa/2019-11-15T11:59:15Z"),
      Info("host/elsa/2019-11-21T11:59:15Z"), Info("host/elsa/2019-11-22T11:59:15Z"),
      Info("host/elsa/2019-11-29T11:59:15Z"), Info("host/elsa/2019-12-01T11:59:15Z"),
      Info("host/elsa/2019-12-02T11:59:15Z"), Info("host/elsa/2019-12-03T11:59:15Z"),
      Info("host/elsa/2019-12-04T11:59:15Z"),
  };
  KeepOptions a;
  a.keep_daily = 1;
  EXPECT_EQ(PruneList(list, true, a), Paths{"host/elsa/2019-12-04T11:59:15Z"});
  KeepOptions b;
  b.keep_last = 1;
  b.keep_daily = 1;
  EXPECT_EQ(PruneList(list, true, b),
            (Paths{"host/elsa/2019-12-03T11:59:15Z", "host/elsa/2019-12-04T11:59:15Z"}));
  KeepOptions c;
  c.keep_daily = 1;
  c.keep_weekly = 1;
  EXPECT_EQ(PruneList(list, true, c),
            (Paths{"host/elsa/2019-12-01T11:59:15Z", "host/elsa/2019-12-04T11:59:15Z"}));
  KeepOptions d;
  d.keep_daily = 1;
  d.keep_weekly = 1;
  d.keep_monthly = 1;
  EXPECT_EQ(PruneList(list, true, d),
            (Paths{"host/elsa/2019-11-22T11:59:15Z", "host/elsa/2019-12-01T11:59:15Z",
                   "host/elsa/2019-12-04T11:59:15Z"}));
  // 11-29 shares ISO week 2019/48 with 12-01: keep-weekly marks it remove, so keep-monthly skips
  // it and keeps 11-22 for 2019/11.
  auto info = ComputePruneInfo(list, d);
  for (const auto& x : info) {
    if (x.snapshot.dir.ToString() == "host/elsa/2019-11-29T11:59:15Z") {
      EXPECT_EQ(x.mark, PruneMark::kRemove);
    }
  }
  KeepOptions e;
  e.keep_monthly = 1;
  e.keep_yearly = 1;
  EXPECT_EQ(PruneList(list, true, e),
            (Paths{"host/elsa/2018-11-15T11:59:15Z", "host/elsa/2019-12-04T11:59:15Z"}));
}

TEST_F(PruneTest, Simple) {
  std::vector<PruneSnapshot> list = {
      Info("host/elsa/2019-12-02T11:59:15Z"),
      Info("host/elsa/2019-12-03T11:59:15Z"),
      Info("host/elsa/2019-12-04T11:59:15Z"),
      Info("host/elsa/2019-12-04T12:59:15Z"),
  };
  const std::string d2 = "host/elsa/2019-12-02T11:59:15Z", d3 = "host/elsa/2019-12-03T11:59:15Z",
                    d4a = "host/elsa/2019-12-04T11:59:15Z", d4b = "host/elsa/2019-12-04T12:59:15Z";
  auto opts = [](std::optional<uint64_t> last, std::optional<uint64_t> daily,
                 std::optional<uint64_t> weekly, std::optional<uint64_t> monthly,
                 std::optional<uint64_t> yearly) {
    KeepOptions o;
    o.keep_last = last;
    o.keep_daily = daily;
    o.keep_weekly = weekly;
    o.keep_monthly = monthly;
    o.keep_yearly = yearly;
    return o;
  };
  const std::nullopt_t n = std::nullopt;
  EXPECT_EQ(PruneList(list, false, opts(4, n, n, n, n)), Paths{});
  EXPECT_EQ(PruneList(list, false, opts(3, n, n, n, n)), Paths{d2});
  EXPECT_EQ(PruneList(list, false, opts(2, n, n, n, n)), (Paths{d2, d3}));
  EXPECT_EQ(PruneList(list, false, opts(1, n, n, n, n)), (Paths{d2, d3, d4a}));
  EXPECT_EQ(PruneList(list, false, opts(0, n, n, n, n)), (Paths{d2, d3, d4a, d4b}));
  EXPECT_EQ(PruneList(list, false, opts(2, 2, n, n, n)), Paths{});
  EXPECT_EQ(PruneList(list, false, opts(n, 3, n, n, n)), Paths{d4a});
  EXPECT_EQ(PruneList(list, false, opts(n, 2, n, n, n)), (Paths{d2, d4a}));
  // All in ISO week 2019/49, month 2019/12, year 2019: a single snapshot is kept.
  EXPECT_EQ(PruneList(list, false, opts(n, n, 5, n, n)), (Paths{d2, d3, d4a}));
  EXPECT_EQ(PruneList(list, false, opts(n, 1, 5, n, n)), (Paths{d2, d3, d4a}));
  EXPECT_EQ(PruneList(list, false, opts(n, n, n, 6, n)), (Paths{d2, d3, d4a}));
  EXPECT_EQ(PruneList(list, false, opts(n, n, n, n, 7)), (Paths{d2, d3, d4a}));
  EXPECT_EQ(PruneList(list, false, opts(n, n, 5, 6, 7)), (Paths{d2, d3, d4a}));
}

TEST_F(PruneTest, UnfinishedSnapshots) {
  // Newest is unfinished and newer than every finished one: kept as keep-partial. Older
  // unfinished snapshots are removed even though keep-last would cover them.
  std::vector<PruneSnapshot> list = {
      Info("vm/100/2024-01-01T00:00:00Z"),
      Info("vm/100/2024-01-02T00:00:00Z", true),
      Info("vm/100/2024-01-03T00:00:00Z"),
      Info("vm/100/2024-01-04T00:00:00Z", true),
  };
  KeepOptions o;
  o.keep_last = 10;
  auto info = ComputePruneInfo(list, o);
  ASSERT_EQ(info.size(), 4u);
  EXPECT_EQ(info[0].snapshot.dir.ToString(), "vm/100/2024-01-04T00:00:00Z");
  EXPECT_EQ(info[0].mark, PruneMark::kKeepPartial);
  EXPECT_EQ(info[1].mark, PruneMark::kKeep);
  EXPECT_EQ(info[2].mark, PruneMark::kRemove);  // unfinished, older than a finished one
  EXPECT_EQ(info[3].mark, PruneMark::kKeep);

  // Once a finished snapshot is newer, no unfinished one is kept.
  std::vector<PruneSnapshot> list2 = {Info("vm/100/2024-01-01T00:00:00Z", true),
                                      Info("vm/100/2024-01-02T00:00:00Z")};
  auto info2 = ComputePruneInfo(list2, o);
  EXPECT_EQ(info2[0].mark, PruneMark::kKeep);
  EXPECT_EQ(info2[1].mark, PruneMark::kRemove);
}

TEST_F(PruneTest, LocalTimeZoneDecidesPeriods) {
  // 23:30 UTC and 00:30 UTC the next day are different UTC days but the same day at UTC+2.
  std::vector<PruneSnapshot> list = {Info("vm/1/2024-03-10T23:30:00Z"),
                                     Info("vm/1/2024-03-11T00:30:00Z")};
  KeepOptions o;
  o.keep_daily = 5;
  EXPECT_EQ(PruneList(list, false, o), Paths{});
  setenv("TZ", "XYZ-2", 1);  // UTC+2
  tzset();
  EXPECT_EQ(PruneList(list, false, o), Paths{"vm/1/2024-03-10T23:30:00Z"});
}

TEST_F(PruneTest, KeepOptionsHelpers) {
  KeepOptions none;
  EXPECT_FALSE(none.KeepsSomething());
  EXPECT_EQ(none.ToCliArgs(), "");
  KeepOptions o;
  o.keep_yearly = 2;
  o.keep_last = 3;
  o.keep_daily = 7;
  EXPECT_TRUE(o.KeepsSomething());
  EXPECT_EQ(o.ToCliArgs(), "--keep-last 3 --keep-daily 7 --keep-yearly 2");
  EXPECT_TRUE(o.Validate().ok());
  KeepOptions zero;
  zero.keep_weekly = 0;
  EXPECT_FALSE(zero.KeepsSomething());
  EXPECT_FALSE(zero.Validate().ok());
  EXPECT_EQ(std::string(PruneMarkName(PruneMark::kKeepPartial)), "keep-partial");
  auto ns = BackupNamespace::Parse("a/b");
  ASSERT_TRUE(ns.ok());
  auto g = BackupGroup::Parse("vm/100");
  ASSERT_TRUE(g.ok());
  EXPECT_EQ(PruneWorkerId("store1", *ns, *g), "store1:a/b:vm/100");
  EXPECT_EQ(PruneWorkerId("store1", BackupNamespace(), *g), "store1::vm/100");
}

TEST_F(PruneTest, NoOptionsKeepsEverything) {
  std::vector<PruneSnapshot> list = {Info("vm/100/2024-01-01T00:00:00Z"),
                                     Info("vm/100/2024-01-02T00:00:00Z")};
  auto info = ComputePruneInfo(list, KeepOptions{});
  // compute_prune_info itself marks them remove; callers keep all when nothing is selected.
  EXPECT_EQ(info[0].mark, PruneMark::kRemove);
  EXPECT_FALSE(KeepOptions{}.KeepsSomething());
}

}  // namespace
}  // namespace pbskit
