// Private to formats: the carry-less-multiplication CRC-32 kernel behind Crc32 (crypto.h).
#pragma once

#include <cstddef>
#include <cstdint>

namespace pbskit::internal {

// True when this CPU can run Crc32Fold (x86-64 with PCLMULQDQ and SSE4.1).
bool Crc32FoldAvailable();

// Continues a CRC-32 over `len` bytes at `p`. `crc` and the result are the raw register
// (zlib's value bit-inverted). Requires Crc32FoldAvailable(), len >= 64 and len % 16 == 0.
uint32_t Crc32Fold(uint32_t crc, const uint8_t* p, size_t len);

}  // namespace pbskit::internal
