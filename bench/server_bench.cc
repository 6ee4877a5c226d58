// Server benchmark helper (not a test): backup ingest and restore through `pbskit serve`'s
// HTTP/2 backup and reader protocols over loopback TLS, beside the ceiling of what the server
// must do per chunk, measured in the same run.
//
//   server_bench DIR MIB CLIENTS...     e.g. server_bench /tmp/sb 1024 1 4
//
// DIR is wiped and gets a fresh embedded default (config, datastore, token). The server runs in
// this process; every client is a separate process (this binary, `client` mode), so the server's
// CPU time and peak RSS are its own. For each CLIENTS value, that many clients back up MIB MiB
// each (distinct compressible data, 4 MiB fixed chunks, one snapshot per client) at the same
// time, then restore it at the same time.
//
// ingest: the clients send chunks they encoded before the clock starts (a sync job's upload,
// BackupClient::UploadFixedIndexEncoded), so the figure is what the server absorbs: TLS
// decrypt, HTTP/2, decompress + SHA-256 check, CRC, chunk file write, index, and the syncfs of
// /finish (sync-level filesystem, PBS's default). client_backup: the same through
// BackupClient::UploadFixedIndex, where the clients also hash and compress (a new snapshot id).
// The ceiling: AES-256-GCM decrypt (TLS record work) + zstd decompress + SHA-256 of every chunk
// on 2 threads. Clients and server share the machine's cores; server_cpu_s is the server's own
// CPU time for the ingest round and cpu_eff = ceiling CPU time for the same bytes / server CPU
// time (1.0 = the server spends nothing beyond the ceiling's work). Output: "key=value" lines.
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

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

double CpuSeconds(int who) {
  struct rusage ru {};
  getrusage(who, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

// MB/s of the ceiling work over `data`; *cpu_s: the CPU seconds it took.
double Ceiling(const std::vector<std::vector<uint8_t>>& data, double* cpu_s) {
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
  double cpu0 = CpuSeconds(RUSAGE_SELF);
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
  double secs = Now() - t0;
  *cpu_s = CpuSeconds(RUSAGE_SELF) - cpu0;
  return static_cast<double>(plain) / secs / 1e6;
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



// ---- client processes ----

// `server_bench client PORT FINGERPRINT TOKEN_ID SECRET STORE ID TIME MIB SEED MODE`
// (MODE: encoded | plain | restore). Prepares, prints "ready", waits for a line on stdin, runs,
// prints "done", exits 0 (1 on error, with the message on stderr).
int ClientMain(char** argv) {
  const int port = std::stoi(argv[2]);
  RepositoryConnectOptions conn;
  auto repo = BackupRepository::Parse(std::string(argv[4]) + "@127.0.0.1:" +
                                      std::to_string(port) + ":" + argv[6]);
  if (!repo.ok()) return Fail("repository", repo.status());
  conn.repository = *repo;
  conn.fingerprint = argv[3];
  conn.secret = argv[5];
  const std::string id = argv[7];
  const int64_t time = std::stoll(argv[8]);
  const size_t mib = std::stoul(argv[9]);
  const uint64_t seed = std::stoull(argv[10]);
  const std::string mode = argv[11];

  std::vector<uint8_t> data;
  std::unique_ptr<PreparedChunks> prepared;
  if (mode != "restore") data = MakeData(mib << 20, seed);
  if (mode == "encoded") prepared = std::make_unique<PreparedChunks>(data);
  std::printf("ready\n");
  std::fflush(stdout);
  char line[16];
  if (!std::fgets(line, sizeof line, stdin)) return 1;

  double finish_s = 0;  // the /finish call: manifest + syncfs of the datastore
  if (mode == "restore") {
    ReaderSessionOptions o;
    o.backup_type = "host";
    o.backup_id = id;
    o.backup_time = time;
    auto rc = ReaderClient::Start(conn, o);
    if (!rc.ok()) return Fail("restore", rc.status());
    uint64_t restored = 0;
    Status st = (*rc)->RestoreArchive("disk.img.fidx", [&](std::span<const uint8_t> b) {
      restored += b.size();
      return Status::OK();
    });
    if (!st.ok()) return Fail("restore", st);
    if (restored != (mib << 20)) return Fail("restore", Status::Corruption("short restore"));
  } else {
    BackupSessionOptions o;
    o.backup_type = "host";
    o.backup_id = id;
    o.backup_time = time;
    auto bc = BackupClient::Start(conn, o);
    if (!bc.ok()) return Fail("backup", bc.status());
    MemoryByteSource src(data);
    auto up = prepared ? (*bc)->UploadFixedIndexEncoded("disk.img.fidx", *prepared, data.size())
                       : (*bc)->UploadFixedIndex("disk.img.fidx", src, data.size());
    if (!up.ok()) return Fail("backup", up.status());
    double f0 = Now();
    auto fin = (*bc)->Finish();
    if (!fin.ok()) return Fail("backup", fin.status());
    finish_s = Now() - f0;
  }
  std::printf("done %.3f\n", finish_s);
  std::fflush(stdout);
  return 0;
}

struct Child {
  pid_t pid = -1;
  FILE* out = nullptr;  // its stdout
  int in = -1;          // its stdin
};

Result<Child> SpawnClient(const std::vector<std::string>& args) {
  int to_child[2], from_child[2];
  if (::pipe(to_child) != 0 || ::pipe(from_child) != 0) {
    return Status::IoError("pipe failed");
  }
  pid_t pid = ::fork();
  if (pid < 0) return Status::IoError("fork failed");
  if (pid == 0) {
    ::dup2(to_child[0], 0);
    ::dup2(from_child[1], 1);
    ::close(to_child[1]);
    ::close(from_child[0]);
    std::vector<char*> argv;
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    ::execv("/proc/self/exe", argv.data());
    ::_exit(127);
  }
  ::close(to_child[0]);
  ::close(from_child[1]);
  Child c;
  c.pid = pid;
  c.in = to_child[1];
  c.out = ::fdopen(from_child[0], "r");
  return c;
}

// Waits for the child to exit and closes its pipes.
void Reap(Child& k) {
  int status = 0;
  ::waitpid(k.pid, &status, 0);
  std::fclose(k.out);
  ::close(k.in);
}

// Starts `clients` client processes in `mode`, waits until all are prepared, then lets them run
// at once. Returns the wall seconds from the start signal until the last one finished;
// *server_cpu: this process's CPU seconds over the same span; *finish_s: the longest /finish.
Result<double> RunRound(const std::vector<std::string>& common, const std::string& id_prefix,
                        int clients, int64_t time, size_t mib, uint64_t seed0,
                        const std::string& mode, double* server_cpu, double* finish_s) {
  std::vector<Child> kids;
  for (int c = 0; c < clients; ++c) {
    std::vector<std::string> args = common;
    args.push_back(id_prefix + std::to_string(clients) + "-" + std::to_string(c));
    args.push_back(std::to_string(time));
    args.push_back(std::to_string(mib));
    args.push_back(std::to_string(seed0 + static_cast<uint64_t>(c)));
    args.push_back(mode);
    PBSKIT_ASSIGN_OR_RETURN(Child k, SpawnClient(args));
    kids.push_back(k);
  }
  char line[64];
  for (auto& k : kids) {
    if (!std::fgets(line, sizeof line, k.out)) return Status::IoError("client failed to start");
  }
  double cpu0 = CpuSeconds(RUSAGE_SELF);
  double t0 = Now();
  for (auto& k : kids) {
    if (::write(k.in, "go\n", 3) != 3) return Status::IoError("client went away");
  }
  Status result = Status::OK();
  for (auto& k : kids) {
    double f = 0;
    if (!std::fgets(line, sizeof line, k.out) || std::sscanf(line, "done %lf", &f) != 1) {
      result = Status::IoError("a client failed (" + mode + ")");
    }
    *finish_s = std::max(*finish_s, f);
  }
  double secs = Now() - t0;
  *server_cpu = CpuSeconds(RUSAGE_SELF) - cpu0;
  for (auto& k : kids) Reap(k);
  PBSKIT_RETURN_IF_ERROR(result);
  return secs;
}

}  // namespace

// `server_bench ceiling MIB CLIENTS SEED`: prints "MB/s CPU-seconds" of the ceiling work over
// the data the clients of a round send (in its own process, so the server's RSS stays its own).
int CeilingMain(char** argv) {
  const size_t mib = std::stoul(argv[2]);
  const int clients = std::stoi(argv[3]);
  const uint64_t seed = std::stoull(argv[4]);
  std::vector<std::vector<uint8_t>> data;
  for (int c = 0; c < clients; ++c) data.push_back(MakeData(mib << 20, seed + c));
  double cpu = 0;
  double rate = Ceiling(data, &cpu);
  std::printf("%.3f %.3f\n", rate, cpu);
  return rate > 0 ? 0 : 1;
}

Result<std::pair<double, double>> MeasureCeiling(size_t mib, int clients, uint64_t seed) {
  PBSKIT_ASSIGN_OR_RETURN(Child k, SpawnClient({"server_bench", "ceiling", std::to_string(mib),
                                                std::to_string(clients), std::to_string(seed)}));
  double rate = 0, cpu = 0;
  int n = std::fscanf(k.out, "%lf %lf", &rate, &cpu);
  Reap(k);
  if (n != 2 || rate <= 0) return Status::IoError("ceiling measurement failed");
  return std::make_pair(rate, cpu);
}

int main(int argc, char** argv) {
  if (argc == 12 && std::string(argv[1]) == "client") return ClientMain(argv);
  if (argc == 5 && std::string(argv[1]) == "ceiling") return CeilingMain(argv);
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
  std::vector<std::string> common = {"server_bench",  "client",    std::to_string((*serve)->port()),
                                     (*serve)->fingerprint(), def->token_id, def->secret,
                                     def->store};

  int64_t time = 1767225600;
  for (int clients : rounds) {
    auto ceil = MeasureCeiling(mib, clients, static_cast<uint64_t>(time));
    if (!ceil.ok()) return Fail("ceiling", ceil.status());
    const auto [ceiling, ceiling_cpu] = *ceil;
    const double total = static_cast<double>(clients) * static_cast<double>(mib << 20);

    double ingest_cpu = 0, client_cpu = 0, restore_cpu = 0, finish_s = 0, unused = 0;
    auto ingest_s =
        RunRound(common, "bench-", clients, time, mib, time, "encoded", &ingest_cpu, &finish_s);
    if (!ingest_s.ok()) return Fail("backup", ingest_s.status());
    auto client_s =
        RunRound(common, "client-", clients, time, mib, time, "plain", &client_cpu, &unused);
    if (!client_s.ok()) return Fail("backup", client_s.status());
    auto restore_s =
        RunRound(common, "bench-", clients, time, mib, time, "restore", &restore_cpu, &unused);
    if (!restore_s.ok()) return Fail("restore", restore_s.status());

    double ingest = total / *ingest_s / 1e6;
    double restore = total / *restore_s / 1e6;
    std::printf("clients=%d mib_each=%zu ingest_mb_s=%.1f client_backup_mb_s=%.1f "
                "restore_mb_s=%.1f ceiling_mb_s=%.1f ingest_pct=%.0f restore_pct=%.0f "
                "finish_s=%.2f server_cpu_s=%.2f ceiling_cpu_s=%.2f cpu_eff=%.2f "
                "server_peak_rss_kib=%ld\n",
                clients, mib, ingest, total / *client_s / 1e6, restore, ceiling,
                100.0 * ingest / ceiling, 100.0 * restore / ceiling, finish_s, ingest_cpu,
                ceiling_cpu, ceiling_cpu / ingest_cpu, PeakRssKiB());
    std::fflush(stdout);
    time += 3600;
  }
  (*serve)->Stop();
  return 0;
}
