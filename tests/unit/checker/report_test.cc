#include "pbskit/checker/report.h"

#include <gtest/gtest.h>

namespace pbskit::checker {
namespace {

TEST(ReportTest, ColourBytesMatchTermcolor) {
  Report r;
  r.Header("H");
  r.Info("c", "i");
  r.Pass("c", "p");
  r.Skip("c", "s");
  r.Notice("c", "n");
  r.Warn("c", "w");
  r.Fail("c", "f");
  const std::string e = "\x1b[0m";
  std::string expected = "= H =\n\n"
                         "INFO: i\n" + e +
                         e + "\x1b[32mPASS: p\n" + e +
                         "SKIP: s\n" + e +
                         e + "\x1b[1m\x1b[37mNOTICE: n\n" + e +
                         e + "\x1b[33mWARN: w\n" + e +
                         e + "\x1b[1m\x1b[31mFAIL: f\n" + e +
                         "\n= SUMMARY =\n\n"
                         "TOTAL:     5\n" +
                         e + "\x1b[32mPASSED:    1\n" + e +
                         "SKIPPED:   1\n"
                         "NOTICE:    1\n" +
                         e + "\x1b[33mWARNINGS:  1\n" +
                         e + "\x1b[1m\x1b[31mFAILURES:  1\n" +
                         e + "\x1b[1m\x1b[31m\nATTENTION: Please check the output for detailed "
                             "information!\n"
                             "Try to solve the problems one at a time and rerun this checklist "
                             "tool again.\n" +
                         e;
  EXPECT_EQ(r.RenderText(true), expected);
  EXPECT_EQ(StripColor(expected), r.RenderText(false));
  EXPECT_EQ(r.ExitCode(), 1);
}

TEST(ReportTest, SummaryWithoutProblems) {
  Report r;
  r.Header("A");
  r.Pass("c", "ok");
  r.Header("B");
  r.Skip("c", "skipped");
  EXPECT_EQ(r.RenderText(false),
            "= A =\n\nPASS: ok\n\n= B =\n\nSKIP: skipped\n\n= SUMMARY =\n\n"
            "TOTAL:     2\nPASSED:    1\nSKIPPED:   1\nNOTICE:    0\n");
  EXPECT_EQ(r.ExitCode(), 0);
  EXPECT_EQ(r.lines()[1].section, "B");
}

TEST(ReportTest, WarningsOnlyAttentionIsYellowWithoutTryLine) {
  Report r;
  r.Header("A");
  r.Warn("c", "careful");
  std::string text = r.RenderText(true);
  EXPECT_NE(text.find("\x1b[0m\x1b[33m\nATTENTION: Please check the output for detailed "
                      "information!\n\x1b[0m"),
            std::string::npos);
  EXPECT_EQ(text.find("Try to solve"), std::string::npos);
  EXPECT_EQ(r.ExitCode(), 1);
}

TEST(ReportTest, JunitStructure) {
  Report r;
  r.Header("A");
  r.Info("c", "not a test");
  r.Pass("c", "same");
  r.Pass("c", "same");
  r.Skip("d", "skip <me>");
  r.Fail("e", "broken\nsecond line");
  std::string xml = r.RenderJunit();
  EXPECT_NE(xml.find("<testsuites name=\"pbskit check\" tests=\"4\" failures=\"1\" skipped=\"1\">"),
            std::string::npos)
      << xml;
  EXPECT_NE(xml.find("name=\"same (2)\""), std::string::npos);
  EXPECT_NE(xml.find("<skipped message=\"skip &lt;me"), std::string::npos) << xml;
  EXPECT_NE(xml.find("<failure type=\"FAIL\" message=\"broken\">broken\nsecond line</failure>"),
            std::string::npos);
  EXPECT_EQ(xml.find("not a test"), std::string::npos);
}

TEST(ReportTest, StripColor) {
  EXPECT_EQ(StripColor("\x1b[0m\x1b[1m\x1b[31mFAIL: x\n\x1b[0m"), "FAIL: x\n");
  EXPECT_EQ(StripColor("plain [text]"), "plain [text]");
}

}  // namespace
}  // namespace pbskit::checker
