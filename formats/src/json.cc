// serde_json-compatible JSON writers over Boost.JSON values.
#include "pbskit/formats/json.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <vector>

namespace pbskit {
namespace {

// Rust's ryu formatting (what serde_json prints for f64): shortest round-trip digits, plain
// notation while the decimal point lies within 16 digits, else `<d>[.<ddd>]e<exp>`.
void AppendDouble(double d, std::string* out) {
  if (!std::isfinite(d)) {  // serde_json writes null for NaN and infinities
    out->append("null");
    return;
  }
  if (std::signbit(d)) out->push_back('-');
  d = std::fabs(d);
  if (d == 0) {
    out->append("0.0");
    return;
  }
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof buf, d, std::chars_format::scientific);
  std::string sci(buf, res.ptr);
  size_t e = sci.find('e');
  std::string digits;
  for (size_t i = 0; i < e; ++i) {
    if (sci[i] != '.') digits.push_back(sci[i]);
  }
  int exp10 = std::stoi(sci.substr(e + 1));
  const int length = static_cast<int>(digits.size());
  const int kk = exp10 + 1;   // position of the decimal point
  const int k = kk - length;  // exponent of the last digit
  if (k >= 0 && kk <= 16) {
    out->append(digits);
    out->append(static_cast<size_t>(k), '0');
    out->append(".0");
  } else if (kk > 0 && kk <= 16) {
    out->append(digits, 0, static_cast<size_t>(kk));
    out->push_back('.');
    out->append(digits, static_cast<size_t>(kk), std::string::npos);
  } else if (kk > -5 && kk <= 0) {
    out->append("0.");
    out->append(static_cast<size_t>(-kk), '0');
    out->append(digits);
  } else {
    out->push_back(digits[0]);
    if (length > 1) {
      out->push_back('.');
      out->append(digits, 1, std::string::npos);
    }
    out->push_back('e');
    out->append(std::to_string(kk - 1));
  }
}

void AppendScalar(const boost::json::value& v, std::string* out) {
  switch (v.kind()) {
    case boost::json::kind::null:
      out->append("null");
      break;
    case boost::json::kind::bool_:
      out->append(v.get_bool() ? "true" : "false");
      break;
    case boost::json::kind::int64:
      out->append(std::to_string(v.get_int64()));
      break;
    case boost::json::kind::uint64:
      out->append(std::to_string(v.get_uint64()));
      break;
    case boost::json::kind::double_:
      AppendDouble(v.get_double(), out);
      break;
    case boost::json::kind::string: {
      const auto& s = v.get_string();
      AppendSerdeString(std::string_view(s.data(), s.size()), out);
      break;
    }
    default:
      break;
  }
}

void Indent(int level, std::string* out) { out->append(static_cast<size_t>(level) * 2, ' '); }

void WritePretty(const boost::json::value& v, int level, std::string* out) {
  if (v.is_object()) {
    const auto& o = v.get_object();
    if (o.empty()) {
      out->append("{}");
      return;
    }
    out->append("{\n");
    bool first = true;
    for (const auto& kv : o) {
      if (!first) out->append(",\n");
      first = false;
      Indent(level + 1, out);
      AppendSerdeString(std::string_view(kv.key().data(), kv.key().size()), out);
      out->append(": ");
      WritePretty(kv.value(), level + 1, out);
    }
    out->push_back('\n');
    Indent(level, out);
    out->push_back('}');
  } else if (v.is_array()) {
    const auto& a = v.get_array();
    if (a.empty()) {
      out->append("[]");
      return;
    }
    out->append("[\n");
    bool first = true;
    for (const auto& e : a) {
      if (!first) out->append(",\n");
      first = false;
      Indent(level + 1, out);
      WritePretty(e, level + 1, out);
    }
    out->push_back('\n');
    Indent(level, out);
    out->push_back(']');
  } else {
    AppendScalar(v, out);
  }
}

// Writes compact JSON; with `canonical`, object keys are sorted bytewise and null fails.
bool WriteCompact(const boost::json::value& v, bool canonical, std::string* out) {
  if (v.is_object()) {
    const auto& o = v.get_object();
    std::vector<const boost::json::key_value_pair*> items;
    items.reserve(o.size());
    for (const auto& kv : o) items.push_back(&kv);
    if (canonical) {
      std::sort(items.begin(), items.end(), [](const auto* a, const auto* b) {
        return std::string_view(a->key().data(), a->key().size()) <
               std::string_view(b->key().data(), b->key().size());
      });
    }
    out->push_back('{');
    bool first = true;
    for (const auto* kv : items) {
      if (!first) out->push_back(',');
      first = false;
      AppendSerdeString(std::string_view(kv->key().data(), kv->key().size()), out);
      out->push_back(':');
      if (!WriteCompact(kv->value(), canonical, out)) return false;
    }
    out->push_back('}');
    return true;
  }
  if (v.is_array()) {
    out->push_back('[');
    bool first = true;
    for (const auto& e : v.get_array()) {
      if (!first) out->push_back(',');
      first = false;
      if (!WriteCompact(e, canonical, out)) return false;
    }
    out->push_back(']');
    return true;
  }
  if (canonical && v.is_null()) return false;
  AppendScalar(v, out);
  return true;
}

}  // namespace

void AppendSerdeString(std::string_view s, std::string* out) {
  static const char kHex[] = "0123456789abcdef";
  out->push_back('"');
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"':
        out->append("\\\"");
        break;
      case '\\':
        out->append("\\\\");
        break;
      case '\b':
        out->append("\\b");
        break;
      case '\f':
        out->append("\\f");
        break;
      case '\n':
        out->append("\\n");
        break;
      case '\r':
        out->append("\\r");
        break;
      case '\t':
        out->append("\\t");
        break;
      default:
        if (c < 0x20) {
          out->append("\\u00");
          out->push_back(kHex[c >> 4]);
          out->push_back(kHex[c & 15]);
        } else {
          out->push_back(ch);
        }
    }
  }
  out->push_back('"');
}

std::string ToSerdePretty(const boost::json::value& v) {
  std::string out;
  WritePretty(v, 0, &out);
  return out;
}

std::string ToSerdeCompact(const boost::json::value& v) {
  std::string out;
  WriteCompact(v, false, &out);
  return out;
}

Result<std::string> ToCanonicalJson(const boost::json::value& v) {
  std::string out;
  if (!WriteCompact(v, true, &out)) {
    return Status::InvalidArgument("canonical JSON: null values cannot be signed");
  }
  return out;
}

boost::json::value SortedKeys(const boost::json::value& v) {
  if (v.is_object()) {
    const auto& o = v.get_object();
    std::vector<const boost::json::key_value_pair*> items;
    for (const auto& kv : o) items.push_back(&kv);
    std::sort(items.begin(), items.end(), [](const auto* a, const auto* b) {
      return std::string_view(a->key().data(), a->key().size()) <
             std::string_view(b->key().data(), b->key().size());
    });
    boost::json::object sorted;
    sorted.reserve(items.size());
    for (const auto* kv : items) sorted.emplace(kv->key(), SortedKeys(kv->value()));
    return sorted;
  }
  if (v.is_array()) {
    boost::json::array a;
    a.reserve(v.get_array().size());
    for (const auto& e : v.get_array()) a.push_back(SortedKeys(e));
    return a;
  }
  return v;
}

}  // namespace pbskit
