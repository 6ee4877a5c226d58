// APT source files as the checker reads them: one-line `.list` files and deb822 `.sources`
// files, with the parsing rules of proxmox-apt (which pbs3to4 uses) but with every error kept
// as file:line instead of being dropped.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "pbskit/checker/host.h"

namespace pbskit::checker {

struct AptRepository {
  std::vector<std::string> types;  // "deb", "deb-src"
  std::vector<std::string> uris;
  std::vector<std::string> suites;
  std::vector<std::string> components;
  bool enabled = true;
  int line = 0;  // line of the entry (first line of a deb822 stanza)
};

struct AptFileError {
  std::string path;
  int line = 0;  // 0 = the file as a whole
  std::string message;
  std::string ToString() const;  // "<path>:<line>: <message>" or "<path>: <message>"
};

struct AptRepositoryFile {
  std::string path;  // host-absolute
  bool deb822 = false;
  std::vector<AptRepository> repositories;
};

struct AptSources {
  std::vector<AptRepositoryFile> files;  // files that parsed, sources.list first
  std::vector<AptFileError> errors;      // files that did not (they are not in `files`)
};

// Parses one-line format text. Returns false and fills `*error` (line set) on the first
// malformed entry, like proxmox-apt (which then ignores the whole file).
bool ParseAptList(std::string_view text, const std::string& path, AptRepositoryFile* out,
                  AptFileError* error);
// Parses deb822 text (stanzas separated by blank lines, `#` comments, folded lines).
bool ParseAptSources(std::string_view text, const std::string& path, AptRepositoryFile* out,
                     AptFileError* error);

// Reads /etc/apt/sources.list and /etc/apt/sources.list.d/* of `host` (skipping the names APT
// skips). A failing readdir of sources.list.d is the only hard error (IoError).
Result<AptSources> ReadAptSources(const Host& host);

}  // namespace pbskit::checker
