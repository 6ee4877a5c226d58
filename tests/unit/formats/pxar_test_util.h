// Helpers shared by the pxar tests: the fixture `.entries` line format and full decoding.
#pragma once

#include <cstdio>
#include <string>
#include <vector>

#include "pbskit/formats/crypto.h"
#include "pbskit/formats/hex.h"
#include "pbskit/formats/pxar/decoder.h"
#include "pbskit/formats/pxar/listing.h"

namespace pbskit::pxar::testing {

inline std::string Octal(uint64_t v, int width) {
  char b[32];
  std::snprintf(b, sizeof(b), "%0*llo", width, static_cast<unsigned long long>(v));
  return b;
}

// Paths in `.entries`: invalid UTF-8 bytes become the text `\xNN`, then str Debug quoting.
inline std::string EntriesPath(const std::string& p) {
  std::string lossy;
  for (size_t i = 0; i < p.size(); ++i) {
    std::string one = RustDebugQuote(p.substr(i, 1), true);
    unsigned char c = static_cast<unsigned char>(p[i]);
    if (c >= 0x80) {
      size_t len = (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
      if (len != 0 && i + len <= p.size() &&
          RustDebugQuote(p.substr(i, len), true).find("\\x") == std::string::npos) {
        lossy += p.substr(i, len);
        i += len - 1;
        continue;
      }
      char b[8];
      std::snprintf(b, sizeof(b), "\\x%02X", c);
      lossy += b;
      continue;
    }
    lossy += p[i];
  }
  return RustDebugQuote(lossy, true);
}

inline bool IsText(const std::string& v) {
  std::string q = RustDebugQuote(v, true);
  for (unsigned char c : v)
    if (c < 0x20 || c == 0x7f) return false;
  return q.find("\\x") == std::string::npos && q.find("\\u{") == std::string::npos;
}

// One line in the fixture `.entries` format (see the fixtures README).
inline std::string EntriesLine(const Entry& e, const std::string& content_sha256) {
  if (e.kind == EntryKind::kHardlink)
    return "h " + EntriesPath(e.path) + " => " + RustDebugQuote(e.link_target, true);
  const Stat& st = e.metadata.stat;
  std::string line;
  line += EntryKindLetter(e.kind, e.metadata);
  line += " " + Octal(st.mode & 07777, 4) + " " + std::to_string(st.uid) + ":" +
          std::to_string(st.gid);
  char mt[64];
  std::snprintf(mt, sizeof(mt), " mtime=%lld.%09u", static_cast<long long>(st.mtime_secs),
                st.mtime_nanos);
  line += mt;
  line += " size=" + std::to_string(e.kind == EntryKind::kFile ? e.file_size : 0);
  line += " " + EntriesPath(e.path);
  if (e.kind == EntryKind::kFile) line += " sha256=" + content_sha256;
  if (e.kind == EntryKind::kSymlink) line += " -> " + RustDebugQuote(e.link_target, true);
  if (e.kind == EntryKind::kDevice)
    line += " dev=" + std::to_string(e.device.major) + "," + std::to_string(e.device.minor);
  const Metadata& m = e.metadata;
  for (const XAttr& x : m.xattrs) {
    line += " xattr:" + x.name + "=";
    line += IsText(x.value) ? RustDebugQuote(x.value, true)
                            : "0x" + ToHex(std::span<const uint8_t>(
                                         reinterpret_cast<const uint8_t*>(x.value.data()),
                                         x.value.size()));
  }
  for (const AclEntry& a : m.acl.users)
    line += " acl:user:" + std::to_string(a.id) + ":" + Octal(a.permissions, 1);
  for (const AclEntry& a : m.acl.groups)
    line += " acl:group:" + std::to_string(a.id) + ":" + Octal(a.permissions, 1);
  if (m.acl.group_obj) line += " acl:group_obj:" + Octal(*m.acl.group_obj, 1);
  if (m.acl.default_acl) {
    const AclDefault& d = *m.acl.default_acl;
    line += " acl:default:user_obj=" + Octal(d.user_obj_permissions, 1) +
            ",group_obj=" + Octal(d.group_obj_permissions, 1) +
            ",other=" + Octal(d.other_permissions, 1) + ",mask=" + Octal(d.mask_permissions, 1);
  }
  for (const AclEntry& a : m.acl.default_users)
    line += " acl:default_user:" + std::to_string(a.id) + ":" + Octal(a.permissions, 1);
  for (const AclEntry& a : m.acl.default_groups)
    line += " acl:default_group:" + std::to_string(a.id) + ":" + Octal(a.permissions, 1);
  if (m.fcaps)
    line += " fcaps:" + ToHex(std::span<const uint8_t>(
                            reinterpret_cast<const uint8_t*>(m.fcaps->data()), m.fcaps->size()));
  return line;
}

struct Decoded {
  std::vector<Entry> entries;
  std::vector<std::string> sha256;  // per entry, files only
  Status status;
};

// Decodes a whole archive, hashing file contents when readable.
inline Decoded DecodeAll(PxarSource* archive, PxarSource* payload, bool read_content = true) {
  Decoded d;
  Decoder dec(archive, payload);
  for (;;) {
    Entry e;
    auto r = dec.Next(&e);
    if (!r.ok()) {
      d.status = r.status();
      return d;
    }
    if (!*r) break;
    std::string sha;
    if (e.kind == EntryKind::kFile && read_content) {
      Sha256Stream s;
      std::vector<uint8_t> buf(65536);
      for (;;) {
        auto n = dec.ReadContent(buf);
        if (!n.ok()) {
          d.status = n.status();
          return d;
        }
        if (*n == 0) break;
        s.Update(std::span<const uint8_t>(buf.data(), *n));
      }
      sha = ToHex(s.Finish());
    }
    d.entries.push_back(std::move(e));
    d.sha256.push_back(sha);
  }
  return d;
}

}  // namespace pbskit::pxar::testing
