// Golden-output tests: every host tree below testdata/hosts/<case>/root is checked and the full
// text output (without colour) compared with testdata/hosts/<case>/expected.txt.
// PBSKIT_UPDATE_GOLDEN=1 rewrites the expected files (review the diff before committing).
#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

#include "pbskit/checker/checker.h"
#include "test_support.h"

namespace pbskit::checker {
namespace {

std::vector<std::string> Cases() {
  std::vector<std::string> out;
  std::string base = test::TestData("hosts");
  DIR* d = ::opendir(base.c_str());
  if (!d) return out;
  while (struct dirent* e = ::readdir(d)) {
    std::string n = e->d_name;
    struct stat st;
    if (n[0] != '.' && ::stat((base + "/" + n + "/root").c_str(), &st) == 0) out.push_back(n);
  }
  ::closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

CheckOptions OptionsFor(const std::string& name) {
  CheckOptions o;
  o.root = test::TestData("hosts/" + name + "/root");
  std::ifstream in(test::TestData("hosts/" + name + "/options.txt"));
  std::string key, value;
  while (in >> key >> value) {
    if (key == "remote-version") {
      size_t eq = value.find('=');
      o.remote_versions[value.substr(0, eq)] = value.substr(eq + 1);
    }
  }
  return o;
}

class GoldenTest : public ::testing::TestWithParam<std::string> {};

TEST_P(GoldenTest, MatchesExpectedOutput) {
  const std::string name = GetParam();
  auto report = RunChecks(OptionsFor(name));
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  std::string text = report->RenderText(false);
  // The coloured rendering is the same text plus escapes.
  EXPECT_EQ(StripColor(report->RenderText(true)), text);
  std::string expected_path = test::TestData("hosts/" + name + "/expected.txt");
  if (std::getenv("PBSKIT_UPDATE_GOLDEN")) {
    test::WriteText(expected_path, text);
    GTEST_SKIP() << "rewrote " << expected_path;
  }
  EXPECT_EQ(text, test::ReadText(expected_path)) << "host tree " << name;
}

INSTANTIATE_TEST_SUITE_P(Hosts, GoldenTest, ::testing::ValuesIn(Cases()),
                         [](const auto& info) {
                           std::string n = info.param;
                           std::replace(n.begin(), n.end(), '-', '_');
                           return n;
                         });

TEST(GoldenCases, AllAcceptanceTreesExist) {
  auto cases = Cases();
  for (const char* name :
       {"clean-34-bookworm", "old-32", "mixed-suites", "deb822-sources", "already-4x",
        "broken-config", "nested-datastore", "fat-datastore", "noatime", "legacy-notification",
        "old-remote-sync"}) {
    EXPECT_NE(std::find(cases.begin(), cases.end(), name), cases.end()) << name;
  }
}

}  // namespace
}  // namespace pbskit::checker
