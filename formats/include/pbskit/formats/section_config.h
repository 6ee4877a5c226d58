// Section-config files: the text format of most of /etc/proxmox-backup/*.cfg (datastore.cfg,
// user.cfg, remote.cfg, sync.cfg, tape.cfg, media-pool.cfg, ...).
//
//   <type>: <id>            header, first character alphabetic, split at the first ':'
//   <ws><key> <value>       property, indented by space(s) or tab(s); value = rest, trimmed
//   <empty line>            ends the section (sections must be separated by one)
//
// This layer is schema-free: it keeps every property line as written (a key may repeat; PBS
// uses repetition for array properties such as sync.cfg's `group-filter`), and it does not know
// which section types or keys a file allows. Schema checks (unknown keys, required keys,
// duplicates of non-array keys) belong to the caller. There is no comment syntax: a `#` line
// is a syntax error exactly as in PBS.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "pbskit/formats/status.h"

namespace pbskit {

struct SectionConfigEntry {
  std::string type;  // "datastore"
  std::string id;    // "store1"
  // In file order; a key may repeat (array properties). Values are stored verbatim.
  std::vector<std::pair<std::string, std::string>> properties;
  // Line number (1-based) of each property, parallel to `properties`; 0 for values set in code.
  std::vector<int> property_lines;
  int line = 0;  // header line number (1-based)

  // First value of `key`, or nullptr when absent. The pointer lives until the entry changes.
  const std::string* Get(std::string_view key) const;
  // Every value of `key` in file order (array properties).
  std::vector<std::string> GetAll(std::string_view key) const;
  // Line of the first `key` property, or the header line when absent.
  int LineOf(std::string_view key) const;
  // Replaces the first `key` (dropping any repeats) or appends it.
  void Set(std::string key, std::string value);
  // Appends one more `key` line (array properties).
  void Add(std::string key, std::string value);
  // Removes every `key` line.
  void Erase(std::string_view key);
};

struct SectionConfigError {
  std::string file;
  int line = 0;
  std::string message;
  // "<file>:<line>: <message>"
  std::string ToString() const;
};

class SectionConfig {
 public:
  // Parses `text` (the whole file). `filename` is used only in messages.
  // Thread-safe (pure). Returns InvalidArgument "<file>:<line>: <message>" for the first syntax
  // error; messages follow PBS: "syntax error (expected header)", "syntax error (expected
  // section properties)", "syntax error in section identifier: empty id".
  static Result<SectionConfig> Parse(std::string_view text, const std::string& filename);

  // Like Parse, but appends every syntax error to `*errors` (may be null) and keeps going:
  // a bad property line is skipped; after a bad header its indented lines are skipped; a
  // non-indented line inside a section is an error but, if it reads as a header, starts the
  // next section (so one missing blank line does not hide a section). Returns every section
  // that parsed.
  static SectionConfig ParseLenient(std::string_view text, const std::string& filename,
                                    std::vector<SectionConfigError>* errors);

  std::vector<SectionConfigEntry> sections;  // in file order

  // First section with this type and id, or nullptr.
  const SectionConfigEntry* Find(std::string_view type, std::string_view id) const;
  SectionConfigEntry* Find(std::string_view type, std::string_view id);
  // Every section of `type`, in file order.
  std::vector<const SectionConfigEntry*> OfType(std::string_view type) const;

  // Serialises exactly as PBS writes: "<type>: <id>\n", then "\t<key> <value>\n" per property
  // sorted by key (stable, so repeated array keys keep their order), one empty line between
  // sections, no trailing empty line. An empty config is "".
  std::string ToString() const;
};

}  // namespace pbskit
