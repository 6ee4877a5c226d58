// `pbskit benchmark`: the hash / compression / encryption speed table of
// `proxmox-backup-client benchmark`, with PBS's 2020 reference numbers for the % column.
#include <zstd.h>

#include <chrono>
#include <cstdio>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include "output.h"
#include "pbskit/formats/crypt_config.h"
#include "pbskit/formats/crypto.h"
#include "pbskit/formats/data_blob.h"
#include "registry.h"

namespace pbskit::cli {
namespace {

using Clock = std::chrono::steady_clock;

// Reference speeds (bytes/s) PBS compares with: AMD Ryzen 7 2700X, 2020.
struct Row {
  const char* key;
  const char* header;
  double top;
  std::optional<double> speed;
};

// PBS's pseudo random test buffer: the little-endian bytes of 0, 1, 2, ... (1 MiB).
std::vector<uint8_t> TestData() {
  std::vector<uint8_t> data;
  data.reserve(1 << 20);
  for (uint32_t i = 0; i < 256 * 1024; i++) {
    for (int j = 0; j < 4; j++) data.push_back(static_cast<uint8_t>(i >> (j * 8)));
  }
  return data;
}

// Runs `op` (which processes `bytes_per_call` bytes) repeatedly for at least `seconds`,
// returns bytes per second.
template <typename Op>
Result<double> Measure(double seconds, Op op) {
  auto start = Clock::now();
  double bytes = 0;
  double elapsed = 0;
  do {
    PBSKIT_ASSIGN_OR_RETURN(size_t n, op());
    bytes += static_cast<double>(n);
    elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  } while (elapsed <= seconds);
  return bytes / elapsed;
}

Status RunCryptTests(std::vector<Row>& rows) {
  auto by_key = [&](const char* key) -> Row& {
    for (auto& r : rows) {
      if (std::string(r.key) == key) return r;
    }
    return rows.front();
  };
  const std::vector<uint8_t> data = TestData();
  std::array<uint8_t, 32> key;
  RandomBytes(key);
  CryptConfig crypt(key);
  auto log = [](const char* what, double speed) {
    std::fprintf(stderr, "%s speed: %.2f MB/s\n", what, speed / 1e6);
  };

  PBSKIT_ASSIGN_OR_RETURN(double sha, Measure(1.0, [&]() -> Result<size_t> {
                            Digest d = Sha256(data);
                            asm volatile("" : : "r"(d.data()) : "memory");
                            return data.size();
                          }));
  by_key("sha256").speed = sha;
  log("SHA256", sha);

  std::vector<uint8_t> compressed(ZSTD_compressBound(data.size()));
  ZSTD_CCtx* cctx = ZSTD_createCCtx();
  auto compress = [&]() -> Result<size_t> {
    size_t n =
        ZSTD_compressCCtx(cctx, compressed.data(), compressed.size(), data.data(), data.size(), 1);
    if (ZSTD_isError(n)) return Status::IoError(std::string("zstd: ") + ZSTD_getErrorName(n));
    return n;
  };
  auto comp = Measure(3.0, [&]() -> Result<size_t> {
    PBSKIT_RETURN_IF_ERROR(compress().status());
    return data.size();
  });
  if (!comp.ok()) {
    ZSTD_freeCCtx(cctx);
    return comp.status();
  }
  auto csize = compress();
  ZSTD_freeCCtx(cctx);
  if (!csize.ok()) return csize.status();
  compressed.resize(*csize);
  by_key("compress").speed = *comp;
  log("Compression", *comp);

  ZSTD_DCtx* dctx = ZSTD_createDCtx();
  std::vector<uint8_t> out(data.size());
  auto decomp = Measure(1.0, [&]() -> Result<size_t> {
    size_t n =
        ZSTD_decompressDCtx(dctx, out.data(), out.size(), compressed.data(), compressed.size());
    if (ZSTD_isError(n)) return Status::IoError(std::string("zstd: ") + ZSTD_getErrorName(n));
    return n;
  });
  ZSTD_freeDCtx(dctx);
  if (!decomp.ok()) return decomp.status();
  by_key("decompress").speed = *decomp;
  log("Decompress", *decomp);

  std::vector<uint8_t> ciphertext;
  std::array<uint8_t, 16> iv, tag;
  RandomBytes(iv);
  PBSKIT_ASSIGN_OR_RETURN(
      double aes, Measure(1.0, [&]() -> Result<size_t> {
        PBSKIT_RETURN_IF_ERROR(Aes256GcmEncrypt(crypt.enc_key(), iv, data, &ciphertext, &tag));
        return data.size();
      }));
  by_key("aes256_gcm").speed = aes;
  log("AES256/GCM", aes);

  // Verify as a datastore verify does it: CRC, decompress, SHA-256 and length of a zstd chunk.
  PBSKIT_ASSIGN_OR_RETURN(DataBlob chunk, DataBlob::Encode(data, nullptr, /*compress=*/true));
  const Digest digest = Sha256(data);
  std::vector<uint8_t> decoded;
  PBSKIT_ASSIGN_OR_RETURN(
      double verify, Measure(1.0, [&]() -> Result<size_t> {
        PBSKIT_RETURN_IF_ERROR(CheckBlobHeader(chunk.raw(), /*check_crc=*/true));
        PBSKIT_RETURN_IF_ERROR(DecodeBlob(chunk.raw(), nullptr, &decoded));
        if (decoded.size() != data.size()) {
          return Status::Corruption("detected chunk with wrong length");
        }
        if (Sha256(decoded) != digest)
          return Status::Corruption("detected chunk with wrong digest.");
        return data.size();
      }));
  by_key("verify").speed = verify;
  log("Verify", verify);
  return Status::OK();
}

std::string RenderSpeed(const boost::json::value& v, const boost::json::object&) {
  if (!v.is_object()) return "";
  const auto& o = v.get_object();
  const auto* speed = o.if_contains("speed");
  const auto* top = o.if_contains("top");
  if (!speed || !top || !speed->is_number() || !top->is_number()) return "not tested";
  double s = speed->to_number<double>();
  double t = top->to_number<double>();
  char buf[96];
  std::snprintf(buf, sizeof buf, "%.2f MB/s (%.0f%%)", s / 1e6, s * 100.0 / t);
  return buf;
}

int RunBenchmark(const GlobalOptions& g) {
  // Field order of PBS's BenchmarkResult (JSON); the table order follows below.
  std::vector<Row> rows = {
      {"tls", "TLS (maximal backup upload speed)", 1e6 * 1235.0, std::nullopt},
      {"sha256", "SHA256 checksum computation speed", 1e6 * 2022.0, std::nullopt},
      {"compress", "ZStd level 1 compression speed", 1e6 * 752.0, std::nullopt},
      {"decompress", "ZStd level 1 decompression speed", 1e6 * 1198.0, std::nullopt},
      {"aes256_gcm", "AES256 GCM encryption speed", 1e6 * 3645.0, std::nullopt},
      {"verify", "Chunk verification speed", 1e6 * 758.0, std::nullopt},
  };
  Status st = RunCryptTests(rows);
  if (!st.ok()) return ReportError(st, 1);

  boost::json::object result;
  for (const auto& r : rows) {
    boost::json::object speed;
    if (r.speed) speed["speed"] = *r.speed;
    speed["top"] = r.top;
    result[r.key] = std::move(speed);
  }
  std::vector<Column> table;
  for (const char* key : {"tls", "sha256", "compress", "decompress", "verify", "aes256_gcm"}) {
    for (const auto& r : rows) {
      if (std::string(r.key) == key) table.push_back({r.key, r.header, false, RenderSpeed});
    }
  }
  return PrintRecord(g, result, table);
}

void Setup(CLI::App& app, GlobalOptions& g) {
  auto* sub = app.add_subcommand(
      "benchmark",
      "Run benchmark tests (SHA256, ZStd level 1, chunk verification, AES256 GCM), compared "
      "with the reference numbers proxmox-backup-client uses.");
  sub->footer("The TLS upload test needs a backup server and is reported as \"not tested\".");
  sub->callback([&g] { g.exit_code = RunBenchmark(g); });
}

}  // namespace
}  // namespace pbskit::cli

PBSKIT_REGISTER_COMMAND(90, pbskit::cli::Setup);
