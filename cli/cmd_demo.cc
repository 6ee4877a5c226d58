// `pbskit demo`: the main job until the server exists. Creates (or reuses) a datastore under
// ./pbskit-data, backs up a generated ~64 MiB image twice (the second run reuses chunks),
// verifies, runs garbage collection, restores and compares SHA-256, printing each step.
#include <ctime>
#include <filesystem>
#include <iostream>
#include <random>
#include <vector>

#include "output.h"
#include "pbskit/datastore/archive_reader.h"
#include "pbskit/datastore/datastore.h"
#include "pbskit/datastore/gc.h"
#include "pbskit/datastore/snapshot_writer.h"
#include "pbskit/datastore/task_log.h"
#include "pbskit/datastore/verify.h"
#include "pbskit/formats/crypto.h"
#include "registry.h"

namespace pbskit::cli {
namespace {

// ~64 MiB of mixed content: zero runs, text, repeated 64 KiB patterns and random data.
std::vector<uint8_t> MakeImage(uint32_t seed) {
  std::vector<uint8_t> v(64u * 1024 * 1024 + 12345);
  std::mt19937 rng(seed);
  std::vector<uint8_t> pattern(65536);
  for (auto& b : pattern) b = static_cast<uint8_t>(rng());
  const char* text = "pbskit demo: a PBS-compatible datastore toolkit. ";
  for (size_t i = 0; i < v.size(); ++i) {
    switch ((i / (3 * 1024 * 1024)) % 4) {
      case 0: v[i] = 0; break;
      case 1: v[i] = static_cast<uint8_t>(text[i % 50]); break;
      case 2: v[i] = pattern[i % pattern.size()]; break;
      default: v[i] = static_cast<uint8_t>(rng()); break;
    }
  }
  return v;
}

int Step(const Status& st, const char* what) {
  if (st.ok()) return 0;
  std::cerr << "Error: " << what << ": " << st.message() << "\n";
  return 1;
}

int RunDemo(GlobalOptions&) {
  std::error_code ec;
  const std::string path =
      (std::filesystem::absolute("pbskit-data/demo-store", ec)).lexically_normal().string();
  std::cout << "== 1. datastore " << path << "\n";
  auto store = DataStore::Open(path, "demo");
  if (!store.ok()) {
    store = DataStore::Create(path, "demo");
    if (!store.ok()) return Step(store.status(), "creating the datastore");
    std::cout << "created datastore 'demo' (65536 chunk directories)\n";
  } else {
    std::cout << "reusing datastore 'demo'\n";
  }
  auto image = MakeImage(static_cast<uint32_t>(std::time(nullptr)));
  std::cout << "generated image: " << HumanBytes(image.size()) << ", sha256 "
            << ToHex(Sha256(image)) << "\n";

  BackupGroup group{BackupType::kVm, "100"};
  auto last = (*store)->LastFinishedSnapshot({}, group);
  int64_t t = static_cast<int64_t>(std::time(nullptr));
  if (last.ok() && *last && (*last)->time >= t) t = (*last)->time + 1;
  BackupDir restore_from;
  for (int run = 1; run <= 2; ++run, ++t) {
    std::cout << "== " << run + 1 << ". backup #" << run << " vm/100/" << FormatBackupTime(t)
              << "\n";
    SnapshotWriterOptions o;
    o.dir = BackupDir{group, t};
    auto w = SnapshotWriter::Begin(*store, o);
    if (!w.ok()) return Step(w.status(), "starting the backup");
    MemoryByteSource src(image);
    auto r = (*w)->AddFixedIndex("drive-scsi0.img.fidx", src);
    if (!r.ok()) return Step(r.status(), "backing up the image");
    auto m = (*w)->Finish();
    if (!m.ok()) return Step(m.status(), "finishing the backup");
    std::cout << "drive-scsi0.img: " << r->stats.chunk_count << " chunks, " << r->stats.new_chunks
              << " new, " << (r->stats.chunk_count - r->stats.new_chunks) << " reused ("
              << HumanBytes(r->stats.compressed_size) << " written)\n";
    restore_from = o.dir;
    if (run == 1) image[10 * 1024 * 1024] ^= 0x5a;  // the second backup changes one chunk
  }

  std::cout << "== 4. verify\n";
  StreamTaskLogger log(&std::cout);
  auto upid = NewUpid("verify", std::string("demo"), "root@pam");
  if (!upid.ok()) return Step(upid.status(), "creating a task id");
  Status vst = RunVerifyTask(*store, VerifyTarget{}, VerifyOptions{}, upid->ToString(), &log);
  std::cout << (vst.ok() ? "TASK OK" : "TASK ERROR: " + vst.message()) << "\n";
  if (!vst.ok()) return 1;

  std::cout << "== 5. garbage collection\n";
  GcOptions gc;
  auto gst = GarbageCollection(**store, gc, &log);
  if (!gst.ok()) return Step(gst.status(), "garbage collection");

  std::cout << "== 6. restore and compare\n";
  auto reader = ArchiveReader::Open(*store, {}, restore_from, "drive-scsi0.img.fidx", nullptr);
  if (!reader.ok()) return Step(reader.status(), "opening the archive");
  Sha256Stream sha;
  uint64_t bytes = 0;
  Status rst = (*reader)->ReadAll([&](std::span<const uint8_t> d) {
    sha.Update(d);
    bytes += d.size();
    return Status::OK();
  });
  if (!rst.ok()) return Step(rst, "restoring");
  std::string got = ToHex(sha.Finish()), want = ToHex(Sha256(image));
  std::cout << "restored " << HumanBytes(bytes) << ", sha256 " << got << "\n";
  if (got != want) {
    std::cerr << "Error: restored image differs from the original (" << want << ")\n";
    return 1;
  }
  std::cout << "restored image is identical to the original\n";
  return 0;
}

void Setup(CLI::App& app, GlobalOptions& g) {
  auto* sub = app.add_subcommand(
      "demo", "create a datastore in ./pbskit-data, back up a generated image twice, verify, "
              "run GC, restore and compare");
  sub->callback([&g] { g.exit_code = RunDemo(g); });
}

}  // namespace

PBSKIT_REGISTER_COMMAND(1, Setup);

}  // namespace pbskit::cli
