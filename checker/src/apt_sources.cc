// APT source file parsing (one-line and deb822), following proxmox-apt's rules.
#include "pbskit/checker/apt_sources.h"

#include <algorithm>

namespace pbskit::checker {
namespace {

bool IsAsciiSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f'; }

std::string_view TrimAscii(std::string_view s) {
  while (!s.empty() && IsAsciiSpace(s.front())) s.remove_prefix(1);
  while (!s.empty() && IsAsciiSpace(s.back())) s.remove_suffix(1);
  return s;
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// Whitespace-split words; "[...]" and "\"...\"" group; quote characters are dropped.
bool SplitWords(std::string_view s, std::vector<std::string>* words, std::string* error) {
  size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && IsAsciiSpace(s[i])) ++i;
    if (i >= s.size()) break;
    std::string word;
    char wait_for = 0;
    for (; i < s.size(); ++i) {
      char c = s[i];
      if (wait_for) {
        if (c == wait_for) wait_for = 0;
        if (c != '"') word.push_back(c);
        continue;
      }
      if (IsAsciiSpace(c)) break;
      if (c == '"') {
        wait_for = '"';
        continue;
      }
      if (c == '[') wait_for = ']';
      word.push_back(c);
    }
    if (wait_for) {
      *error = std::string("missing terminating '") + wait_for + "'";
      return false;
    }
    words->push_back(std::move(word));
  }
  return true;
}

bool ValidType(const std::string& t) { return t == "deb" || t == "deb-src"; }

// Checks proxmox-apt's basic_check rules.
bool BasicCheck(const AptRepository& r, bool list_format, std::string* error) {
  if (r.types.empty()) return *error = "missing package type(s)", false;
  if (r.uris.empty()) return *error = "missing URI(s)", false;
  if (r.suites.empty()) return *error = "missing suite(s)", false;
  for (const auto& uri : r.uris) {
    if (uri.find(':') == std::string::npos || uri.size() < 3) {
      return *error = "invalid URI: '" + uri + "'", false;
    }
  }
  for (const auto& suite : r.suites) {
    bool absolute = !suite.empty() && suite.back() == '/';
    if (!absolute && r.components.empty()) return *error = "missing component(s)", false;
    if (absolute && !r.components.empty()) {
      return *error = "absolute suite '" + suite + "' does not allow component(s)", false;
    }
  }
  if (list_format && r.types.size() > 1) return *error = "more than one package type", false;
  return true;
}

// One line of a .list file: returns 1 = repository, 0 = nothing, -1 = error.
int ParseListLine(std::string_view line, AptRepository* repo, std::string* error) {
  line = TrimAscii(line);
  if (!line.empty() && line.front() == '#') {
    AptRepository disabled;
    std::string ignored;
    if (ParseListLine(line.substr(1), &disabled, &ignored) == 1) {
      *repo = std::move(disabled);
      repo->enabled = false;
      return 1;
    }
  }
  size_t hash = line.find('#');
  if (hash != std::string_view::npos) line = line.substr(0, hash);
  size_t sp = 0;
  while (sp < line.size() && !IsAsciiSpace(line[sp])) ++sp;
  if (sp == line.size()) return 0;  // nothing or a lone word: ignored like an empty line
  std::string type(line.substr(0, sp));
  if (!ValidType(type)) return *error = "unknown package type '" + type + "'", -1;
  repo->types = {type};
  std::string_view rest = TrimAscii(line.substr(sp));
  std::vector<std::string> words;
  if (!SplitWords(rest, &words, error)) return -1;
  size_t w = 0;
  if (!rest.empty() && rest.front() == '[') {
    // Options up to the closing ']'.
    bool closed = false;
    for (; w < words.size() && !closed; ++w) {
      if (!words[w].empty() && words[w].back() == ']') closed = true;
    }
    if (!closed) return *error = "options not closed by ']'", -1;
  }
  if (w >= words.size()) return *error = "missing URI", -1;
  repo->uris = {words[w++]};
  if (w >= words.size()) return *error = "missing suite", -1;
  repo->suites = {words[w++]};
  repo->components.assign(words.begin() + static_cast<std::ptrdiff_t>(w), words.end());
  return 1;
}

}  // namespace

std::string AptFileError::ToString() const {
  if (line > 0) return path + ":" + std::to_string(line) + ": " + message;
  return path + ": " + message;
}

bool ParseAptList(std::string_view text, const std::string& path, AptRepositoryFile* out,
                  AptFileError* error) {
  out->path = path;
  out->deb822 = false;
  int line_no = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    std::string_view line = text.substr(pos, nl == std::string_view::npos ? text.npos : nl - pos);
    pos = nl == std::string_view::npos ? text.size() : nl + 1;
    ++line_no;
    AptRepository repo;
    std::string msg;
    int r = ParseListLine(line, &repo, &msg);
    if (r == 0) continue;
    if (r == 1 && !BasicCheck(repo, true, &msg)) r = -1;
    if (r < 0) {
      *error = {path, line_no, "malformed entry - " + msg};
      return false;
    }
    repo.line = line_no;
    out->repositories.push_back(std::move(repo));
  }
  return true;
}

bool ParseAptSources(std::string_view text, const std::string& path, AptRepositoryFile* out,
                     AptFileError* error) {
  out->path = path;
  out->deb822 = true;
  AptRepository repo;
  bool got_something = false;
  int stanza_line = 0;
  int line_no = 0;
  auto finish = [&]() -> bool {
    if (got_something) {
      std::string msg;
      if (!BasicCheck(repo, false, &msg)) {
        *error = {path, stanza_line, "malformed stanza - " + msg};
        return false;
      }
      repo.line = stanza_line;
      out->repositories.push_back(std::move(repo));
    }
    repo = AptRepository();
    got_something = false;
    stanza_line = 0;
    return true;
  };
  // Logical lines: a line starting with space/tab continues the previous key.
  std::string key_line;
  int key_line_no = 0;
  auto flush_key = [&]() -> bool {
    if (key_line.empty()) return true;
    std::string_view l = TrimAscii(key_line);
    size_t colon = l.find(':');
    if (colon == std::string_view::npos) {
      *error = {path, key_line_no, "got invalid line - '" + std::string(l) + "'"};
      return false;
    }
    std::string key(TrimAscii(l.substr(0, colon)));
    std::string_view value = l.substr(colon + 1);
    key_line.clear();
    if (key.empty()) {
      *error = {path, key_line_no, "option has no key: '" + std::string(l) + "'"};
      return false;
    }
    if (TrimAscii(value).empty()) return true;  // APT ignores it
    std::vector<std::string> values;
    std::string_view v = value;
    while (!v.empty()) {
      while (!v.empty() && IsAsciiSpace(v.front())) v.remove_prefix(1);
      size_t e = 0;
      while (e < v.size() && !IsAsciiSpace(v[e])) ++e;
      if (e > 0) values.emplace_back(v.substr(0, e));
      v.remove_prefix(e);
    }
    std::string k = Lower(key);
    if (k == "types") {
      for (const auto& t : values) {
        if (!ValidType(t)) {
          *error = {path, key_line_no, "unknown package type '" + t + "'"};
          return false;
        }
      }
      repo.types = values;
    } else if (k == "uris") {
      repo.uris = values;
    } else if (k == "suites") {
      repo.suites = values;
    } else if (k == "components") {
      repo.components = values;
    } else if (k == "enabled") {
      std::string b = Lower(TrimAscii(value));
      if (b == "0" || b == "no" || b == "false" || b == "without" || b == "off" ||
          b == "disable") {
        repo.enabled = false;
      } else if (b == "1" || b == "yes" || b == "true" || b == "with" || b == "on" ||
                 b == "enable") {
        repo.enabled = true;
      }
    }
    if (!got_something) stanza_line = key_line_no;
    got_something = true;
    return true;
  };
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    std::string_view line = text.substr(pos, nl == std::string_view::npos ? text.npos : nl - pos);
    pos = nl == std::string_view::npos ? text.size() : nl + 1;
    ++line_no;
    if (TrimAscii(line).empty()) {
      if (!flush_key() || !finish()) return false;
      continue;
    }
    if (TrimAscii(line).front() == '#') continue;  // comment
    if (IsAsciiSpace(line.front()) && !key_line.empty()) {
      key_line += " ";
      key_line += std::string(TrimAscii(line));
      continue;
    }
    if (!flush_key()) return false;
    key_line = std::string(line);
    key_line_no = line_no;
  }
  return flush_key() && finish();
}

Result<AptSources> ReadAptSources(const Host& host) {
  AptSources out;
  auto read_one = [&](const std::string& abs, bool deb822) {
    auto text = host.ReadFile(abs);
    if (!text.ok()) {
      out.errors.push_back({abs, 0, text.status().message()});
      return;
    }
    AptRepositoryFile file;
    AptFileError err;
    bool ok = deb822 ? ParseAptSources(*text, abs, &file, &err)
                     : ParseAptList(*text, abs, &file, &err);
    if (ok) {
      out.files.push_back(std::move(file));
    } else {
      out.errors.push_back(std::move(err));
    }
  };
  const std::string main_list = "/etc/apt/sources.list";
  if (host.Exists(main_list)) {
    if (host.IsFile(main_list)) {
      read_one(main_list, false);
    } else {
      out.errors.push_back({main_list, 0, "not a regular file!"});
    }
  }
  const std::string dir = "/etc/apt/sources.list.d";
  auto names = host.ListDir(dir);
  if (!names.ok()) {
    if (names.status().IsNotFound()) return out;
    return Status::IoError("unable to read " + dir + ": " + names.status().message());
  }
  for (const auto& name : *names) {
    std::string abs = dir + "/" + name;
    if (host.IsDir(abs)) continue;
    if (name.front() == '.' || name.back() == '~') continue;
    size_t dot = name.rfind('.');
    if (dot == std::string::npos || dot == 0) {
      out.errors.push_back({abs, 0, "invalid extension"});
      continue;
    }
    std::string ext = name.substr(dot + 1);
    if (ext.rfind("dpkg-", 0) == 0 || ext.rfind("ucf-", 0) == 0 || ext == "disabled" ||
        ext == "bak" || ext == "save" || ext == "orig" || ext == "distUpgrade") {
      continue;
    }
    if (ext != "list" && ext != "sources") {
      out.errors.push_back({abs, 0, "invalid extension"});
      continue;
    }
    if (!std::all_of(name.begin(), name.end(), [](char c) {
          return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.';
        })) {
      out.errors.push_back({abs, 0, "invalid characters in file name"});
      continue;
    }
    read_one(abs, ext == "sources");
  }
  return out;
}

}  // namespace pbskit::checker
