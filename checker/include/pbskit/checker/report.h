// The checker's result model and its three renderings: the pbs3to4 text output (with its exact
// colour escapes), JSON and JUnit XML.
#pragma once

#include <boost/json.hpp>
#include <string>
#include <vector>

namespace pbskit::checker {

// Message levels of pbs3to4. INFO is never counted.
enum class Level { kPass, kInfo, kSkip, kNotice, kWarn, kFail };

// "PASS", "INFO", ...
const char* LevelName(Level level);

struct CheckLine {
  std::string section;  // the header the line was printed under
  std::string check;    // stable id of the check, e.g. "package-updates", "datastore-exists"
  Level level = Level::kInfo;
  std::string message;  // may contain "\n" + indentation for multi-line messages
};

struct Counters {
  int pass = 0, skip = 0, notice = 0, warn = 0, fail = 0;
  int total() const { return pass + skip + notice + warn + fail; }
};

// Colour policy of the text output: pbs3to4 always colours; pbskit colours only on a terminal
// unless told otherwise.
enum class ColorMode { kAuto, kAlways, kNever };

// Collects headers and lines in print order. Not thread-safe; one per run.
class Report {
 public:
  // Starts a new section ("MISCELLANEOUS CHECKS").
  void Header(std::string title);
  void Add(std::string check, Level level, std::string message);
  void Pass(std::string check, std::string m) { Add(std::move(check), Level::kPass, std::move(m)); }
  void Info(std::string check, std::string m) { Add(std::move(check), Level::kInfo, std::move(m)); }
  void Skip(std::string check, std::string m) { Add(std::move(check), Level::kSkip, std::move(m)); }
  void Notice(std::string check, std::string m) {
    Add(std::move(check), Level::kNotice, std::move(m));
  }
  void Warn(std::string check, std::string m) { Add(std::move(check), Level::kWarn, std::move(m)); }
  void Fail(std::string check, std::string m) { Add(std::move(check), Level::kFail, std::move(m)); }

  const std::vector<std::string>& headers() const { return headers_; }
  const std::vector<CheckLine>& lines() const { return lines_; }
  Counters counters() const;

  // pbskit's exit status: 0 when nothing was WARN or FAIL, 1 otherwise.
  int ExitCode() const;

  // The complete pbs3to4-style output including "= SUMMARY =". With `color`, escapes are the
  // exact bytes termcolor writes (reset, bold, foreground, reset after every line).
  std::string RenderText(bool color) const;
  // {"checks":[{section,check,level,message}...],"summary":{total,passed,...},"exit-code":n};
  // levels are lower-case ("pass", "warn").
  boost::json::value ToJson() const;
  // JUnit XML: one <testsuite> per section, one <testcase> per counted line; FAIL and WARN are
  // <failure type="FAIL|WARN">, SKIP is <skipped/>, NOTICE passes with the text in <system-out>.
  std::string RenderJunit() const;

 private:
  std::vector<std::string> headers_;
  std::vector<CheckLine> lines_;
  // Index into lines_ where each header starts, parallel to headers_.
  std::vector<size_t> header_pos_;
};

// Removes ANSI colour escapes (ESC '[' ... 'm').
std::string StripColor(const std::string& text);

}  // namespace pbskit::checker
