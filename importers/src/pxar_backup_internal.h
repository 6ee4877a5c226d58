// Private to the pxar directory backup: the metadata change-detection mode walker.
#pragma once

#include <string>

#include "pbskit/importers/pxar_backup.h"

namespace pbskit::importers {

// Metadata-mode backup of `source_dir` into `sink` (split, opened by the caller). Loads the
// reference from the writer's previous snapshot itself; without one every file is encoded
// (like data mode). Fills result->create and the reuse counters.
Status BackupDirectoryMetadataMode(SnapshotWriter* writer, PxarSnapshotSink* sink,
                                   const std::string& source_dir,
                                   const PxarBackupOptions& options, PxarBackupResult* result);

}  // namespace pbskit::importers
