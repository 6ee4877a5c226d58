#include "pbskit/formats/upid.h"

#include <cinttypes>
#include <cstdio>
#include <vector>

namespace pbskit {
namespace {

bool IsAlnum(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Parses a field of [min_len, max_len] hex digits (either case).
bool ParseHexField(std::string_view f, size_t min_len, size_t max_len, uint64_t* out) {
  if (f.size() < min_len || f.size() > max_len) return false;
  uint64_t v = 0;
  for (char c : f) {
    int h = HexValue(c);
    if (h < 0) return false;
    v = (v << 4) | static_cast<uint64_t>(h);
  }
  *out = v;
  return true;
}

// node: [a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?
bool ValidNode(std::string_view n) {
  if (n.empty() || !IsAlnum(n.front()) || !IsAlnum(n.back())) return false;
  for (char c : n) {
    if (!IsAlnum(c) && c != '-') return false;
  }
  return true;
}

bool IsSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

// [^:\s]* with an optional non-empty requirement.
bool ValidFreeField(std::string_view f, bool allow_empty) {
  if (f.empty()) return allow_empty;
  for (char c : f) {
    if (c == ':' || IsSpace(c)) return false;
  }
  return true;
}

std::string Hex8(uint64_t v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%08" PRIX64, v);
  return buf;
}

Status CheckUpidField(std::string_view what, std::string_view value) {
  if (value.empty()) return Status::InvalidArgument(std::string(what) + " must not be empty");
  for (char c : value) {
    if (c == '/' || c == ':' || c == ' ') {
      return Status::InvalidArgument("illegal characters in " + std::string(what) + " '" +
                                     std::string(value) + "'");
    }
  }
  return Status::OK();
}

}  // namespace

std::string EscapeWorkerId(std::string_view id) {
  std::string out;
  out.reserve(id.size());
  for (size_t i = 0; i < id.size(); ++i) {
    char c = id[i];
    if (c == '/') {
      out.push_back('-');
    } else if ((i == 0 && c == '.') || !(IsAlnum(c) || c == '_' || c == '.')) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", static_cast<unsigned char>(c));
      out += buf;
    } else {
      out.push_back(c);
    }
  }
  return out;
}

Result<std::string> UnescapeWorkerId(std::string_view escaped) {
  std::string out;
  out.reserve(escaped.size());
  size_t i = 0;
  while (i < escaped.size()) {
    char c = escaped[i];
    if (c == '\\') {
      if (escaped.size() - i < 4 || escaped[i + 1] != 'x') {
        return Status::InvalidArgument("error in escape sequence in worker id '" +
                                       std::string(escaped) + "'");
      }
      int h1 = HexValue(escaped[i + 2]);
      int h0 = HexValue(escaped[i + 3]);
      if (h1 < 0 || h0 < 0) {
        return Status::InvalidArgument("invalid hex digit in escape sequence in worker id '" +
                                       std::string(escaped) + "'");
      }
      out.push_back(static_cast<char>((h1 << 4) | h0));
      i += 4;
    } else if (c == '-') {
      out.push_back('/');
      ++i;
    } else {
      out.push_back(c);
      ++i;
    }
  }
  return out;
}

Status CheckUpidWorkerType(std::string_view worker_type) {
  return CheckUpidField("worker type", worker_type);
}

Status CheckUpidAuthId(std::string_view auth_id) { return CheckUpidField("auth_id", auth_id); }

std::string Upid::ToString() const {
  std::string s = "UPID:";
  s += node;
  s += ':';
  s += Hex8(static_cast<uint32_t>(pid));
  s += ':';
  s += Hex8(pstart);
  s += ':';
  s += Hex8(task_id);
  s += ':';
  s += Hex8(static_cast<uint64_t>(starttime));
  s += ':';
  s += worker_type;
  s += ':';
  if (worker_id) s += EscapeWorkerId(*worker_id);
  s += ':';
  s += auth_id;
  s += ':';
  return s;
}

Result<Upid> Upid::Parse(std::string_view text) {
  auto fail = [&]() {
    return Status::InvalidArgument("unable to parse UPID '" + std::string(text) + "'");
  };
  if (text.size() < 6 || text.substr(0, 5) != "UPID:" || text.back() != ':') return fail();
  std::string_view rest = text.substr(5, text.size() - 6);
  std::vector<std::string_view> f;
  size_t start = 0;
  while (true) {
    size_t colon = rest.find(':', start);
    if (colon == std::string_view::npos) {
      f.push_back(rest.substr(start));
      break;
    }
    f.push_back(rest.substr(start, colon - start));
    start = colon + 1;
  }
  if (f.size() != 8) return fail();
  Upid u;
  if (!ValidNode(f[0])) return fail();
  u.node = std::string(f[0]);
  uint64_t pid = 0, pstart = 0, task_id = 0, starttime = 0;
  if (!ParseHexField(f[1], 8, 8, &pid) || !ParseHexField(f[2], 8, 9, &pstart) ||
      !ParseHexField(f[3], 8, 16, &task_id) || !ParseHexField(f[4], 8, 8, &starttime)) {
    return fail();
  }
  u.pid = static_cast<int32_t>(static_cast<uint32_t>(pid));
  u.pstart = pstart;
  u.task_id = task_id;
  u.starttime = static_cast<int64_t>(starttime);
  if (!ValidFreeField(f[5], false) || !ValidFreeField(f[6], true) ||
      !ValidFreeField(f[7], false)) {
    return fail();
  }
  u.worker_type = std::string(f[5]);
  if (!f[6].empty()) {
    auto wid = UnescapeWorkerId(f[6]);
    if (!wid.ok()) return fail();
    u.worker_id = std::move(wid).value();
  }
  u.auth_id = std::string(f[7]);
  return u;
}

}  // namespace pbskit
