// PBS's include/exclude path patterns (pathpatterns with PATH_NAME): a pattern is compiled to a
// list of glob components and matched with git's wildmatch rules.
#include <cctype>

#include "pbskit/importers/pxar_restore.h"

namespace pbskit::importers {

struct PxarMatchList::Component {
  enum Kind { kLiteral, kQuestion, kStar, kStarStar, kClass } kind = kLiteral;
  std::string literal;
  // Character class: listed bytes, ranges, named predicates, negation.
  bool negated = false;
  std::string listed;
  std::vector<std::pair<unsigned char, unsigned char>> ranges;
  std::vector<int (*)(int)> named;

  static Component Of(Kind k) {
    Component c;
    c.kind = k;
    return c;
  }

  bool ClassMatches(unsigned char c) const {
    bool in = listed.find(static_cast<char>(c)) != std::string::npos;
    for (auto [lo, hi] : ranges) in = in || (c >= lo && c <= hi);
    for (auto* fn : named) in = in || fn(c) != 0;
    return in != negated;
  }
  bool EndsWithSlash() const {
    return kind == kLiteral && !literal.empty() && literal.back() == '/';
  }
  bool StartsWithSlash() const { return kind == kLiteral && !literal.empty() && literal[0] == '/'; }
};

struct PxarMatchList::Entry {
  std::vector<Component> components;
  bool include = true;
  bool dirs_only = false;
};

namespace {

using Component = PxarMatchList::Component;

enum class Outcome { kMatch, kNoMatch, kAbortAll, kAbortToStarStar };

int IsBlank(int c) { return c == ' ' || c == '\t'; }
int IsPrintAscii(int c) { return c >= 0x20 && c <= 0x7f; }
int IsPunctAscii(int c) { return c < 0x80 && std::ispunct(c); }
int IsGraphAscii(int c) { return c < 0x80 && std::isgraph(c); }

struct NamedClass {
  const char* name;
  int (*fn)(int);
};
constexpr NamedClass kNamedClasses[] = {
    {"alnum", [](int c) { return c < 0x80 ? std::isalnum(c) : 0; }},
    {"alpha", [](int c) { return c < 0x80 ? std::isalpha(c) : 0; }},
    {"blank", IsBlank},
    {"cntrl", [](int c) { return c < 0x80 ? std::iscntrl(c) : 0; }},
    {"digit", [](int c) { return c < 0x80 ? std::isdigit(c) : 0; }},
    {"graph", IsGraphAscii},
    {"lower", [](int c) { return c < 0x80 ? std::islower(c) : 0; }},
    {"print", IsPrintAscii},
    {"punct", IsPunctAscii},
    {"space", [](int c) { return c < 0x80 ? std::isspace(c) : 0; }},
    {"upper", [](int c) { return c < 0x80 ? std::isupper(c) : 0; }},
    {"xdigit", [](int c) { return c < 0x80 ? std::isxdigit(c) : 0; }},
};

Status Invalid(std::string_view pattern, const std::string& why) {
  return Status::InvalidArgument("invalid pattern '" + std::string(pattern) + "': " + why);
}

// Parses `[...]` starting at p[i] == '['; returns the index of the closing ']'.
Result<size_t> ParseClass(std::string_view p, size_t i, std::string_view whole, Component* c) {
  const size_t begin = i;
  ++i;
  if (i < p.size() && p[i] == '^') {
    c->negated = true;
    ++i;
  }
  int prev = -1;
  for (; i < p.size(); ++i) {
    unsigned char ch = static_cast<unsigned char>(p[i]);
    int next_prev = -1;
    if (ch == ']') return i;
    if (ch == '[' && i + 1 < p.size() && p[i + 1] == ':') {
      size_t close = p.find(":]", i + 2);
      const NamedClass* found = nullptr;
      if (close != std::string_view::npos)
        for (const NamedClass& nc : kNamedClasses)
          if (p.substr(i + 2, close - i - 2) == nc.name) found = &nc;
      if (!found)
        return Invalid(whole, "malformed named character class in pattern, starting at byte " +
                                  std::to_string(begin));
      c->named.push_back(found->fn);
      i = close + 1;
    } else if (ch == '\\') {
      if (++i == p.size()) return Invalid(whole, "trailing backslash in pattern");
      c->listed.push_back(p[i]);
      next_prev = static_cast<unsigned char>(p[i]);
    } else if (ch == '-' && prev >= 0) {
      c->listed.pop_back();  // the range start was listed on its own
      if (++i == p.size()) break;
      unsigned char end = static_cast<unsigned char>(p[i]);
      if (end == '\\') {
        if (++i == p.size()) break;
        end = static_cast<unsigned char>(p[i]);
      }
      unsigned char lo = static_cast<unsigned char>(prev);
      c->ranges.emplace_back(std::min(lo, end), std::max(lo, end));
    } else {
      c->listed.push_back(static_cast<char>(ch));
      next_prev = ch;
    }
    prev = next_prev;
  }
  return Invalid(whole,
                 "unclosed character class in pattern, starting at byte " + std::to_string(begin));
}

Result<std::vector<Component>> Compile(std::string_view p, std::string_view whole) {
  std::vector<Component> out;
  std::string literal;
  auto flush = [&] {
    if (literal.empty()) return;
    Component c;
    c.literal = std::move(literal);
    literal.clear();
    out.push_back(std::move(c));
  };
  for (size_t i = 0; i < p.size(); ++i) {
    char ch = p[i];
    if (ch == '\0') return Invalid(whole, "null-byte in pattern");
    if (ch == '\\') {
      if (++i == p.size()) return Invalid(whole, "trailing backslash in pattern");
      literal.push_back(p[i]);
    } else if (ch == '?') {
      flush();
      out.push_back(Component::Of(Component::kQuestion));
    } else if (ch == '*') {
      flush();
      size_t first = i;
      while (i + 1 < p.size() && p[i + 1] == '*') ++i;
      // `**` spans directories only as a whole path component, like git.
      bool starstar = i > first && (first == 0 || p[first - 1] == '/') &&
                      (i + 1 == p.size() || p[i + 1] == '/');
      out.push_back(Component::Of(starstar ? Component::kStarStar : Component::kStar));
    } else if (ch == '[') {
      flush();
      Component c = Component::Of(Component::kClass);
      PBSKIT_ASSIGN_OR_RETURN(i, ParseClass(p, i, whole, &c));
      out.push_back(std::move(c));
    } else {
      literal.push_back(ch);
    }
  }
  flush();
  return out;
}

// git's wildmatch over compiled components; `*` and `?` never match '/'.
Outcome Match(const std::vector<Component>& cs, size_t ci, std::string_view text, bool skip_slash) {
  for (; ci < cs.size(); ++ci) {
    const Component& c = cs[ci];
    bool skip = skip_slash;
    skip_slash = false;
    switch (c.kind) {
      case Component::kLiteral: {
        if (text.empty()) return Outcome::kAbortAll;
        std::string_view lit = c.literal;
        if (skip) lit.remove_prefix(1);
        if (text.substr(0, lit.size()) != lit) return Outcome::kNoMatch;
        text.remove_prefix(lit.size());
        break;
      }
      case Component::kQuestion:
        if (text.empty()) return Outcome::kAbortAll;
        if (text[0] == '/') return Outcome::kNoMatch;
        text.remove_prefix(1);
        break;
      case Component::kClass:
        if (text.empty()) return Outcome::kAbortAll;
        if (!c.ClassMatches(static_cast<unsigned char>(text[0]))) return Outcome::kNoMatch;
        text.remove_prefix(1);
        break;
      case Component::kStar:
        if (ci + 1 == cs.size() && text.find('/') == std::string_view::npos) return Outcome::kMatch;
        for (;;) {
          if (text.empty()) return Outcome::kAbortAll;
          Outcome o = Match(cs, ci + 1, text, false);
          if (o != Outcome::kNoMatch) return o;
          if (text[0] == '/') return Outcome::kAbortToStarStar;
          text.remove_prefix(1);
        }
      case Component::kStarStar: {
        if (ci + 1 == cs.size()) return Outcome::kMatch;
        // "a/**/b" also matches "a/b": let the `**` match nothing and the slash vanish.
        if ((ci == 0 || cs[ci - 1].EndsWithSlash()) && cs[ci + 1].StartsWithSlash() &&
            Match(cs, ci + 1, text, true) == Outcome::kMatch)
          return Outcome::kMatch;
        for (;;) {
          if (text.empty()) return Outcome::kAbortAll;
          Outcome o = Match(cs, ci + 1, text, false);
          if (o == Outcome::kMatch || o == Outcome::kAbortAll) return o;
          text.remove_prefix(1);
        }
      }
    }
  }
  return text.empty() ? Outcome::kMatch : Outcome::kNoMatch;
}

bool MatchesExact(const PxarMatchList::Entry& e, std::string_view text) {
  return Match(e.components, 0, text, false) == Outcome::kMatch;
}

}  // namespace

Status PxarMatchList::Add(std::string_view pattern) {
  auto e = std::make_shared<Entry>();
  std::string_view p = pattern;
  if (!p.empty() && p[0] == '!') {
    e->include = false;
    p.remove_prefix(1);
  }
  size_t last = p.find_last_not_of('/');
  if (last == std::string_view::npos) {
    p = "/";  // only slashes (or nothing): the root directory
    e->dirs_only = true;
  } else if (last + 1 != p.size()) {
    p = p.substr(0, last + 1);
    e->dirs_only = true;
  }
  PBSKIT_ASSIGN_OR_RETURN(e->components, Compile(p, pattern));
  entries_.push_back(std::move(e));
  return Status::OK();
}

std::optional<bool> PxarMatchList::Matches(std::string_view path, uint64_t mode) const {
  for (auto it = entries_.rbegin(); it != entries_.rend(); ++it) {
    const Entry& e = **it;
    if (e.dirs_only && (mode & pxar::kModeIfmt) != pxar::kModeIfdir) continue;
    if (path.empty()) continue;
    bool hit = false;
    for (size_t start = path.size(); start-- > 0 && !hit;)
      if (path[start] == '/' && MatchesExact(e, path.substr(start + 1))) hit = true;
    if (!hit) hit = MatchesExact(e, path);
    if (hit) return e.include;
  }
  return std::nullopt;
}

}  // namespace pbskit::importers
