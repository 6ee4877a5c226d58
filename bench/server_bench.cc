// Server benchmark helper (not a test): backup ingest and restore through `pbskit serve`'s
// HTTP/2 backup and reader protocols over loopback TLS, beside the ceiling of what the server
// must do per chunk, measured in the same run.
//
//   server_bench DIR MIB CLIENTS...     e.g. server_bench /tmp/sb 1024 1 4
//
// DIR is wiped and gets a fresh embedded default (config, datastore, token). For each CLIENTS
// value, that many clients back up MIB MiB each (distinct compressible data, 4 MiB fixed
// chunks, one snapshot per client) at the same time, then restore it at the same time.
//
// ingest: the clients send chunks they encoded before the clock starts (a sync job's upload,
// BackupClient::UploadFixedIndexEncoded), so the figure is what the server absorbs: TLS
// decrypt, HTTP/2, decompress + SHA-256 check, chunk file write, index. client_backup: the
// same through BackupClient::UploadFixedIndex, where the clients also hash and compress on the
// same cores (a new snapshot id). The ceiling: AES-256-GCM decrypt (TLS record work) + zstd
// decompress + SHA-256 of every chunk on 2 threads. Output: "key=value" lines. Peak RSS is
// the whole process (server, clients and the clients' source data in memory).
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "pbskit/datastore/snapshot_writer.h"
#include "pbskit/formats/crypto.h"
#include "pbskit/formats/data_blob.h"
#include "pbskit/server/backup_client.h"
#include "pbskit/server/reader_client.h"
#include "pbskit/server/serve.h"

using namespace pbskit;
using namespace pbskit::server;

namespace {

constexpr size_t kChunk = 4 * 1024 * 1024;

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

long PeakRssKiB() {
  struct rusage ru {};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss;
}

// Compressible pseudo-random data (about 2:1 under zstd level 1), different per seed.
std::vector<uint8_t> MakeData(size_t n, uint64_t seed) {
  std::vector<uint8_t> v(n);
  std::mt19937_64 rng(seed);
  size_t i = 0;
  while (i < n) {
    uint64_t r = rng();
    if ((r & 7) == 0 && i >= 64) {
      size_t len = std::min<size_t>(16 + ((r >> 3) & 31), n - i);
      size_t back = 1 + ((r >> 8) % std::min<size_t>(i, 4096));
      for (size_t k = 0; k < len; ++k, ++i) v[i] = v[i - back];
    } else {
      for (int k = 0; k < 8 && i < n; ++k, ++i) v[i] = static_cast<uint8_t>('a' + ((r >> (k * 8)) % 40));
    }
  }
  return v;
}

double Ceiling(const std::vector<std::vector<uint8_t>>& data) {
  // Prepare what arrives at the server: encoded chunks, then TLS-encrypted.
  std::array<uint8_t, 32> key{};
  std::array<uint8_t, 16> iv{};
  struct Item {
    std::vector<uint8_t> cipher;
    std::array<uint8_t, 16> tag;
  };
  std::vector<Item> items;
  uint64_t plain = 0;
  for (const auto& d : data) {
    for (size_t off = 0; off < d.size(); off += kChunk) {
      std::span<const uint8_t> c(d.data() + off, std::min(kChunk, d.size() - off));
      auto blob = DataBlob::Encode(c, nullptr, true);
      if (!blob.ok()) return 0;
      Item it;
      if (!Aes256GcmEncrypt(key, iv, blob->raw(), &it.cipher, &it.tag).ok()) return 0;
      items.push_back(std::move(it));
      plain += c.size();
    }
  }
  std::atomic<size_t> next{0};
  std::atomic<uint64_t> sink{0};
  double t0 = Now();
  std::vector<std::thread> pool;
  for (int t = 0; t < 2; ++t) {
    pool.emplace_back([&] {
      std::vector<uint8_t> raw, out;
      for (size_t i = next++; i < items.size(); i = next++) {
        if (!Aes256GcmDecrypt(key, iv, items[i].tag, items[i].cipher, &raw).ok()) return;
        if (!DecodeBlob(raw, nullptr, &out).ok()) return;
        sink += Sha256(out)[0];
      }
    });
  }
  for (auto& t : pool) t.join();
  return static_cast<double>(plain) / (Now() - t0) / 1e6;
}

// The chunks of one client's data, encoded as the Rust client would send them.
class PreparedChunks final : public EncodedChunkSource {
 public:
  explicit PreparedChunks(const std::vector<uint8_t>& data) {
    for (size_t off = 0; off < data.size(); off += kChunk) {
      std::span<const uint8_t> c(data.data() + off, std::min(kChunk, data.size() - off));
      auto blob = DataBlob::Encode(c, nullptr, true);
      if (!blob.ok()) continue;
      chunks_.push_back({Sha256(c), c.size(), std::string(blob->raw().begin(),
                                                           blob->raw().end())});
    }
  }
  Result<std::optional<EncodedChunk>> Next() override {
    if (next_ == chunks_.size()) return std::optional<EncodedChunk>();
    return std::optional<EncodedChunk>(std::move(chunks_[next_++]));
  }

 private:
  std::vector<EncodedChunk> chunks_;
  size_t next_ = 0;
};

int Fail(const std::string& what, const Status& st) {
  std::cerr << "error: " << what << ": " << st.ToString() << "\n";
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) {
    std::cerr << "usage: server_bench DIR MIB CLIENTS...\n";
    return 2;
  }
  const std::string dir = argv[1];
  const size_t mib = std::stoul(argv[2]);
  std::vector<int> rounds;
  for (int i = 3; i < argc; ++i) rounds.push_back(std::stoi(argv[i]));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);

  ServeConfig cfg;
  cfg.config_dir = dir + "/etc";
  cfg.state_dir = dir + "/state";
  cfg.listen = "127.0.0.1:0";
  cfg.threads = 8;
  cfg.cert_bits = 2048;
  cfg.default_store_path = dir + "/store1";
  auto serve = Serve::Start(cfg);
  if (!serve.ok()) return Fail("serve", serve.status());
  const auto& def = (*serve)->default_setup();
  if (!def) return Fail("serve", Status::Aborted("no default setup created"));
  RepositoryConnectOptions conn;
  auto repo = BackupRepository::Parse(def->token_id + "@127.0.0.1:" +
                                      std::to_string((*serve)->port()) + ":" + def->store);
  if (!repo.ok()) return Fail("repository", repo.status());
  conn.repository = *repo;
  conn.fingerprint = (*serve)->fingerprint();
  conn.secret = def->secret;

  int64_t time = 1767225600;
  for (int clients : rounds) {
    std::vector<std::vector<uint8_t>> data;
    for (int c = 0; c < clients; ++c) data.push_back(MakeData(mib << 20, time + c));
    double ceiling = Ceiling(data);

    std::vector<Status> errors(clients);
    std::vector<std::thread> th;
    double round_start = 0;
    // One round of backups, all clients at once; `encoded` selects the pre-encoded upload.
    auto backup_round = [&](const std::string& id_prefix, bool encoded) {
      std::vector<std::unique_ptr<PreparedChunks>> prepared(clients);
      if (encoded) {
        for (int c = 0; c < clients; ++c) prepared[c] = std::make_unique<PreparedChunks>(data[c]);
      }
      double start = round_start = Now();
      for (int c = 0; c < clients; ++c) {
        th.emplace_back([&, c] {
          BackupSessionOptions o;
          o.backup_type = "host";
          o.backup_id = id_prefix + std::to_string(clients) + "-" + std::to_string(c);
          o.backup_time = time;
          auto bc = BackupClient::Start(conn, o);
          if (!bc.ok()) { errors[c] = bc.status(); return; }
          MemoryByteSource src(data[c]);
          auto up = encoded ? (*bc)->UploadFixedIndexEncoded("disk.img.fidx", *prepared[c],
                                                             data[c].size())
                            : (*bc)->UploadFixedIndex("disk.img.fidx", src, data[c].size());
          if (!up.ok()) { errors[c] = up.status(); return; }
          auto fin = (*bc)->Finish();
          if (!fin.ok()) errors[c] = fin.status();
        });
      }
      for (auto& t : th) t.join();
      th.clear();
      return Now() - start;
    };
    double ingest_s = backup_round("bench-", true);
    // For `perf record -k CLOCK_MONOTONIC` + `perf report --time FROM,TO`.
    std::fprintf(stderr, "ingest_window=%.6f,%.6f\n", round_start, round_start + ingest_s);
    for (const auto& e : errors) if (!e.ok()) return Fail("backup", e);
    double client_s = backup_round("client-", false);
    for (const auto& e : errors) if (!e.ok()) return Fail("backup", e);

    std::vector<uint64_t> restored(clients, 0);
    double t0 = Now();
    for (int c = 0; c < clients; ++c) {
      th.emplace_back([&, c] {
        ReaderSessionOptions o;
        o.backup_type = "host";
        o.backup_id = "bench-" + std::to_string(clients) + "-" + std::to_string(c);
        o.backup_time = time;
        auto rc = ReaderClient::Start(conn, o);
        if (!rc.ok()) { errors[c] = rc.status(); return; }
        Status st = (*rc)->RestoreArchive("disk.img.fidx", [&](std::span<const uint8_t> b) {
          restored[c] += b.size();
          return Status::OK();
        });
        if (!st.ok()) errors[c] = st;
      });
    }
    for (auto& t : th) t.join();
    double restore_s = Now() - t0;
    for (const auto& e : errors) if (!e.ok()) return Fail("restore", e);
    const double total = static_cast<double>(clients) * static_cast<double>(mib << 20);
    for (auto r : restored)
      if (r != (mib << 20)) return Fail("restore", Status::Corruption("short restore"));
    std::printf("clients=%d mib_each=%zu ingest_mb_s=%.1f client_backup_mb_s=%.1f "
                "restore_mb_s=%.1f ceiling_mb_s=%.1f ingest_pct=%.0f restore_pct=%.0f "
                "peak_rss_kib=%ld\n",
                clients, mib, total / ingest_s / 1e6, total / client_s / 1e6,
                total / restore_s / 1e6, ceiling, 100.0 * (total / ingest_s / 1e6) / ceiling,
                100.0 * (total / restore_s / 1e6) / ceiling, PeakRssKiB());
    std::fflush(stdout);
    time += 3600;
  }
  (*serve)->Stop();
  return 0;
}
