// Container tar import benchmark helper (not a test). Subcommands:
//   gen-tar DIR GIB      writes DIR/vzdump-lxc-901-2026_01_01-00_00_00.tar (pax, as vzdump's GNU
//                        tar writes it: pct.conf first, then ./ and a tree in unsorted order)
//                        holding GIB GiB of file data: 64 directories of files from 4 KiB to
//                        32 MiB, compressible pseudo-random content (about 2:1 under zstd), one
//                        file in eight all zeros
//   ceiling TAR THREADS  what any import must at least do with those bytes: buzhash chunking
//                        (4 MiB average, one thread, as the stream is sequential) and SHA-256 +
//                        zstd level 1 (DataBlob encode) of every chunk on THREADS threads
// Output: one "key=value ..." line per run, for bench/run_import_lxc.sh.
#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <iostream>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "pbskit/formats/chunker.h"
#include "pbskit/formats/crypto.h"
#include "pbskit/formats/data_blob.h"

using namespace pbskit;

namespace {

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

int Fail(const std::string& what) {
  std::cerr << "error: " << what << "\n";
  return 1;
}

// Pseudo-random bytes from a small alphabet: compresses about 2:1.
void Fill(std::mt19937_64& rng, std::vector<uint8_t>& buf, size_t n) {
  buf.resize(n);
  for (size_t i = 0; i < n; i += 8) {
    uint64_t v = rng();
    for (size_t j = 0; j < 8 && i + j < n; ++j) buf[i + j] = static_cast<uint8_t>('a' + ((v >> (8 * j)) & 15));
  }
}

int GenTar(const std::string& dir, double gib) {
  const uint64_t total = static_cast<uint64_t>(gib * 1024 * 1024 * 1024);
  std::string path = dir + "/vzdump-lxc-901-2026_01_01-00_00_00.tar";
  archive* a = archive_write_new();
  archive_write_set_format_pax(a);
  if (archive_write_open_filename(a, path.c_str()) != ARCHIVE_OK) return Fail("open " + path);
  auto header = [&](const std::string& name, unsigned mode, uint64_t size) {
    archive_entry* e = archive_entry_new();
    archive_entry_set_pathname(e, name.c_str());
    archive_entry_set_mode(e, mode);
    archive_entry_set_size(e, static_cast<la_int64_t>(size));
    archive_entry_set_mtime(e, 1767225600, 0);
    bool ok = archive_write_header(a, e) == ARCHIVE_OK;
    archive_entry_free(e);
    return ok;
  };
  std::string conf = "arch: amd64\nhostname: bench\nmemory: 512\nrootfs: local:901/disk.raw,size=8G\n";
  if (!header("./etc/vzdump/pct.conf", AE_IFREG | 0644, conf.size())) return Fail("header");
  archive_write_data(a, conf.data(), conf.size());
  header("./", AE_IFDIR | 0755, 0);
  std::mt19937_64 rng(42);
  std::vector<int> dirs(64);
  for (int i = 0; i < 64; ++i) dirs[i] = i;
  std::shuffle(dirs.begin(), dirs.end(), rng);  // readdir order is not name order
  std::vector<uint8_t> buf;
  uint64_t written = 0, files = 0;
  for (size_t di = 0; di < dirs.size() && written < total; ++di) {
    std::string d = "./d" + std::to_string(dirs[di]) + "/";
    header(d, AE_IFDIR | 0755, 0);
    const uint64_t share = (total - written) / (dirs.size() - di);
    uint64_t in_dir = 0;
    while (in_dir < share) {
      uint64_t r = rng() % 100;
      uint64_t size = r < 70 ? 4096 + rng() % 61440 : r < 95 ? (1 << 20) + rng() % (3 << 20)
                                                              : (8 << 20) + rng() % (24 << 20);
      size = std::min(size, share - in_dir);
      std::string name = d + "f" + std::to_string(rng() % 1000000) + "_" + std::to_string(files++);
      if (!header(name, AE_IFREG | 0644, size)) return Fail("header " + name);
      const bool zeros = rng() % 8 == 0;
      for (uint64_t done = 0; done < size;) {
        size_t n = static_cast<size_t>(std::min<uint64_t>(size - done, 1 << 20));
        if (zeros) buf.assign(n, 0);
        else Fill(rng, buf, n);
        if (archive_write_data(a, buf.data(), n) != static_cast<la_ssize_t>(n)) return Fail("write");
        done += n;
      }
      in_dir += size;
    }
    written += in_dir;
  }
  archive_write_close(a);
  archive_write_free(a);
  struct stat st {};
  stat(path.c_str(), &st);
  std::printf("tar=%s bytes=%lld data_bytes=%llu files=%llu\n", path.c_str(),
              static_cast<long long>(st.st_size), static_cast<unsigned long long>(written),
              static_cast<unsigned long long>(files));
  return 0;
}

int Ceiling(const std::string& tar, int threads) {
  int fd = open(tar.c_str(), O_RDONLY);
  if (fd < 0) return Fail("cannot open " + tar);
  std::mutex mu;
  std::condition_variable cv;
  std::deque<std::vector<uint8_t>> queue;
  bool done = false;
  std::atomic<uint64_t> stored{0}, sink{0};
  double t0 = Now();
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&] {
      for (;;) {
        std::vector<uint8_t> chunk;
        {
          std::unique_lock<std::mutex> l(mu);
          cv.wait(l, [&] { return !queue.empty() || done; });
          if (queue.empty()) return;
          chunk = std::move(queue.front());
          queue.pop_front();
        }
        cv.notify_all();
        Digest d = Sha256(chunk);
        auto blob = DataBlob::Encode(chunk, nullptr, true);
        if (blob.ok()) stored += blob->raw().size();
        sink += d[0];
      }
    });
  }
  Chunker chunker;
  std::vector<uint8_t> in(1 << 20), cur;
  uint64_t total = 0;
  for (;;) {
    ssize_t n = read(fd, in.data(), in.size());
    if (n <= 0) break;
    total += static_cast<uint64_t>(n);
    std::span<const uint8_t> rest(in.data(), static_cast<size_t>(n));
    while (!rest.empty()) {
      size_t cut = chunker.Scan(rest);
      size_t take = cut ? cut : rest.size();
      cur.insert(cur.end(), rest.begin(), rest.begin() + static_cast<long>(take));
      rest = rest.subspan(take);
      if (cut) {
        std::unique_lock<std::mutex> l(mu);
        cv.wait(l, [&] { return queue.size() < static_cast<size_t>(2 * threads); });
        queue.push_back(std::move(cur));
        cur.clear();
        cv.notify_all();
      }
    }
  }
  {
    std::lock_guard<std::mutex> l(mu);
    if (!cur.empty()) queue.push_back(std::move(cur));
    done = true;
  }
  cv.notify_all();
  for (auto& t : pool) t.join();
  double secs = Now() - t0;
  close(fd);
  std::printf("ceiling tar_bytes=%llu seconds=%.3f mb_s=%.1f stored_bytes=%llu threads=%d\n",
              static_cast<unsigned long long>(total), secs, static_cast<double>(total) / secs / 1e6,
              static_cast<unsigned long long>(stored.load()), threads);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> a(argv + 1, argv + argc);
  if (a.size() == 3 && a[0] == "gen-tar") return GenTar(a[1], std::stod(a[2]));
  if (a.size() == 3 && a[0] == "ceiling") return Ceiling(a[1], std::stoi(a[2]));
  std::cerr << "usage: import_lxc_bench gen-tar DIR GIB | ceiling TAR THREADS\n";
  return 2;
}
