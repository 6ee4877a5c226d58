// Property-string codec; see property_string.h for the grammar.
#include "pbskit/formats/property_string.h"

#include <set>

namespace pbskit {
namespace {

// Reads a quoted value starting at data[0] == '"'. On success advances `data` past the closing
// quote and stores the unescaped text in `out`.
Status ParseQuoted(std::string_view& data, std::string* out) {
  out->clear();
  size_t i = 1;
  bool escaped = false;
  for (; i < data.size(); ++i) {
    char c = data[i];
    if (escaped) {
      escaped = false;
      switch (c) {
        case '"': out->push_back('"'); break;
        case '\\': out->push_back('\\'); break;
        case 'n': out->push_back('\n'); break;
        default:
          return Status::InvalidArgument(std::string("unsupported escape sequence '\\") + c +
                                         "' in quoted value");
      }
      continue;
    }
    if (c == '\\') {
      escaped = true;
    } else if (c == '"') {
      data.remove_prefix(i + 1);
      return Status::OK();
    } else {
      out->push_back(c);
    }
  }
  return Status::InvalidArgument("unexpected end of string in quoted value");
}

bool NeedsQuotes(std::string_view v) {
  if (!v.empty() && v.front() == '"') return true;
  return v.find_first_of("\"\\\n,") != std::string_view::npos;
}

int HexNibble(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool ValidUtf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    size_t n;
    uint32_t cp;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      n = 1;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      n = 2;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      n = 3;
      cp = c & 0x07;
    } else {
      return false;
    }
    for (size_t k = 1; k <= n; ++k) {
      if (i + k >= s.size()) return false;
      unsigned char cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
        cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
      return false;
    }
    i += n + 1;
  }
  return true;
}

}  // namespace

Result<PropertyList> ParsePropertyString(std::string_view s, std::string_view default_key) {
  PropertyList out;
  std::set<std::string, std::less<>> seen;
  std::string_view data = s;
  while (!data.empty()) {
    std::string key;
    bool has_key = false;
    std::string value;
    if (data.front() != '"') {
      size_t pos = data.find_first_of(",=");
      if (pos != std::string_view::npos && data[pos] == '=') {
        key = std::string(data.substr(0, pos));
        has_key = true;
        data.remove_prefix(pos + 1);
      }
    }
    if (!data.empty() && data.front() == '"') {
      Status st = ParseQuoted(data, &value);
      if (!st.ok()) return st.WithContext("property string '" + std::string(s) + "'");
      if (!data.empty()) {
        if (data.front() != ',') {
          return Status::InvalidArgument("property string '" + std::string(s) +
                                         "': garbage after quoted string");
        }
        data.remove_prefix(1);
      }
    } else {
      size_t comma = data.find(',');
      if (comma == std::string_view::npos) {
        value = std::string(data);
        data = {};
      } else {
        value = std::string(data.substr(0, comma));
        data.remove_prefix(comma + 1);
      }
    }
    if (!has_key) {
      if (default_key.empty()) {
        return Status::InvalidArgument("property string '" + std::string(s) + "': value '" +
                                       value +
                                       "' without key, but schema does not define a default key");
      }
      key = std::string(default_key);
    }
    if (key.empty()) {
      return Status::InvalidArgument("property string '" + std::string(s) + "': empty key");
    }
    if (!seen.insert(key).second) {
      return Status::InvalidArgument("property string '" + std::string(s) + "': parameter '" +
                                     key + "': duplicate parameter.");
    }
    out.emplace_back(std::move(key), std::move(value));
  }
  return out;
}

std::string FormatPropertyString(const PropertyList& kv, std::string_view default_key) {
  std::string out;
  for (const auto& [key, value] : kv) {
    if (!out.empty()) out.push_back(',');
    if (default_key.empty() || key != default_key) {
      out += key;
      out.push_back('=');
    }
    if (!NeedsQuotes(value)) {
      out += value;
      continue;
    }
    out.push_back('"');
    for (char c : value) {
      if (c == '"') {
        out += "\\\"";
      } else if (c == '\\') {
        out += "\\\\";
      } else if (c == '\n') {
        out += "\\n";
      } else {
        out.push_back(c);
      }
    }
    out.push_back('"');
  }
  return out;
}

std::string PercentDecode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      int hi = HexNibble(s[i + 1]);
      int lo = HexNibble(s[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out.push_back(static_cast<char>(hi * 16 + lo));
        i += 2;
        continue;
      }
    }
    out.push_back(s[i]);
  }
  if (!ValidUtf8(out)) return {};
  return out;
}

const std::string* FindProperty(const PropertyList& kv, std::string_view key) {
  for (const auto& [k, v] : kv) {
    if (k == key) return &v;
  }
  return nullptr;
}

}  // namespace pbskit
