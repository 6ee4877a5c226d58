// Parameter extraction and validation with proxmox-schema's rules and messages.
#include <cctype>
#include <set>

#include "api.h"
#include "pbskit/formats/names.h"

namespace pbskit::server {
namespace {

int HexVal(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string Lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// Checks one scalar against `def`; returns the typed JSON value or an error message.
std::optional<std::string> CheckScalar(const ParamDef& def, ParamType scalar_type,
                                       const boost::json::value& in, boost::json::value* out) {
  switch (scalar_type) {
    case ParamType::kBoolean: {
      if (in.is_bool()) {
        *out = in;
      } else if (in.is_string()) {
        std::string v = Lower(std::string(in.as_string()));
        if (v == "1" || v == "on" || v == "yes" || v == "true") {
          *out = true;
        } else if (v == "0" || v == "off" || v == "no" || v == "false") {
          *out = false;
        } else {
          return std::string("Unable to parse boolean option.");
        }
      } else if (in.is_int64() && (in.as_int64() == 0 || in.as_int64() == 1)) {
        *out = in.as_int64() == 1;
      } else {
        return std::string("Expected boolean value.");
      }
      return std::nullopt;
    }
    case ParamType::kInteger: {
      int64_t n = 0;
      if (in.is_int64()) {
        n = in.as_int64();
      } else if (in.is_uint64() && in.as_uint64() <= static_cast<uint64_t>(INT64_MAX)) {
        n = static_cast<int64_t>(in.as_uint64());
      } else if (in.is_string()) {
        const std::string s(in.as_string());
        try {
          size_t pos = 0;
          n = std::stoll(s, &pos, 10);
          if (pos != s.size() || s.empty()) throw std::invalid_argument("x");
        } catch (const std::exception&) {
          return "Unable to parse integer '" + s + "'";
        }
      } else {
        return std::string("Expected integer value.");
      }
      if (n < def.min) {
        return "value must have a minimum value of " + std::to_string(def.min) + " (got " +
               std::to_string(n) + ")";
      }
      if (n > def.max) {
        return "value must have a maximum value of " + std::to_string(def.max) + " (got " +
               std::to_string(n) + ")";
      }
      *out = n;
      return std::nullopt;
    }
    default: {
      if (!in.is_string()) return std::string("Expected string value.");
      std::string s(in.as_string());
      if (def.min > 0 && static_cast<int64_t>(s.size()) < def.min) {
        return "value must be at least " + std::to_string(def.min) + " characters long";
      }
      if (def.max != std::numeric_limits<int64_t>::max() &&
          static_cast<int64_t>(s.size()) > def.max) {
        return "value may only be " + std::to_string(def.max) + " characters long";
      }
      if (def.check) {
        Status st = def.check(s);
        if (!st.ok()) return st.message();
      }
      *out = boost::json::string(s);
      return std::nullopt;
    }
  }
}

}  // namespace

std::string PercentDecode(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '%' && i + 2 < text.size() &&
        HexVal(text[i + 1]) >= 0 && HexVal(text[i + 2]) >= 0) {
      out += static_cast<char>(HexVal(text[i + 1]) * 16 + HexVal(text[i + 2]));
      i += 2;
    } else {
      out += text[i];
    }
  }
  return out;
}

std::string PercentEncode(std::string_view text) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : text) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

std::vector<std::pair<std::string, std::string>> ParseUrlEncoded(std::string_view text) {
  std::vector<std::pair<std::string, std::string>> out;
  size_t pos = 0;
  while (pos <= text.size() && !text.empty()) {
    size_t end = text.find('&', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string part(text.substr(pos, end - pos));
    pos = end + 1;
    if (!part.empty()) {
      for (auto& c : part) {
        if (c == '+') c = ' ';
      }
      auto eq = part.find('=');
      std::string k = PercentDecode(part.substr(0, eq));
      std::string v = eq == std::string::npos ? "" : PercentDecode(part.substr(eq + 1));
      out.emplace_back(std::move(k), std::move(v));
    }
    if (end == text.size()) break;
  }
  return out;
}

Result<boost::json::object> ParseParameters(
    const Route& route, const HttpRequest& request,
    const std::map<std::string, std::string>& path_params) {
  // Raw input: name -> list of JSON values (arrays from repeated keys).
  std::vector<std::pair<std::string, boost::json::value>> input;
  std::vector<std::pair<std::string, std::string>> errors;
  std::set<std::string> from_path;

  const std::string* ct = request.Header("content-type");
  std::string content_type = ct ? Lower(ct->substr(0, ct->find(';'))) : "";
  while (!content_type.empty() && content_type.back() == ' ') content_type.pop_back();

  if (!route.raw_body && content_type == "application/json") {
    if (!request.body.empty()) {
      boost::system::error_code ec;
      auto v = boost::json::parse(request.body, ec);
      if (ec || !v.is_object()) {
        return Status::InvalidArgument("unable to parse json request body - expected object");
      }
      for (auto& [k, val] : v.as_object()) input.emplace_back(std::string(k), val);
    }
  } else {
    if (!route.raw_body && !content_type.empty() &&
        content_type != "application/x-www-form-urlencoded") {
      return Status::InvalidArgument("unsupported content type \"" + content_type + "\"");
    }
    std::vector<std::pair<std::string, std::string>> pairs = ParseUrlEncoded(request.query);
    if (!route.raw_body) {
      auto body_pairs = ParseUrlEncoded(request.body);
      pairs.insert(pairs.end(), body_pairs.begin(), body_pairs.end());
    }
    for (auto& [k, v] : pairs) {
      if (k == "_dc") continue;
      input.emplace_back(k, boost::json::string(v));
    }
  }
  for (const auto& [k, v] : path_params) {
    input.emplace_back(k, boost::json::string(v));
    from_path.insert(k);
  }

  boost::json::object out;
  std::map<std::string, boost::json::array> arrays;
  for (auto& [name, value] : input) {
    const ParamDef* def = nullptr;
    for (const auto& d : route.params) {
      if (d.name == name) def = &d;
    }
    if (!def) {
      errors.emplace_back(name, "schema does not allow additional properties.");
      continue;
    }
    bool is_array = def->type == ParamType::kStringArray || def->type == ParamType::kIntegerArray;
    ParamType scalar =
        def->type == ParamType::kStringArray
            ? ParamType::kString
            : (def->type == ParamType::kIntegerArray ? ParamType::kInteger : def->type);
    if (is_array) {
      std::vector<boost::json::value> items;
      if (value.is_array()) {
        for (auto& item : value.as_array()) items.push_back(item);
      } else {
        items.push_back(value);
      }
      for (auto& item : items) {
        boost::json::value typed;
        auto err = CheckScalar(*def, scalar, item, &typed);
        if (err) {
          errors.emplace_back(name, *err);
          break;
        }
        arrays[name].push_back(std::move(typed));
      }
      continue;
    }
    if (out.contains(name)) {
      errors.emplace_back(name, "duplicate parameter.");
      continue;
    }
    boost::json::value typed;
    auto err = CheckScalar(*def, scalar, value, &typed);
    if (err) {
      errors.emplace_back(name, *err);
      continue;
    }
    out[name] = std::move(typed);
  }
  for (auto& [name, arr] : arrays) out[name] = std::move(arr);
  for (const auto& def : route.params) {
    if (!def.optional && !out.contains(def.name)) {
      bool reported = false;
      for (const auto& e : errors) reported |= e.first == def.name;
      if (!reported) errors.emplace_back(def.name, "parameter is missing and it is not optional.");
    }
  }
  if (errors.empty()) return out;
  if (errors.size() == 1) {
    return Status::InvalidArgument("parameter verification failed - '" + errors[0].first +
                                   "': " + errors[0].second);
  }
  std::string msg = "parameter verification failed:";
  for (const auto& [n, e] : errors) msg += "\n- '" + n + "': " + e;
  return Status::InvalidArgument(msg);
}

std::string ApiCall::Str(const std::string& name, const std::string& def) const {
  auto* v = params.if_contains(name);
  return v && v->is_string() ? std::string(v->as_string()) : def;
}

int64_t ApiCall::Int(const std::string& name, int64_t def) const {
  auto* v = params.if_contains(name);
  return v && v->is_int64() ? v->as_int64() : def;
}

bool ApiCall::Bool(const std::string& name, bool def) const {
  auto* v = params.if_contains(name);
  return v && v->is_bool() ? v->as_bool() : def;
}

std::vector<std::string> ApiCall::StrList(const std::string& name) const {
  std::vector<std::string> out;
  if (auto* v = params.if_contains(name); v && v->is_array()) {
    for (const auto& i : v->as_array()) out.emplace_back(i.as_string());
  }
  return out;
}

std::vector<int64_t> ApiCall::IntList(const std::string& name) const {
  std::vector<int64_t> out;
  if (auto* v = params.if_contains(name); v && v->is_array()) {
    for (const auto& i : v->as_array()) out.push_back(i.as_int64());
  }
  return out;
}

ParamDef StoreParam() {
  ParamDef d{"store", ParamType::kString, false, 3, 32, nullptr};
  d.check = [](const std::string& s) {
    return IsSafeId(s) ? Status::OK()
                       : Status::InvalidArgument("value does not match the regex pattern");
  };
  return d;
}

ParamDef NsParam() {
  ParamDef d{"ns", ParamType::kString, true, 0, 256, nullptr};
  d.check = [](const std::string& s) {
    auto ns = BackupNamespace::Parse(s);
    return ns.ok() ? Status::OK() : Status::InvalidArgument(ns.status().message());
  };
  return d;
}

ParamDef BackupTypeParam(bool optional) {
  ParamDef d{"backup-type", ParamType::kString, optional, 0,
             std::numeric_limits<int64_t>::max(), nullptr};
  d.check = [](const std::string& s) {
    return ParseBackupType(s).ok() ? Status::OK()
                                   : Status::InvalidArgument("value '" + s +
                                                             "' is not defined in the enumeration.");
  };
  return d;
}

ParamDef BackupIdParam(bool optional) {
  ParamDef d{"backup-id", ParamType::kString, optional, 0,
             std::numeric_limits<int64_t>::max(), nullptr};
  d.check = [](const std::string& s) {
    return IsSafeId(s) ? Status::OK()
                       : Status::InvalidArgument("value does not match the regex pattern");
  };
  return d;
}

ParamDef BackupTimeParam(bool optional) {
  return ParamDef{"backup-time", ParamType::kInteger, optional, 1,
                  std::numeric_limits<int64_t>::max(), nullptr};
}

}  // namespace pbskit::server
