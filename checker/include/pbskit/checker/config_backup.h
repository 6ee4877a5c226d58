// The upgrade guide's "system backup (config dump)" step: an archive (tar, zstd-compressed) of
// /etc/proxmox-backup, the APT sources and the other host files the checks read, with a
// manifest of SHA-256 sums, and the way back.
//
// Archive layout: first member "MANIFEST.sha256" (sha256sum format: "<hex>  <path>\n", paths
// host-absolute), then each file at its host path without the leading '/', keeping mode, owner
// and mtime.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "pbskit/checker/host.h"
#include "pbskit/formats/status.h"

namespace pbskit::checker {

struct ConfigBackupFile {
  std::string path;  // host-absolute, e.g. "/etc/proxmox-backup/datastore.cfg"
  std::string data;
  uint32_t mode = 0644;  // permission bits
  uint32_t uid = 0, gid = 0;
  int64_t mtime = 0;
  std::string sha256;  // lower-case hex of data
};

// Host paths collected (directories are taken recursively, globs not supported).
const std::vector<std::string>& ConfigBackupPaths();

// Reads the files of ConfigBackupPaths() that exist on `host` (regular files only; symlinks
// and others are skipped). IoError names the file that could not be read.
Result<std::vector<ConfigBackupFile>> CollectConfigFiles(const Host& host);

// Writes `files` to `archive` (created or truncated). IoError on any libarchive failure, with
// its message.
Status WriteConfigBackup(const std::vector<ConfigBackupFile>& files, const std::string& archive);

// Reads an archive written by WriteConfigBackup and checks every member against the manifest.
// Corruption when the manifest is missing, a member's SHA-256 differs, a listed file is absent
// or a member is not listed; IoError when the archive cannot be read.
Result<std::vector<ConfigBackupFile>> ReadConfigBackup(const std::string& archive);

// Writes each file below `root` ("/" = the live system) atomically (temporary file, fsync,
// rename), creating parent directories, then sets mode, owner (when running as root) and
// mtime. Stops at the first failure (IoError naming the file); files written before stay.
Status RestoreConfigFiles(const std::vector<ConfigBackupFile>& files, const std::string& root);

}  // namespace pbskit::checker
