// Report rendering: pbs3to4 text (termcolor escapes), JSON, JUnit.
#include "pbskit/checker/report.h"

#include <map>
#include <pugixml.hpp>
#include <sstream>

namespace pbskit::checker {
namespace {

constexpr char kReset[] = "\x1b[0m";

// termcolor's set_color: reset, then bold, then the foreground colour.
std::string SetColor(char color_digit, bool bold) {
  std::string s = kReset;
  if (bold) s += "\x1b[1m";
  s += "\x1b[3";
  s.push_back(color_digit);
  s += "m";
  return s;
}

std::string LowerName(Level level) {
  std::string s = LevelName(level);
  for (auto& c : s) c = static_cast<char>(c - 'A' + 'a');
  return s;
}

std::string FirstLine(const std::string& s) { return s.substr(0, s.find('\n')); }

}  // namespace

const char* LevelName(Level level) {
  switch (level) {
    case Level::kPass: return "PASS";
    case Level::kInfo: return "INFO";
    case Level::kSkip: return "SKIP";
    case Level::kNotice: return "NOTICE";
    case Level::kWarn: return "WARN";
    case Level::kFail: return "FAIL";
  }
  return "INFO";
}

void Report::Header(std::string title) {
  headers_.push_back(std::move(title));
  header_pos_.push_back(lines_.size());
}

void Report::Add(std::string check, Level level, std::string message) {
  lines_.push_back({headers_.empty() ? std::string() : headers_.back(), std::move(check), level,
                    std::move(message)});
}

Counters Report::counters() const {
  Counters c;
  for (const auto& l : lines_) {
    switch (l.level) {
      case Level::kPass: ++c.pass; break;
      case Level::kSkip: ++c.skip; break;
      case Level::kNotice: ++c.notice; break;
      case Level::kWarn: ++c.warn; break;
      case Level::kFail: ++c.fail; break;
      case Level::kInfo: break;
    }
  }
  return c;
}

int Report::ExitCode() const {
  Counters c = counters();
  return c.warn > 0 || c.fail > 0 ? 1 : 0;
}

std::string Report::RenderText(bool color) const {
  std::string out;
  auto set = [&](char digit, bool bold) {
    if (color) out += SetColor(digit, bold);
  };
  auto reset = [&] {
    if (color) out += kReset;
  };
  bool first_header = true;
  auto header = [&](const std::string& title) {
    if (!first_header) out += "\n";
    first_header = false;
    out += "= " + title + " =\n\n";
  };
  size_t h = 0;
  for (size_t i = 0; i <= lines_.size(); ++i) {
    while (h < headers_.size() && header_pos_[h] == i) header(headers_[h++]);
    if (i == lines_.size()) break;
    const CheckLine& l = lines_[i];
    switch (l.level) {
      case Level::kPass: set('2', false); break;
      case Level::kNotice: set('7', true); break;
      case Level::kWarn: set('3', false); break;
      case Level::kFail: set('1', true); break;
      default: break;
    }
    out += std::string(LevelName(l.level)) + ": " + l.message + "\n";
    reset();
  }

  Counters c = counters();
  header("SUMMARY");
  out += "TOTAL:     " + std::to_string(c.total()) + "\n";
  set('2', false);
  out += "PASSED:    " + std::to_string(c.pass) + "\n";
  reset();
  out += "SKIPPED:   " + std::to_string(c.skip) + "\n";
  out += "NOTICE:    " + std::to_string(c.notice) + "\n";
  if (c.warn > 0) {
    set('3', false);
    out += "WARNINGS:  " + std::to_string(c.warn) + "\n";
  }
  if (c.fail > 0) {
    set('1', true);
    out += "FAILURES:  " + std::to_string(c.fail) + "\n";
  }
  if (c.warn > 0 || c.fail > 0) {
    if (c.fail > 0) {
      set('1', true);
    } else {
      set('3', false);
    }
    out += "\nATTENTION: Please check the output for detailed information!\n";
    if (c.fail > 0) {
      out += "Try to solve the problems one at a time and rerun this checklist tool again.\n";
    }
  }
  reset();
  return out;
}

boost::json::value Report::ToJson() const {
  boost::json::array checks;
  for (const auto& l : lines_) {
    checks.push_back(boost::json::object{{"section", l.section},
                                         {"check", l.check},
                                         {"level", LowerName(l.level)},
                                         {"message", l.message}});
  }
  Counters c = counters();
  boost::json::object summary{{"total", c.total()},   {"passed", c.pass}, {"skipped", c.skip},
                              {"notice", c.notice},   {"warnings", c.warn},
                              {"failures", c.fail}};
  return boost::json::object{
      {"checks", std::move(checks)}, {"summary", std::move(summary)}, {"exit-code", ExitCode()}};
}

std::string Report::RenderJunit() const {
  pugi::xml_document doc;
  auto decl = doc.append_child(pugi::node_declaration);
  decl.append_attribute("version") = "1.0";
  decl.append_attribute("encoding") = "UTF-8";
  auto suites = doc.append_child("testsuites");
  suites.append_attribute("name") = "pbskit check";
  Counters all = counters();
  suites.append_attribute("tests") = all.total();
  suites.append_attribute("failures") = all.warn + all.fail;
  suites.append_attribute("skipped") = all.skip;

  for (size_t h = 0; h < headers_.size(); ++h) {
    size_t begin = header_pos_[h];
    size_t end = h + 1 < headers_.size() ? header_pos_[h + 1] : lines_.size();
    auto suite = suites.append_child("testsuite");
    suite.append_attribute("name") = headers_[h].c_str();
    int tests = 0, failures = 0, skipped = 0;
    std::map<std::string, int> seen;
    for (size_t i = begin; i < end; ++i) {
      const CheckLine& l = lines_[i];
      if (l.level == Level::kInfo) continue;
      ++tests;
      auto tc = suite.append_child("testcase");
      tc.append_attribute("classname") = ("pbskit.check." + l.check).c_str();
      // Test case names must be unique within a suite for most CI viewers.
      std::string name = FirstLine(l.message);
      int n = ++seen[name];
      if (n > 1) name += " (" + std::to_string(n) + ")";
      tc.append_attribute("name") = name.c_str();
      if (l.level == Level::kFail || l.level == Level::kWarn) {
        ++failures;
        auto f = tc.append_child("failure");
        f.append_attribute("type") = LevelName(l.level);
        f.append_attribute("message") = FirstLine(l.message).c_str();
        f.text() = l.message.c_str();
      } else if (l.level == Level::kSkip) {
        ++skipped;
        tc.append_child("skipped").append_attribute("message") = l.message.c_str();
      } else if (l.level == Level::kNotice) {
        tc.append_child("system-out").text() = ("NOTICE: " + l.message).c_str();
      }
    }
    suite.append_attribute("tests") = tests;
    suite.append_attribute("failures") = failures;
    suite.append_attribute("skipped") = skipped;
  }
  std::ostringstream os;
  doc.save(os, "  ", pugi::format_default, pugi::encoding_utf8);
  return os.str();
}

std::string StripColor(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\x1b' && i + 1 < text.size() && text[i + 1] == '[') {
      size_t m = text.find('m', i + 2);
      if (m != std::string::npos) {
        i = m;
        continue;
      }
    }
    out.push_back(text[i]);
  }
  return out;
}

}  // namespace pbskit::checker
