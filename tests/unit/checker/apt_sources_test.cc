#include "pbskit/checker/apt_sources.h"

#include <gtest/gtest.h>

#include "pbskit/checker/packages.h"

namespace pbskit::checker {
namespace {

TEST(AptSourcesTest, OneLineFormat) {
  AptRepositoryFile f;
  AptFileError e;
  ASSERT_TRUE(ParseAptList(
      "# comment\n"
      "deb [arch=amd64 signed-by=\"/usr/share/keyrings/x.gpg\"] http://a.example bookworm main "
      "contrib # trailing\n"
      "#deb http://a.example trixie main\n"
      "deb-src http://a.example bookworm main\n"
      "deb http://a.example ./\n"
      "\n",
      "/etc/apt/sources.list", &f, &e))
      << e.ToString();
  ASSERT_EQ(f.repositories.size(), 4u);
  EXPECT_EQ(f.repositories[0].suites, std::vector<std::string>{"bookworm"});
  EXPECT_EQ(f.repositories[0].components, (std::vector<std::string>{"main", "contrib"}));
  EXPECT_EQ(f.repositories[0].line, 2);
  EXPECT_FALSE(f.repositories[1].enabled);
  EXPECT_EQ(f.repositories[1].suites, std::vector<std::string>{"trixie"});
  EXPECT_EQ(f.repositories[2].types, std::vector<std::string>{"deb-src"});
  EXPECT_EQ(f.repositories[3].suites, std::vector<std::string>{"./"});
}

TEST(AptSourcesTest, OneLineErrorsCarryTheLine) {
  AptRepositoryFile f;
  AptFileError e;
  EXPECT_FALSE(ParseAptList("deb http://a bookworm main\ndeb http://a\n", "/x.list", &f, &e));
  EXPECT_EQ(e.ToString(), "/x.list:2: malformed entry - missing suite");
  EXPECT_FALSE(ParseAptList("rpm http://a bookworm main\n", "/x.list", &f, &e));
  EXPECT_EQ(e.ToString(), "/x.list:1: malformed entry - unknown package type 'rpm'");
  EXPECT_FALSE(ParseAptList("deb http://a bookworm\n", "/x.list", &f, &e));
  EXPECT_EQ(e.message, "malformed entry - missing component(s)");
  EXPECT_FALSE(ParseAptList("deb [arch=amd64 http://a bookworm main\n", "/x.list", &f, &e));
  EXPECT_EQ(e.message, "malformed entry - missing terminating ']'");
}

TEST(AptSourcesTest, Deb822) {
  AptRepositoryFile f;
  AptFileError e;
  ASSERT_TRUE(ParseAptSources(
      "# all commented\n# Types: deb\n\n"
      "Types: deb deb-src\nURIs: http://a.example\nSuites: bookworm\n bookworm-updates\n"
      "Components: main\nsigned-by: /k.gpg\n\n\n"
      "types: deb\nuris: http://b.example\nsuites: trixie\ncomponents: main\nenabled: no\n",
      "/d.sources", &f, &e))
      << e.ToString();
  ASSERT_EQ(f.repositories.size(), 2u);
  EXPECT_EQ(f.repositories[0].suites, (std::vector<std::string>{"bookworm", "bookworm-updates"}));
  EXPECT_EQ(f.repositories[0].types.size(), 2u);
  EXPECT_EQ(f.repositories[0].line, 4);
  EXPECT_FALSE(f.repositories[1].enabled);
  EXPECT_FALSE(ParseAptSources("Types: deb\nURIs: http://a\nSuites: x\n", "/d.sources", &f, &e));
  EXPECT_EQ(e.ToString(), "/d.sources:1: malformed stanza - missing component(s)");
  EXPECT_FALSE(ParseAptSources("Types: deb\nno colon here\n", "/d.sources", &f, &e));
  EXPECT_EQ(e.line, 2);
}

TEST(PackagesTest, DebianVersionOrder) {
  EXPECT_LT(CompareDebianVersions("3.2.7", "3.4.1"), 0);
  EXPECT_GT(CompareDebianVersions("3.10.0", "3.9.9"), 0);
  EXPECT_EQ(CompareDebianVersions("1.0-1", "1.0-1"), 0);
  EXPECT_LT(CompareDebianVersions("1.0~rc1", "1.0"), 0);
  EXPECT_GT(CompareDebianVersions("1:0.1", "9.9"), 0);
  EXPECT_LT(CompareDebianVersions("4.3-2+deb12u1", "4.3-2+deb12u2"), 0);
  EXPECT_GT(CompareDebianVersions("1.0a", "1.0"), 0);
  EXPECT_LT(CompareDebianVersions("1.0-1", "1.0-1.1"), 0);
}

TEST(PackagesTest, DpkgStatusOnlyInstalled) {
  auto m = ParseDpkgStatus(
      "Package: a\nStatus: install ok installed\nVersion: 1\n\n"
      "Package: b\nStatus: deinstall ok config-files\nVersion: 2\n\n"
      "Package: c\nStatus: install ok installed\nDescription: multi\n line\nVersion: 3\n");
  EXPECT_EQ(m.size(), 2u);
  EXPECT_EQ(m["a"], "1");
  EXPECT_EQ(m["c"], "3");
}

}  // namespace
}  // namespace pbskit::checker
