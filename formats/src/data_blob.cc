#include "pbskit/formats/data_blob.h"

#include <zstd.h>

#include <cstdio>
#include <cstring>
#include <memory>
#include <string>

#include "pbskit/formats/crypto.h"

namespace pbskit {
namespace {

enum class Kind { kUnknown, kPlain, kCompressed, kEncrypted, kEncrCompressed };

Kind KindOf(std::span<const uint8_t> raw) {
  if (raw.size() < 8) return Kind::kUnknown;
  auto is = [&](const std::array<uint8_t, 8>& m) {
    return std::memcmp(raw.data(), m.data(), 8) == 0;
  };
  if (is(kUncompressedBlobMagic)) return Kind::kPlain;
  if (is(kCompressedBlobMagic)) return Kind::kCompressed;
  if (is(kEncryptedBlobMagic)) return Kind::kEncrypted;
  if (is(kEncrCompressedBlobMagic)) return Kind::kEncrCompressed;
  return Kind::kUnknown;
}

bool IsEncryptedKind(Kind k) { return k == Kind::kEncrypted || k == Kind::kEncrCompressed; }
bool IsCompressedKind(Kind k) { return k == Kind::kCompressed || k == Kind::kEncrCompressed; }
size_t HeaderSize(Kind k) {
  return IsEncryptedKind(k) ? kEncryptedBlobHeaderSize : kBlobHeaderSize;
}

uint32_t LoadLe32(const uint8_t* p) {
  return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24;
}
void StoreLe32(uint8_t* p, uint32_t v) {
  p[0] = uint8_t(v);
  p[1] = uint8_t(v >> 8);
  p[2] = uint8_t(v >> 16);
  p[3] = uint8_t(v >> 24);
}

std::string Hex32(uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08x", v);
  return buf;
}

struct DCtxDeleter {
  void operator()(ZSTD_DCtx* c) const { ZSTD_freeDCtx(c); }
};
struct CCtxDeleter {
  void operator()(ZSTD_CCtx* c) const { ZSTD_freeCCtx(c); }
};

ZSTD_DCtx* ThreadDCtx() {
  thread_local std::unique_ptr<ZSTD_DCtx, DCtxDeleter> ctx(ZSTD_createDCtx());
  return ctx.get();
}
ZSTD_CCtx* ThreadCCtx() {
  thread_local std::unique_ptr<ZSTD_CCtx, CCtxDeleter> ctx(ZSTD_createCCtx());
  return ctx.get();
}

// Sum of the content sizes of all frames in `in`; ZSTD_CONTENTSIZE_UNKNOWN when any frame lacks
// one, ZSTD_CONTENTSIZE_ERROR when `in` is not a sequence of whole frames.
unsigned long long TotalContentSize(std::span<const uint8_t> in) {
  unsigned long long total = 0;
  size_t pos = 0;
  while (pos < in.size()) {
    unsigned long long fcs = ZSTD_getFrameContentSize(in.data() + pos, in.size() - pos);
    if (fcs == ZSTD_CONTENTSIZE_ERROR || fcs == ZSTD_CONTENTSIZE_UNKNOWN) return fcs;
    size_t n = ZSTD_findFrameCompressedSize(in.data() + pos, in.size() - pos);
    if (ZSTD_isError(n)) return ZSTD_CONTENTSIZE_ERROR;
    total += fcs;
    if (total > kMaxBlobSize) return total;
    pos += n;
  }
  return pos == 0 ? ZSTD_CONTENTSIZE_ERROR : total;
}

// Decompresses every zstd frame in `in` into *out (contents replaced, capacity reused).
Status ZstdDecompress(std::span<const uint8_t> in, std::vector<uint8_t>* out) {
  ZSTD_DCtx* dctx = ThreadDCtx();
  if (!dctx) return Status::IoError("zstd: unable to allocate a decompression context");
  unsigned long long known = TotalContentSize(in);
  if (known == ZSTD_CONTENTSIZE_ERROR) {
    return Status::Corruption("zstd: payload is not a valid sequence of zstd frames");
  }
  if (known != ZSTD_CONTENTSIZE_UNKNOWN) {
    if (known > kMaxBlobSize) {
      return Status::Corruption("zstd: decoded size " + std::to_string(known) +
                                " exceeds the blob limit of " + std::to_string(kMaxBlobSize));
    }
    out->resize(static_cast<size_t>(known));
    size_t n = ZSTD_decompressDCtx(dctx, out->data(), out->size(), in.data(), in.size());
    if (ZSTD_isError(n)) {
      return Status::Corruption(std::string("zstd decompression failed: ") + ZSTD_getErrorName(n));
    }
    if (n != known) {
      return Status::Corruption("zstd: frame content size " + std::to_string(known) +
                                " but decoded " + std::to_string(n) + " bytes");
    }
    return Status::OK();
  }
  // Frames without a content size (PBS <= 3.2.7 streaming writer): stream into a growing buffer.
  ZSTD_DCtx_reset(dctx, ZSTD_reset_session_only);
  size_t cap = std::max<size_t>(out->capacity(), std::max<size_t>(in.size() * 4, 64 * 1024));
  cap = std::min(cap, kMaxBlobSize);
  out->resize(cap);
  ZSTD_inBuffer input{in.data(), in.size(), 0};
  size_t produced = 0;
  size_t last = 0;
  while (true) {
    if (produced == out->size()) {
      if (out->size() >= kMaxBlobSize) {
        out->resize(produced);
        return Status::Corruption("zstd: decoded data exceeds the blob limit of " +
                                  std::to_string(kMaxBlobSize) + " bytes");
      }
      out->resize(std::min(out->size() * 2, kMaxBlobSize));
    }
    ZSTD_outBuffer output{out->data(), out->size(), produced};
    last = ZSTD_decompressStream(dctx, &output, &input);
    produced = output.pos;
    if (ZSTD_isError(last)) {
      out->resize(produced);
      ZSTD_DCtx_reset(dctx, ZSTD_reset_session_only);
      return Status::Corruption(std::string("zstd decompression failed: ") +
                                ZSTD_getErrorName(last));
    }
    // Done when all input is consumed and either the last frame ended (0) or the decoder
    // stopped with output space left (it needs input that is not there: truncated frame).
    if (input.pos == input.size && (last == 0 || produced < out->size())) break;
  }
  out->resize(produced);
  if (last != 0) {
    ZSTD_DCtx_reset(dctx, ZSTD_reset_session_only);
    return Status::Corruption("zstd: truncated frame (payload ends inside a frame)");
  }
  return Status::OK();
}

}  // namespace

Status CheckBlobHeader(std::span<const uint8_t> raw, bool check_crc) {
  if (raw.size() < kBlobHeaderSize) {
    return Status::Corruption("blob too small (" + std::to_string(raw.size()) + " bytes)");
  }
  Kind kind = KindOf(raw);
  if (kind == Kind::kUnknown) {
    return Status::Corruption("unable to parse raw blob - wrong magic (" +
                              ToHex(raw.subspan(0, 8)) + ")");
  }
  if (IsEncryptedKind(kind) && raw.size() < kEncryptedBlobHeaderSize) {
    return Status::Corruption("encrypted blob too small (" + std::to_string(raw.size()) +
                              " bytes)");
  }
  if (check_crc) {
    uint32_t stored = LoadLe32(raw.data() + 8);
    uint32_t computed = Crc32(raw.subspan(HeaderSize(kind)));
    if (stored != computed) {
      return Status::Corruption("Data blob has wrong CRC checksum (stored " + Hex32(stored) +
                                ", computed " + Hex32(computed) + ")");
    }
  }
  return Status::OK();
}

Status DecodeBlob(std::span<const uint8_t> raw, const CryptConfig* crypt,
                  std::vector<uint8_t>* out) {
  PBSKIT_RETURN_IF_ERROR(CheckBlobHeader(raw, /*check_crc=*/false));
  Kind kind = KindOf(raw);
  switch (kind) {
    case Kind::kPlain: {
      auto payload = raw.subspan(kBlobHeaderSize);
      out->resize(payload.size());
      if (!payload.empty()) std::memcpy(out->data(), payload.data(), payload.size());
      return Status::OK();
    }
    case Kind::kCompressed:
      return ZstdDecompress(raw.subspan(kBlobHeaderSize), out);
    case Kind::kEncrypted:
    case Kind::kEncrCompressed: {
      if (!crypt) return Status::InvalidArgument("unable to decrypt blob - missing key");
      std::span<const uint8_t, 16> iv(raw.data() + 12, 16);
      std::span<const uint8_t, 16> tag(raw.data() + 28, 16);
      auto ciphertext = raw.subspan(kEncryptedBlobHeaderSize);
      if (kind == Kind::kEncrypted) {
        return Aes256GcmDecrypt(crypt->enc_key(), iv, tag, ciphertext, out);
      }
      thread_local std::vector<uint8_t> scratch;
      Status st = Aes256GcmDecrypt(crypt->enc_key(), iv, tag, ciphertext, &scratch);
      if (!st.ok()) return st;
      st = ZstdDecompress(scratch, out);
      if (scratch.capacity() > 32 * 1024 * 1024) std::vector<uint8_t>().swap(scratch);
      return st;
    }
    case Kind::kUnknown:
      break;
  }
  return Status::Corruption("unable to parse raw blob - wrong magic");
}

Status VerifyUnencryptedChunk(std::span<const uint8_t> raw, size_t expected_size,
                              const Digest& expected_digest, std::vector<uint8_t>* scratch) {
  PBSKIT_RETURN_IF_ERROR(DecodeBlob(raw, nullptr, scratch));
  if (scratch->size() != expected_size) {
    return Status::Corruption("detected chunk with wrong length (" +
                              std::to_string(scratch->size()) +
                              " != " + std::to_string(expected_size) + ")");
  }
  if (Sha256(*scratch) != expected_digest) {
    return Status::Corruption("detected chunk with wrong digest.");
  }
  return Status::OK();
}

Status RewriteBlobCrc(std::span<uint8_t> raw) {
  Status st = CheckBlobHeader(raw, /*check_crc=*/false);
  if (!st.ok()) return Status::InvalidArgument(st.message());
  StoreLe32(raw.data() + 8, Crc32(std::span<const uint8_t>(raw).subspan(HeaderSize(KindOf(raw)))));
  return Status::OK();
}

Result<DataBlob> DataBlob::FromRaw(std::vector<uint8_t> raw, bool check_crc) {
  PBSKIT_RETURN_IF_ERROR(CheckBlobHeader(raw, check_crc));
  return DataBlob(std::move(raw));
}

Result<DataBlob> DataBlob::Encode(std::span<const uint8_t> data, const CryptConfig* crypt,
                                  bool compress) {
  std::array<uint8_t, 16> iv{};
  if (crypt) RandomBytes(iv);
  return EncodeWithIv(data, crypt, compress, iv);
}

Result<DataBlob> DataBlob::EncodeWithIv(std::span<const uint8_t> data, const CryptConfig* crypt,
                                        bool compress, const std::array<uint8_t, 16>& iv) {
  if (data.size() > kMaxBlobSize) {
    return Status::InvalidArgument("data blob too large (" + std::to_string(data.size()) +
                                   " bytes)");
  }
  const size_t header = crypt ? kEncryptedBlobHeaderSize : kBlobHeaderSize;
  std::vector<uint8_t> raw(header + data.size());
  // Compress straight into the payload area; a result that does not fit the input size means
  // incompressible data, stored plain (like PBS 3.2.8+ single-shot ZSTD_compress).
  size_t payload_size = data.size();
  bool compressed = false;
  if (compress && !data.empty()) {
    ZSTD_CCtx* cctx = ThreadCCtx();
    if (!cctx) return Status::IoError("zstd: unable to allocate a compression context");
    size_t n =
        ZSTD_compressCCtx(cctx, raw.data() + header, data.size(), data.data(), data.size(), 1);
    if (!ZSTD_isError(n)) {
      payload_size = n;
      compressed = true;
    }
  }
  if (!compressed && !data.empty()) std::memcpy(raw.data() + header, data.data(), data.size());
  raw.resize(header + payload_size);

  const std::array<uint8_t, 8>* magic;
  if (crypt) {
    std::vector<uint8_t> ciphertext;
    std::array<uint8_t, 16> tag;
    PBSKIT_RETURN_IF_ERROR(Aes256GcmEncrypt(
        crypt->enc_key(), iv, std::span<const uint8_t>(raw.data() + header, payload_size),
        &ciphertext, &tag));
    if (!ciphertext.empty()) std::memcpy(raw.data() + header, ciphertext.data(), payload_size);
    std::memcpy(raw.data() + 12, iv.data(), 16);
    std::memcpy(raw.data() + 28, tag.data(), 16);
    magic = compressed ? &kEncrCompressedBlobMagic : &kEncryptedBlobMagic;
  } else {
    magic = compressed ? &kCompressedBlobMagic : &kUncompressedBlobMagic;
  }
  std::memcpy(raw.data(), magic->data(), 8);
  StoreLe32(raw.data() + 8, Crc32(std::span<const uint8_t>(raw).subspan(header)));
  return DataBlob(std::move(raw));
}

bool DataBlob::is_encrypted() const { return IsEncryptedKind(KindOf(raw_)); }
bool DataBlob::is_compressed() const { return IsCompressedKind(KindOf(raw_)); }
uint32_t DataBlob::stored_crc() const { return LoadLe32(raw_.data() + 8); }
void DataBlob::set_crc(uint32_t crc) { StoreLe32(raw_.data() + 8, crc); }
uint32_t DataBlob::ComputeCrc() const {
  return Crc32(std::span<const uint8_t>(raw_).subspan(HeaderSize(KindOf(raw_))));
}

Status DataBlob::DecodeTo(const CryptConfig* crypt, std::vector<uint8_t>* out) const {
  return DecodeBlob(raw_, crypt, out);
}

Result<std::vector<uint8_t>> DataBlob::Decode(const CryptConfig* crypt) const {
  std::vector<uint8_t> out;
  PBSKIT_RETURN_IF_ERROR(DecodeTo(crypt, &out));
  return out;
}

}  // namespace pbskit
