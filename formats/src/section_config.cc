// Section-config reader and writer; see section_config.h.
#include "pbskit/formats/section_config.h"

#include <algorithm>

namespace pbskit {
namespace {

constexpr std::string_view kWhitespace = " \t\n\v\f\r";

bool IsSpace(char c) { return kWhitespace.find(c) != std::string_view::npos; }

std::string_view Trim(std::string_view s) {
  size_t b = s.find_first_not_of(kWhitespace);
  if (b == std::string_view::npos) return {};
  size_t e = s.find_last_not_of(kWhitespace);
  return s.substr(b, e - b + 1);
}

bool IsAlpha(char c) {
  // Rust's char::is_alphabetic also accepts non-ASCII letters; treat any UTF-8 lead byte as one.
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || static_cast<unsigned char>(c) >= 0xC0;
}

enum class State { kBeforeHeader, kInSection, kSkipSection };

// Parses the file; stops at the first error when `errors` is null.
Status ParseImpl(std::string_view text, const std::string& filename, SectionConfig* out,
                 std::vector<SectionConfigError>* errors) {
  State state = State::kBeforeHeader;
  int line_no = 0;
  size_t pos = 0;
  auto fail = [&](const std::string& message) -> bool {
    if (errors) {
      errors->push_back({filename, line_no, message});
      return true;
    }
    return false;
  };
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    std::string_view line =
        text.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
    pos = nl == std::string_view::npos ? text.size() : nl + 1;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    ++line_no;
    bool blank = Trim(line).empty();

    if (state == State::kSkipSection) {
      if (blank) {
        state = State::kBeforeHeader;
        continue;
      }
      if (IsSpace(line.front())) continue;  // a property of the section we could not start
      state = State::kBeforeHeader;           // lenient: try it as the next header
    }
    if (state == State::kInSection) {
      if (blank) {
        state = State::kBeforeHeader;
        continue;
      }
      std::string_view rest = line;
      if (!IsSpace(rest.front())) {
        if (!fail("syntax error (expected section properties)")) {
          return Status::InvalidArgument(filename + ":" + std::to_string(line_no) +
                                         ": syntax error (expected section properties)");
        }
        // Lenient: a missing blank line before the next header should not hide that section,
        // so a line that reads as a header starts one; anything else is skipped.
        size_t c = line.find(':');
        if (IsAlpha(line.front()) && c != std::string_view::npos &&
            !Trim(line.substr(0, c)).empty() && !Trim(line.substr(c + 1)).empty()) {
          state = State::kBeforeHeader;
        }
      }
    }
    if (state == State::kInSection) {
      std::string_view rest = line;
      if (!IsSpace(rest.front())) continue;  // reported above
      rest = rest.substr(rest.find_first_not_of(kWhitespace));
      size_t sep = rest.find_first_of(kWhitespace);
      if (sep == std::string_view::npos) {
        std::string msg = "syntax error (expected section properties): property '" +
                          std::string(rest) + "' has no value";
        if (!fail(msg)) {
          return Status::InvalidArgument(filename + ":" + std::to_string(line_no) + ": " + msg);
        }
        continue;
      }
      SectionConfigEntry& entry = out->sections.back();
      entry.properties.emplace_back(std::string(rest.substr(0, sep)),
                                    std::string(Trim(rest.substr(sep + 1))));
      entry.property_lines.push_back(line_no);
      continue;
    }

    // Before a header.
    if (blank) continue;
    size_t colon = line.find(':');
    std::string_view type = colon == std::string_view::npos ? std::string_view{}
                                                            : Trim(line.substr(0, colon));
    if (!IsAlpha(line.front()) || colon == std::string_view::npos || type.empty()) {
      if (!fail("syntax error (expected header)")) {
        return Status::InvalidArgument(filename + ":" + std::to_string(line_no) +
                                       ": syntax error (expected header)");
      }
      state = State::kSkipSection;
      continue;
    }
    std::string_view id = Trim(line.substr(colon + 1));
    std::string id_error;
    if (id.empty()) {
      id_error = "syntax error in section identifier: empty id";
    } else if (std::any_of(id.begin(), id.end(), [](char c) {
                 return static_cast<unsigned char>(c) < 0x20 || c == 0x7f;
               })) {
      id_error = "syntax error in section identifier: control character in id";
    }
    if (!id_error.empty()) {
      if (!fail(id_error)) {
        return Status::InvalidArgument(filename + ":" + std::to_string(line_no) + ": " +
                                       id_error);
      }
      state = State::kSkipSection;
      continue;
    }
    SectionConfigEntry entry;
    entry.type = std::string(type);
    entry.id = std::string(id);
    entry.line = line_no;
    out->sections.push_back(std::move(entry));
    state = State::kInSection;
  }
  return Status::OK();
}

}  // namespace

const std::string* SectionConfigEntry::Get(std::string_view key) const {
  for (const auto& [k, v] : properties) {
    if (k == key) return &v;
  }
  return nullptr;
}

std::vector<std::string> SectionConfigEntry::GetAll(std::string_view key) const {
  std::vector<std::string> out;
  for (const auto& [k, v] : properties) {
    if (k == key) out.push_back(v);
  }
  return out;
}

int SectionConfigEntry::LineOf(std::string_view key) const {
  for (size_t i = 0; i < properties.size(); ++i) {
    if (properties[i].first == key && i < property_lines.size() && property_lines[i] > 0) {
      return property_lines[i];
    }
  }
  return line;
}

void SectionConfigEntry::Set(std::string key, std::string value) {
  property_lines.resize(properties.size(), 0);
  for (size_t i = 0; i < properties.size(); ++i) {
    if (properties[i].first != key) continue;
    properties[i].second = std::move(value);
    for (size_t j = properties.size(); j-- > i + 1;) {
      if (properties[j].first == key) {
        properties.erase(properties.begin() + static_cast<std::ptrdiff_t>(j));
        property_lines.erase(property_lines.begin() + static_cast<std::ptrdiff_t>(j));
      }
    }
    return;
  }
  Add(std::move(key), std::move(value));
}

void SectionConfigEntry::Add(std::string key, std::string value) {
  property_lines.resize(properties.size(), 0);
  properties.emplace_back(std::move(key), std::move(value));
  property_lines.push_back(0);
}

void SectionConfigEntry::Erase(std::string_view key) {
  property_lines.resize(properties.size(), 0);
  for (size_t j = properties.size(); j-- > 0;) {
    if (properties[j].first == key) {
      properties.erase(properties.begin() + static_cast<std::ptrdiff_t>(j));
      property_lines.erase(property_lines.begin() + static_cast<std::ptrdiff_t>(j));
    }
  }
}

std::string SectionConfigError::ToString() const {
  return file + ":" + std::to_string(line) + ": " + message;
}

Result<SectionConfig> SectionConfig::Parse(std::string_view text, const std::string& filename) {
  SectionConfig config;
  PBSKIT_RETURN_IF_ERROR(ParseImpl(text, filename, &config, nullptr));
  return config;
}

SectionConfig SectionConfig::ParseLenient(std::string_view text, const std::string& filename,
                                          std::vector<SectionConfigError>* errors) {
  SectionConfig config;
  std::vector<SectionConfigError> sink;
  (void)ParseImpl(text, filename, &config, errors ? errors : &sink);
  return config;
}

const SectionConfigEntry* SectionConfig::Find(std::string_view type, std::string_view id) const {
  for (const auto& s : sections) {
    if (s.type == type && s.id == id) return &s;
  }
  return nullptr;
}

SectionConfigEntry* SectionConfig::Find(std::string_view type, std::string_view id) {
  for (auto& s : sections) {
    if (s.type == type && s.id == id) return &s;
  }
  return nullptr;
}

std::vector<const SectionConfigEntry*> SectionConfig::OfType(std::string_view type) const {
  std::vector<const SectionConfigEntry*> out;
  for (const auto& s : sections) {
    if (s.type == type) out.push_back(&s);
  }
  return out;
}

std::string SectionConfig::ToString() const {
  std::string out;
  for (const auto& s : sections) {
    if (!out.empty()) out.push_back('\n');
    out += s.type + ": " + s.id + "\n";
    std::vector<const std::pair<std::string, std::string>*> props;
    props.reserve(s.properties.size());
    for (const auto& p : s.properties) props.push_back(&p);
    std::stable_sort(props.begin(), props.end(),
                     [](const auto* a, const auto* b) { return a->first < b->first; });
    for (const auto* p : props) out += "\t" + p->first + " " + p->second + "\n";
  }
  return out;
}

}  // namespace pbskit
