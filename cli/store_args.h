// Shared argument helpers for commands working on a datastore: `--store S` (a configured name or
// a path), `--ns NS` (PBS's "a/b" form) and SNAPSHOT / GROUP arguments in PBS's printed form
// ("vm/100/2024-05-01T10:00:00Z", "vm/100") or the datastore-relative directory form
// ("ns/a/ns/b/vm/100/...").
#pragma once

#include <memory>
#include <optional>
#include <string>

#include <CLI/CLI.hpp>

#include "pbskit/datastore/datastore.h"
#include "pbskit/datastore/datastore_config.h"
#include "pbskit/formats/names.h"
#include "pbskit/formats/status.h"
#include "registry.h"

namespace pbskit::cli {

// Adds `--store` (required unless `required` is false) to `sub`, storing into *store.
CLI::Option* AddStoreOption(CLI::App* sub, std::string* store, bool required = true);
// Adds `--ns` to `sub`, storing into *ns.
CLI::Option* AddNamespaceOption(CLI::App* sub, std::string* ns);

// Opens the store named by `store_arg` (OpenStore with g.config_dir).
Result<OpenedStore> OpenStoreArg(const GlobalOptions& g, const std::string& store_arg);

// Parses an --ns value (InvalidArgument with PBS-like wording on a bad namespace).
Result<BackupNamespace> ParseNamespaceArg(const std::string& ns_arg);

struct GroupRef {
  BackupNamespace ns;
  BackupGroup group;
};
struct SnapshotRef {
  BackupNamespace ns;
  BackupDir dir;
};

// Parses a GROUP argument, combining its namespace (directory form) with --ns: when both name a
// non-root namespace they must agree (InvalidArgument otherwise). A snapshot is refused.
Result<GroupRef> ParseGroupArg(const std::string& ns_arg, const std::string& arg);
// Parses a SNAPSHOT argument likewise; a group without time is refused.
Result<SnapshotRef> ParseSnapshotArg(const std::string& ns_arg, const std::string& arg);
// Either form: returns the group and the time when one was given.
Result<std::pair<GroupRef, std::optional<int64_t>>> ParseGroupOrSnapshotArg(
    const std::string& ns_arg, const std::string& arg);

// Exit code for failing to open a store: 2 (configuration / usage error) for NotFound and
// InvalidArgument, 1 for I/O errors. Prints "Error: ..." to stderr.
int ReportStoreError(const Status& status);

}  // namespace pbskit::cli
