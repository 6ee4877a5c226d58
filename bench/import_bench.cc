// Import benchmark helper (not a test). Subcommands:
//   gen-vma DIR GIB      writes DIR/vzdump-qemu-900-2026_01_01-00_00_00.vma holding one GIB GiB
//                        disk (first half zero clusters, second half compressible pseudo-random
//                        data) and the same disk as DIR/image.raw
//   ceiling RAW THREADS  what import must at least do per 4 MiB chunk of RAW, on THREADS
//                        threads: skip all-zero chunks, SHA-256 and zstd level 1 (DataBlob
//                        encode) of every other chunk; prints MB/s of image bytes
// Output: one "key=value ..." line per run, for bench/run_import.sh.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "pbskit/formats/crypto.h"
#include "pbskit/formats/data_blob.h"
#include "pbskit/formats/vma.h"

using namespace pbskit;

namespace {

constexpr size_t kChunk = 4 * 1024 * 1024;

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

int Fail(const std::string& what) {
  std::cerr << "error: " << what << "\n";
  return 1;
}

// Pseudo-random text-like data: random bytes from a small alphabet with repeated runs, so zstd
// level 1 gets roughly 2:1 like ordinary VM data, and no two clusters are equal.
void FillData(std::mt19937_64& rng, uint8_t* p, size_t n) {
  size_t i = 0;
  while (i < n) {
    uint64_t r = rng();
    if ((r & 7) == 0 && i >= 64) {  // copy an earlier run
      size_t len = std::min<size_t>(16 + ((r >> 3) & 31), n - i);
      size_t back = 1 + ((r >> 8) % std::min<size_t>(i, 4096));
      for (size_t k = 0; k < len; ++k, ++i) p[i] = p[i - back];
    } else {
      for (int k = 0; k < 8 && i < n; ++k, ++i) p[i] = static_cast<uint8_t>('a' + ((r >> (k * 8)) % 40));
    }
  }
}

bool WriteAll(int fd, const uint8_t* p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w <= 0) return false;
    p += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

int GenVma(const std::string& dir, uint64_t gib) {
  const uint64_t size = gib << 30;
  const uint32_t clusters = static_cast<uint32_t>(size / kVmaClusterSize);
  std::mt19937_64 rng(900);
  std::vector<VmaClusterInput> in;
  in.reserve(clusters);
  std::string raw_path = dir + "/image.raw";
  int raw = open(raw_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (raw < 0) return Fail("cannot create " + raw_path);
  std::vector<uint8_t> zero(kVmaClusterSize, 0);
  for (uint32_t c = 0; c < clusters; ++c) {
    if (c < clusters / 2) {  // a hole: a cluster entry with no stored blocks (mask 0)
      if (!WriteAll(raw, zero.data(), zero.size())) return Fail("write " + raw_path);
      in.push_back(VmaClusterInput{1, c, 0, {}});
      continue;
    }
    VmaClusterInput ci{1, c, 0xffff, std::vector<uint8_t>(kVmaClusterSize)};
    FillData(rng, ci.data.data(), ci.data.size());
    if (!WriteAll(raw, ci.data.data(), ci.data.size())) return Fail("write " + raw_path);
    in.push_back(std::move(ci));
  }
  close(raw);
  std::string conf = "boot: order=scsi0\nmemory: 2048\nscsi0: local:vm-900-disk-0,size=" +
                     std::to_string(gib) + "G\n";
  VmaWriteOptions o;
  o.ctime = 1767225600;
  auto vma = EncodeVma({{"qemu-server.conf", {conf.begin(), conf.end()}}},
                       {VmaDevice{1, "drive-scsi0", size}}, in, o);
  if (!vma.ok()) return Fail(vma.status().ToString());
  std::string path = dir + "/vzdump-qemu-900-2026_01_01-00_00_00.vma";
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0 || !WriteAll(fd, vma->data(), vma->size())) return Fail("write " + path);
  close(fd);
  std::printf("vma=%s bytes=%zu image_bytes=%llu\n", path.c_str(), vma->size(),
              static_cast<unsigned long long>(size));
  return 0;
}

int Ceiling(const std::string& raw_path, int threads) {
  int fd = open(raw_path.c_str(), O_RDONLY);
  if (fd < 0) return Fail("cannot open " + raw_path);
  struct stat st {};
  fstat(fd, &st);
  const uint64_t chunks = (static_cast<uint64_t>(st.st_size) + kChunk - 1) / kChunk;
  std::atomic<uint64_t> next{0}, stored{0}, sink{0};
  std::atomic<bool> failed{false};
  double t0 = Now();
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&] {
      std::vector<uint8_t> buf(kChunk);
      for (uint64_t i = next++; i < chunks; i = next++) {
        ssize_t n = pread(fd, buf.data(), kChunk, static_cast<off_t>(i * kChunk));
        if (n <= 0) { failed = true; return; }
        std::span<const uint8_t> data(buf.data(), static_cast<size_t>(n));
        if (std::all_of(data.begin(), data.end(), [](uint8_t b) { return b == 0; })) continue;
        Digest d = Sha256(data);
        auto blob = DataBlob::Encode(data, nullptr, true);
        if (!blob.ok()) { failed = true; return; }
        sink += d[0];  // keeps the digest computed
        stored += blob->raw().size();
      }
    });
  }
  for (auto& t : pool) t.join();
  double secs = Now() - t0;
  close(fd);
  if (failed) return Fail("read/encode failed");
  std::printf("ceiling image_bytes=%lld seconds=%.3f mb_s=%.1f stored_bytes=%llu threads=%d\n",
              static_cast<long long>(st.st_size), secs, static_cast<double>(st.st_size) / secs / 1e6,
              static_cast<unsigned long long>(stored.load()), threads);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> a(argv + 1, argv + argc);
  if (a.size() == 3 && a[0] == "gen-vma") return GenVma(a[1], std::stoull(a[2]));
  if (a.size() == 3 && a[0] == "ceiling") return Ceiling(a[1], std::stoi(a[2]));
  std::cerr << "usage: import_bench gen-vma DIR GIB | ceiling RAW THREADS\n";
  return 2;
}
