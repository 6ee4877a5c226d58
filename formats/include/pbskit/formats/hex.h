// Lower-case hexadecimal encoding, as PBS writes digests, csums and fingerprints.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "pbskit/formats/status.h"

namespace pbskit {

using Digest = std::array<uint8_t, 32>;  // SHA-256 sized value (chunk digest, csum, key)

std::string ToHex(std::span<const uint8_t> bytes);
inline std::string ToHex(const Digest& d) { return ToHex(std::span<const uint8_t>(d)); }
// Parses exactly 2*N hex digits (either case). InvalidArgument names the offending text.
Result<std::vector<uint8_t>> FromHex(std::string_view hex);
// Parses exactly 64 hex digits into a Digest.
Result<Digest> DigestFromHex(std::string_view hex);
// True for exactly 64 lower-case hex digits (the chunk file name rule GC applies).
bool IsDigestHex(std::string_view name);

}  // namespace pbskit
