// Small datastores for pxar tests without the 65,536 `.chunks` prefix directories a full one
// needs (slow on busy disks): only the prefix directories of the chunks a plain (unencrypted)
// dynamic index of the given streams will use are created, found with the same chunker the
// snapshot writer uses.
#pragma once

#include <sys/stat.h>

#include <memory>
#include <string>
#include <vector>

#include "pbskit/datastore/datastore.h"
#include "pbskit/formats/chunker.h"
#include "pbskit/formats/crypto.h"
#include "pbskit/formats/hex.h"

namespace pbskit::test {

// Creates <path>/.chunks and the prefix directories of the chunks of `streams` cut at
// `avg_chunk_size`; returns the opened store (null on failure).
inline std::shared_ptr<DataStore> OpenSmallStore(const std::string& path,
                                                 const std::vector<std::vector<uint8_t>>& streams,
                                                 size_t avg_chunk_size) {
  ::mkdir(path.c_str(), 0755);
  ::mkdir((path + "/.chunks").c_str(), 0750);
  for (const std::vector<uint8_t>& data : streams) {
    Chunker chunker(avg_chunk_size);
    size_t start = 0, pos = 0;
    auto add = [&](size_t end) {
      Digest d = Sha256(std::span<const uint8_t>(data.data() + start, end - start));
      ::mkdir((path + "/.chunks/" + ToHex(d).substr(0, 4)).c_str(), 0750);
      start = end;
    };
    while (pos < data.size()) {
      size_t p = chunker.Scan(std::span<const uint8_t>(data.data() + pos, data.size() - pos));
      if (p == 0) break;
      pos += p;
      add(pos);
    }
    if (start < data.size()) add(data.size());
  }
  auto store = DataStore::Open(path, "store1");
  return store.ok() ? *store : nullptr;
}

}  // namespace pbskit::test
