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

// A fresh directory under $TMPDIR, removed recursively when the object dies.
class TempDir {
 public:
  TempDir();
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
