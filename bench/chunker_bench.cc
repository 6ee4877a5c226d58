// Buzhash chunker throughput: `chunker_bench [MiB=1024] [avg ...]`. Streams a pseudo-random
// byte sequence (xorshift32, as FORMATS.md §12.6 (c)) through pbskit::Chunker in 1 MiB reads,
// the way an archive is read from disk, and prints MiB/s per average chunk size (CPU time of
// this process, so a busy machine does not distort the figure much; wall time alongside).
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <vector>

#include "pbskit/formats/chunker.h"

namespace {

double CpuSeconds() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

}  // namespace

int main(int argc, char** argv) {
  const size_t total_mib = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 1024;
  std::vector<size_t> avgs;
  for (int i = 2; i < argc; ++i) avgs.push_back(std::strtoull(argv[i], nullptr, 10));
  if (avgs.empty()) avgs = {4u << 20, 512u << 10, 64u << 10};

  // 64 MiB of source data, replayed as often as needed.
  std::vector<uint8_t> block(64u << 20);
  uint32_t x = 1;
  for (auto& b : block) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    b = static_cast<uint8_t>(x);
  }
  const size_t read_size = 1u << 20;
  for (size_t avg : avgs) {
    pbskit::Chunker chunker(avg);
    size_t chunks = 0, done = 0;
    const double cpu0 = CpuSeconds();
    const auto wall0 = std::chrono::steady_clock::now();
    while (done < total_mib << 20) {
      const size_t off = done % block.size();
      std::span<const uint8_t> piece(block.data() + off, read_size);
      while (!piece.empty()) {
        const size_t cut = chunker.Scan(piece);
        if (cut == 0) break;
        ++chunks;
        piece = piece.subspan(cut);
      }
      done += read_size;
    }
    const double cpu = CpuSeconds() - cpu0;
    const double wall =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - wall0).count();
    std::printf(
        "chunker avg=%zu: %zu MiB, %zu chunks (mean %.0f bytes), %.0f MiB/s cpu, %.0f MiB/s wall\n",
        avg, total_mib, chunks, chunks ? static_cast<double>(done) / chunks : 0.0,
        static_cast<double>(total_mib) / cpu, static_cast<double>(total_mib) / wall);
  }
  return 0;
}
