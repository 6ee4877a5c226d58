// pxar constants, SipHash-2-4 and the goodbye-table BST layout.
#include "pbskit/formats/pxar/format.h"

#include <algorithm>
#include <bit>
#include <cstring>

namespace pbskit::pxar {

const char* ItemTypeName(uint64_t htype) {
  switch (htype) {
    case kFormatVersion: return "FORMAT_VERSION";
    case kEntry: return "ENTRY";
    case kEntryV1: return "ENTRY_V1";
    case kPrelude: return "PRELUDE";
    case kFilename: return "FILENAME";
    case kSymlink: return "SYMLINK";
    case kDevice: return "DEVICE";
    case kXattr: return "XATTR";
    case kAclUser: return "ACL_USER";
    case kAclGroup: return "ACL_GROUP";
    case kAclGroupObj: return "ACL_GROUP_OBJ";
    case kAclDefault: return "ACL_DEFAULT";
    case kAclDefaultUser: return "ACL_DEFAULT_USER";
    case kAclDefaultGroup: return "ACL_DEFAULT_GROUP";
    case kFcaps: return "FCAPS";
    case kQuotaProjid: return "QUOTA_PROJID";
    case kHardlink: return "HARDLINK";
    case kPayload: return "PAYLOAD";
    case kPayloadRef: return "PAYLOAD_REF";
    case kGoodbye: return "GOODBYE";
    case kPayloadStartMarker: return "PAYLOAD_START_MARKER";
    case kPayloadTailMarker: return "PAYLOAD_TAIL_MARKER";
    default: return "UNKNOWN";
  }
}

Device Device::FromDevT(uint64_t dev) {
  Device d;
  d.major = ((dev >> 8) & 0x00000fffULL) | ((dev >> 32) & 0xfffff000ULL);
  d.minor = (dev & 0x000000ffULL) | ((dev >> 12) & 0xffffff00ULL);
  return d;
}

uint64_t Device::ToDevT() const {
  return ((major & 0x00000fffULL) << 8) | ((major & 0xfffff000ULL) << 32) |
         (minor & 0x000000ffULL) | ((minor & 0xffffff00ULL) << 12);
}

namespace {

inline void SipRound(uint64_t& v0, uint64_t& v1, uint64_t& v2, uint64_t& v3) {
  v0 += v1;
  v1 = std::rotl(v1, 13);
  v1 ^= v0;
  v0 = std::rotl(v0, 32);
  v2 += v3;
  v3 = std::rotl(v3, 16);
  v3 ^= v2;
  v0 += v3;
  v3 = std::rotl(v3, 21);
  v3 ^= v0;
  v2 += v1;
  v1 = std::rotl(v1, 17);
  v1 ^= v2;
  v2 = std::rotl(v2, 32);
}

inline uint64_t LoadLe64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

}  // namespace

uint64_t SipHash24(uint64_t k0, uint64_t k1, const void* data, size_t len) {
  const auto* in = static_cast<const uint8_t*>(data);
  uint64_t v0 = 0x736f6d6570736575ULL ^ k0;
  uint64_t v1 = 0x646f72616e646f6dULL ^ k1;
  uint64_t v2 = 0x6c7967656e657261ULL ^ k0;
  uint64_t v3 = 0x7465646279746573ULL ^ k1;
  size_t full = len & ~size_t{7};
  for (size_t i = 0; i < full; i += 8) {
    uint64_t m = LoadLe64(in + i);
    v3 ^= m;
    SipRound(v0, v1, v2, v3);
    SipRound(v0, v1, v2, v3);
    v0 ^= m;
  }
  uint64_t b = static_cast<uint64_t>(len) << 56;
  for (size_t i = 0; i < (len & 7); ++i) b |= static_cast<uint64_t>(in[full + i]) << (8 * i);
  v3 ^= b;
  SipRound(v0, v1, v2, v3);
  SipRound(v0, v1, v2, v3);
  v0 ^= b;
  v2 ^= 0xff;
  for (int i = 0; i < 4; ++i) SipRound(v0, v1, v2, v3);
  return v0 ^ v1 ^ v2 ^ v3;
}

uint64_t HashFilename(std::string_view name) {
  return SipHash24(kHashKey0, kHashKey1, name.data(), name.size());
}

namespace {

// The casync permutation: the subtree of n sorted items starting at `o` goes to array node i;
// e = floor(log2) of the subtree capacity.
void PlaceSubtree(std::vector<size_t>& dest, size_t n, size_t o, unsigned e, size_t i) {
  size_t p = size_t{1} << e;
  size_t t = p + (p >> 1) - 1;
  size_t m = n > t ? p - 1 : p - 1 - (t - n);
  dest[o + m] = i;
  if (m > 0) PlaceSubtree(dest, m, o, e - 1, i * 2 + 1);
  if (m + 1 < n) PlaceSubtree(dest, n - m - 1, o + m + 1, e - 1, i * 2 + 2);
}

}  // namespace

std::vector<size_t> BinaryTreeArrayPositions(size_t n) {
  std::vector<size_t> dest(n);
  if (n == 0) return dest;
  unsigned e = static_cast<unsigned>(std::bit_width(n) - 1);
  PlaceSubtree(dest, n, 0, e, 0);
  return dest;
}

std::vector<GoodbyeItem> BuildGoodbyeTable(std::vector<GoodbyeItem> items) {
  std::stable_sort(items.begin(), items.end(),
                   [](const GoodbyeItem& a, const GoodbyeItem& b) { return a.hash < b.hash; });
  std::vector<size_t> pos = BinaryTreeArrayPositions(items.size());
  std::vector<GoodbyeItem> out(items.size());
  for (size_t i = 0; i < items.size(); ++i) out[pos[i]] = items[i];
  return out;
}

Status ValidateFilename(std::string_view name) {
  if (name.empty()) return Status::InvalidArgument("illegal file name (empty)");
  if (name.find('/') != std::string_view::npos)
    return Status::InvalidArgument("illegal file name (contains '/')");
  if (name.find('\0') != std::string_view::npos)
    return Status::InvalidArgument("illegal file name (contains NUL)");
  if (name == "." || name == "..")
    return Status::InvalidArgument("illegal file name '" + std::string(name) + "'");
  if (name.size() > kMaxPathLen)
    return Status::InvalidArgument("file name too long (" + std::to_string(name.size()) +
                                   " > 4096 bytes)");
  return Status::OK();
}

void SplitNanos(int64_t ns, int64_t* secs, uint32_t* nanos) {
  int64_t s = ns / 1000000000;
  int64_t r = ns % 1000000000;
  if (r < 0) {
    r += 1000000000;
    --s;
  }
  *secs = s;
  *nanos = static_cast<uint32_t>(r);
}

}  // namespace pbskit::pxar
