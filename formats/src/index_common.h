// Header fields shared by .fidx and .didx (private to formats/).
#pragma once

#include <array>
#include <cstdint>
#include <span>

#include "pbskit/formats/hex.h"

namespace pbskit::index_internal {

// Reads uuid (offset 8), ctime (24) and index_csum (32). Requires file.size() >= 64.
void ReadCommonHeader(std::span<const uint8_t> file, std::array<uint8_t, 16>* uuid, int64_t* ctime,
                      Digest* csum);
// Writes magic, uuid, ctime and index_csum into the first 64 bytes of `out`.
void WriteCommonHeader(const std::array<uint8_t, 8>& magic, const std::array<uint8_t, 16>& uuid,
                       int64_t ctime, const Digest& csum, uint8_t* out);
// A random (version 4) UUID like libuuid's uuid_generate.
std::array<uint8_t, 16> NewUuid();

}  // namespace pbskit::index_internal
