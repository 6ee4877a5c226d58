// Helpers shared by tests: fixture paths, scratch directories, file I/O and running the CLI.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace pbskit::test {

// Absolute path of `rel` below ../shared/fixtures (read-only in CI).
std::string Fixture(const std::string& rel);
// Absolute path of `rel` below the project's testdata/.
std::string TestData(const std::string& rel);
// Path of the built `pbskit` executable.
std::string Binary();

// Where a TempDir lives.
enum class Scratch {
  // Memory-backed /dev/shm when it is a tmpfs with room (at least 2 GiB free), else $TMPDIR.
  // Datastores belong here: creating and removing the 65536 `.chunks` directories of every
  // test store costs 10-30 s on a busy ext4, next to nothing on tmpfs.
  kFast,
  // $TMPDIR (default /tmp): a disk file system that keeps xattrs, ACLs and fcaps and sits on
  // another device than /dev/shm. For tests that check file metadata on extracted trees.
  kDisk,
};

// The base directory a Scratch kind resolves to on this machine. PBSKIT_TEST_SCRATCH=disk
// sends every TempDir to $TMPDIR (to run the whole suite against the disk file system).
std::string ScratchBase(Scratch where);

// A fresh directory under ScratchBase(where), removed recursively when the object dies.
class TempDir {
 public:
  explicit TempDir(Scratch where = Scratch::kFast);
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& rel) const { return path_ + "/" + rel; }

 private:
  std::string path_;
};

std::vector<uint8_t> ReadFile(const std::string& path);
std::string ReadText(const std::string& path);
void WriteFile(const std::string& path, const std::vector<uint8_t>& data);
void WriteText(const std::string& path, const std::string& text);
// Lower-case hex SHA-256 of bytes.
std::string Sha256Hex(const std::vector<uint8_t>& data);
std::string Sha256Hex(const std::string& data);
// `n` deterministic pseudo-random bytes (xorshift from `seed`; compress only a little).
std::string Pattern(size_t n, uint32_t seed);
// Copies a directory tree (regular files, dirs, symlinks) and makes the copy writable.
void CopyTree(const std::string& from, const std::string& to);

struct CommandResult {
  int exit_code = -1;
  std::string out;  // stdout
  std::string err;  // stderr
};
// Runs `pbskit <args>` with /bin/sh quoting done by the caller-free argv form; env entries
// "K=V" are added to the environment. Bounded by `timeout_s` seconds (killed after).
CommandResult RunCli(const std::vector<std::string>& args,
                     const std::vector<std::string>& env = {}, int timeout_s = 300,
                     const std::string& stdin_data = "");

}  // namespace pbskit::test
