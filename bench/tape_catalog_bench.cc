// Finding a snapshot in a media set of 100 tapes: the per-media `.index` snapshot caches
// against loading and parsing every media catalog (<uuid>.log).
//
//   tape_catalog_bench [tapes=100] [snapshots-per-tape=200] [chunks-per-tape=20000] [rounds=5]
//
// Builds a synthetic tape status directory in $TMPDIR, then times N lookups of a snapshot on
// the last tape both ways (caches warm, the first cache build timed separately).
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "pbskit/datastore/tape/tape_state.h"
#include "pbskit/formats/crypto.h"
#include "pbskit/formats/names.h"

using namespace pbskit;
using namespace pbskit::tape;

namespace {

double Seconds(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

int main(int argc, char** argv) {
  int tapes = argc > 1 ? std::atoi(argv[1]) : 100;
  int snaps = argc > 2 ? std::atoi(argv[2]) : 200;
  int chunks = argc > 3 ? std::atoi(argv[3]) : 20000;
  int rounds = argc > 4 ? std::atoi(argv[4]) : 5;
  const char* tmp_env = std::getenv("TMPDIR");
  std::string dir =
      std::string(tmp_env ? tmp_env : "/tmp") + "/pbskit-tape-bench-" + std::to_string(::getpid());
  TapeStatusDir state(PosixFilesystem(), dir);
  if (!state.Init().ok()) return 1;

  Uuid set = RandomUuid();
  std::vector<MediaId> ids;
  uint64_t catalog_bytes = 0;
  for (int t = 0; t < tapes; ++t) {
    MediaId id;
    id.label.uuid = RandomUuid();
    id.label.label_text = "TAPE" + std::to_string(t);
    MediaSetLabel s;
    s.pool = "bench";
    s.uuid = set;
    s.seq_nr = static_cast<uint64_t>(t);
    id.media_set_label = s;
    auto b = NewMediaCatalog(id);
    uint64_t file = 2;
    int per_archive = chunks / (snaps > 0 ? snaps : 1);
    for (int i = 0; i < snaps; ++i) {
      Uuid u = RandomUuid();
      (void)b->StartChunkArchive(u, file, "store1");
      for (int c = 0; c < per_archive; ++c) {
        std::string seed = std::to_string(t) + "/" + std::to_string(i) + "/" + std::to_string(c);
        (void)b->RegisterChunk(Sha256(seed));
      }
      (void)b->EndChunkArchive(u, file++);
      std::string name =
          "vm/" + std::to_string(t * 1000 + i) + "/" + FormatBackupTime(1700000000 + i);
      (void)b->RegisterSnapshot(RandomUuid(), file++, "store1", name);
    }
    catalog_bytes += b->pending().size();
    if (!state.WriteCatalog(id.label.uuid, b->pending()).ok()) return 1;
    ids.push_back(id);
  }
  std::string wanted = "vm/" + std::to_string((tapes - 1) * 1000 + snaps / 2) + "/" +
                       FormatBackupTime(1700000000 + snaps / 2);
  std::printf("media set: %d tapes, %d snapshots and %d chunks per tape, %.1f MiB of catalogs\n",
              tapes, snaps, chunks, catalog_bytes / 1048576.0);

  auto t0 = std::chrono::steady_clock::now();
  for (const auto& id : ids) (void)state.SnapshotList(id);
  std::printf("%-34s %10.3f ms\n", "build .index caches (once)", Seconds(t0) * 1000);

  double index_total = 0, scan_total = 0;
  for (int r = 0; r < rounds; ++r) {
    t0 = std::chrono::steady_clock::now();
    int found = -1;
    for (size_t i = 0; i < ids.size() && found < 0; ++i) {
      auto list = state.SnapshotList(ids[i]);
      for (const auto& [store, snap] : *list) {
        if (snap == wanted) found = static_cast<int>(i);
      }
    }
    index_total += Seconds(t0);
    if (found != tapes - 1) return 2;

    t0 = std::chrono::steady_clock::now();
    found = -1;
    for (size_t i = 0; i < ids.size() && found < 0; ++i) {
      auto c = state.LoadCatalog(ids[i]);
      if (c->content.at("store1").snapshot_index.count(wanted)) found = static_cast<int>(i);
    }
    scan_total += Seconds(t0);
    if (found != tapes - 1) return 2;
  }
  std::printf("%-34s %10.3f ms\n", "lookup via .index (mean)", index_total / rounds * 1000);
  std::printf("%-34s %10.3f ms\n", "lookup by loading catalogs (mean)", scan_total / rounds * 1000);
  std::printf("%-34s %10.1fx\n", "speedup", scan_total / index_total);
  std::filesystem::remove_all(dir);
  return 0;
}
