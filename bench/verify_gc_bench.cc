// Verify and GC benchmark helper (not a test). Subcommands:
//   gen-gc DIR CHUNKS [REFERENCED_FRACTION]   datastore with CHUNKS small chunks inserted through
//                                             ChunkStore, a .didx referencing the given fraction,
//                                             every chunk's atime two days old
//   gc DIR [CACHE_CAPACITY]                   one GC run (atime check off): seconds, chunks/s,
//                                             peak RSS
//   gc-ceiling DIR                            readdir of all 65536 prefix dirs + utimensat of
//                                             every chunk: the GC rate ceiling of the machine
//   gen-verify DIR GIB CHUNK_SIZE             one snapshot of GIB GiB (compressible pseudo-random
//                                             data) with fixed chunks of CHUNK_SIZE bytes
//   gen-verify-many DIR CHUNKS                one snapshot of CHUNKS distinct 64 KiB chunks that
//                                             compress to a few bytes (verify memory vs chunks)
//   verify DIR THREADS                        verify of the whole store: MB/s (plaintext), CPU
//                                             seconds, peak RSS
// Output: one "key=value ..." line per run, for bench/run.sh.
#include <dirent.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <iostream>
#include <random>
#include <string>
#include <vector>

#include "pbskit/datastore/gc.h"
#include "pbskit/datastore/locks.h"
#include "pbskit/datastore/snapshot_writer.h"
#include "pbskit/datastore/verify.h"
#include "pbskit/formats/crypto.h"
#include "pbskit/formats/data_blob.h"
#include "pbskit/formats/dynamic_index.h"

using namespace pbskit;

namespace {

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

long PeakRssKiB() {
  struct rusage ru {};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss;
}

double CpuSeconds() {
  struct rusage ru {};
  getrusage(RUSAGE_SELF, &ru);
  auto secs = [](const timeval& tv) { return tv.tv_sec + tv.tv_usec / 1e6; };
  return secs(ru.ru_utime) + secs(ru.ru_stime);
}

int Fail(const Status& st) {
  std::cerr << "error: " << st.ToString() << "\n";
  return 1;
}

int GenGc(const std::string& dir, uint64_t n, double fraction) {
  DataStoreOptions opts;
  opts.sync_level = SyncLevel::kNone;
  auto ds = DataStore::Create(dir, "bench", PosixFilesystem(), opts);
  if (!ds.ok()) return Fail(ds.status());
  ChunkStore& cs = (*ds)->chunk_store();
  DynamicIndexWriter index;
  uint64_t end = 0;
  const int64_t old = std::time(nullptr) - 2 * 86400;
  struct timespec t[2] = {{old, 0}, {old, 0}};
  std::vector<uint8_t> data(256);
  for (uint64_t i = 0; i < n; ++i) {
    for (size_t j = 0; j < data.size(); j += 8) {
      uint64_t v = i * 0x9e3779b97f4a7c15ull + j;
      std::memcpy(&data[j], &v, 8);
    }
    Digest d = Sha256(data);
    auto blob = DataBlob::Encode(data, nullptr, false);
    if (!blob.ok()) return Fail(blob.status());
    auto r = cs.InsertChunk(d, blob->raw());
    if (!r.ok()) return Fail(r.status());
    utimensat(AT_FDCWD, cs.ChunkPath(d).c_str(), t, AT_SYMLINK_NOFOLLOW);
    if (static_cast<double>(i) < fraction * static_cast<double>(n)) {
      end += data.size();
      Status st = index.Add(end, d);
      if (!st.ok()) return Fail(st);
    }
  }
  auto bytes = index.Finish(nullptr);
  if (!bytes.ok()) return Fail(bytes.status());
  std::string snap = dir + "/host/bench/2024-01-01T00:00:00Z";
  Status st = MkdirAll(PosixFilesystem(), snap);
  if (!st.ok()) return Fail(st);
  st = WriteFileAtomic(PosixFilesystem(), snap + "/data.pxar.didx", *bytes, SyncLevel::kNone);
  if (!st.ok()) return Fail(st);
  std::cout << "generated chunks=" << n << " referenced=" << index.chunk_count() << "\n";
  return 0;
}

int Gc(const std::string& dir, std::optional<uint64_t> capacity) {
  auto ds = DataStore::Open(dir, "bench");
  if (!ds.ok()) return Fail(ds.status());
  GcOptions o;
  o.atime_safety_check = false;
  o.cache_capacity = capacity;
  double t0 = Now();
  auto st = GarbageCollection(**ds, o, nullptr);
  double secs = Now() - t0;
  if (!st.ok()) return Fail(st.status());
  uint64_t chunks = st->disk_chunks + st->removed_chunks + st->pending_chunks;
  std::printf("gc chunks=%llu removed=%llu seconds=%.2f chunks_per_s=%.0f peak_rss_mib=%.1f\n",
              static_cast<unsigned long long>(chunks),
              static_cast<unsigned long long>(st->removed_chunks), secs,
              static_cast<double>(chunks) / secs, PeakRssKiB() / 1024.0);
  return 0;
}

int GcCeiling(const std::string& dir) {
  double t0 = Now();
  uint64_t n = 0;
  struct timespec times[2] = {{0, UTIME_NOW}, {0, UTIME_OMIT}};
  char sub[8];
  for (int i = 0; i < 65536; ++i) {
    std::snprintf(sub, sizeof sub, "%04x", i);
    std::string p = dir + "/.chunks/" + sub;
    DIR* d = opendir(p.c_str());
    if (!d) continue;
    int fd = dirfd(d);
    while (struct dirent* e = readdir(d)) {
      if (e->d_name[0] == '.') continue;
      struct stat st;
      fstatat(fd, e->d_name, &st, AT_SYMLINK_NOFOLLOW);
      utimensat(fd, e->d_name, times, AT_SYMLINK_NOFOLLOW);
      ++n;
    }
    closedir(d);
  }
  double secs = Now() - t0;
  std::printf("gc-ceiling chunks=%llu seconds=%.2f chunks_per_s=%.0f\n",
              static_cast<unsigned long long>(n), secs, static_cast<double>(n) / secs);
  return 0;
}

int GenVerify(const std::string& dir, uint64_t gib, uint64_t chunk_size) {
  auto ds = DataStore::Open(dir, "bench");
  if (!ds.ok()) {
    DataStoreOptions opts;
    opts.sync_level = SyncLevel::kNone;
    ds = DataStore::Create(dir, "bench", PosixFilesystem(), opts);
  }
  if (!ds.ok()) return Fail(ds.status());
  // Compressible pseudo-random data (like real images): random bytes in every other 64-byte run.
  class Gen : public ByteSource {
   public:
    explicit Gen(uint64_t total) : left_(total) {}
    Result<size_t> Read(std::span<uint8_t> buf) override {
      size_t n = static_cast<size_t>(std::min<uint64_t>(left_, buf.size()));
      for (size_t i = 0; i < n; i += 8) {
        uint64_t v = ((pos_ + i) / 64) % 2 ? 0 : rng_();
        std::memcpy(buf.data() + i, &v, std::min<size_t>(8, n - i));
      }
      pos_ += n;
      left_ -= n;
      return n;
    }

   private:
    uint64_t left_;
    uint64_t pos_ = 0;
    std::mt19937_64 rng_{42};
  } gen(gib << 30);
  SnapshotWriterOptions o;
  o.dir = BackupDir{*BackupGroup::Parse("vm/900"), static_cast<int64_t>(std::time(nullptr))};
  auto w = SnapshotWriter::Begin(*ds, o);
  if (!w.ok()) return Fail(w.status());
  auto r = (*w)->AddFixedIndex("drive-scsi0.img.fidx", gen, chunk_size);
  if (!r.ok()) return Fail(r.status());
  auto m = (*w)->Finish();
  if (!m.ok()) return Fail(m.status());
  std::cout << "generated bytes=" << (gib << 30) << " chunks=" << r->stats.chunk_count << "\n";
  return 0;
}

// A snapshot of CHUNKS distinct 64 KiB chunks that compress to a few bytes each (a counter, then
// zeros), so the chunk count of a large store is reached with little disk: verify's memory
// against the number of chunks, not its speed.
int GenVerifyMany(const std::string& dir, uint64_t chunks) {
  DataStoreOptions opts;
  opts.sync_level = SyncLevel::kNone;
  auto ds = DataStore::Create(dir, "bench", PosixFilesystem(), opts);
  if (!ds.ok()) return Fail(ds.status());
  class Gen : public ByteSource {
   public:
    explicit Gen(uint64_t chunks) : left_(chunks * 65536) {}
    Result<size_t> Read(std::span<uint8_t> buf) override {
      size_t n = static_cast<size_t>(std::min<uint64_t>(left_, buf.size()));
      std::memset(buf.data(), 0, n);
      for (uint64_t off = (65536 - pos_ % 65536) % 65536; off + 8 <= n; off += 65536) {
        uint64_t id = (pos_ + off) / 65536 + 1;
        std::memcpy(buf.data() + off, &id, 8);
      }
      pos_ += n;
      left_ -= n;
      return n;
    }

   private:
    uint64_t left_;
    uint64_t pos_ = 0;
  } gen(chunks);
  SnapshotWriterOptions o;
  o.dir = BackupDir{*BackupGroup::Parse("vm/901"), static_cast<int64_t>(std::time(nullptr))};
  auto w = SnapshotWriter::Begin(*ds, o);
  if (!w.ok()) return Fail(w.status());
  auto r = (*w)->AddFixedIndex("drive-scsi0.img.fidx", gen, 65536);
  if (!r.ok()) return Fail(r.status());
  auto m = (*w)->Finish();
  if (!m.ok()) return Fail(m.status());
  std::cout << "generated chunks=" << r->stats.chunk_count << "\n";
  return 0;
}

int Verify(const std::string& dir, size_t threads) {
  auto ds = DataStore::Open(dir, "bench");
  if (!ds.ok()) return Fail(ds.status());
  VerifyOptions o;
  o.read_threads = 1;
  o.verify_threads = threads;
  VerifyTaskResult result;
  MemoryTaskLogger log;
  double t0 = Now();
  Status st = RunVerifyTask(*ds, VerifyTarget{}, o, "", &log, &result);
  double secs = Now() - t0;
  if (!st.ok()) return Fail(st);
  uint64_t bytes = 0;
  auto groups = (*ds)->ListGroups({});
  if (groups.ok()) {
    for (const auto& g : *groups) {
      auto snaps = (*ds)->ListSnapshots({}, g);
      if (!snaps.ok()) continue;
      for (const auto& s : *snaps) {
        auto m = (*ds)->LoadManifest({}, s.dir);
        if (!m.ok()) continue;
        for (const auto& f : m->files) bytes += f.size;
      }
    }
  }
  // CPU seconds (user + sys) beside the wall time: on a shared machine they are the steadier
  // figure for comparing two builds.
  std::printf("verify bytes=%llu chunks=%llu seconds=%.2f cpu_s=%.2f mb_per_s=%.1f "
              "peak_rss_mib=%.1f\n",
              static_cast<unsigned long long>(bytes),
              static_cast<unsigned long long>(result.stats.chunks_verified), secs, CpuSeconds(),
              bytes / 1e6 / secs, PeakRssKiB() / 1024.0);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> a(argv + 1, argv + argc);
  SetLockRootForTesting("/tmp/pbskit-bench-locks");
  if (a.size() >= 3 && a[0] == "gen-gc") {
    return GenGc(a[1], std::stoull(a[2]), a.size() > 3 ? std::stod(a[3]) : 1.0);
  }
  if (a.size() >= 2 && a[0] == "gc") {
    std::optional<uint64_t> cap;
    if (a.size() > 2) cap = std::stoull(a[2]);
    return Gc(a[1], cap);
  }
  if (a.size() == 2 && a[0] == "gc-ceiling") return GcCeiling(a[1]);
  if (a.size() == 4 && a[0] == "gen-verify") {
    return GenVerify(a[1], std::stoull(a[2]), std::stoull(a[3]));
  }
  if (a.size() == 3 && a[0] == "gen-verify-many") return GenVerifyMany(a[1], std::stoull(a[2]));
  if (a.size() == 3 && a[0] == "verify") return Verify(a[1], std::stoul(a[2]));
  std::cerr << "usage: verify_gc_bench gen-gc DIR CHUNKS [FRACTION] | gc DIR [CACHE] | "
               "gc-ceiling DIR | gen-verify DIR GIB CHUNK_SIZE | gen-verify-many DIR CHUNKS | "
               "verify DIR THREADS\n";
  return 2;
}
