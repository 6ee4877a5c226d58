// Tape configuration files in PBS's section-config format (config dir):
//   tape.cfg        `virtual: <name>` (path, max-size), `lto: <name>` (path, changer,
//                   changer-drivenum), `changer: <name>` (path, export-slots,
//                   eject-before-unload)
//   media-pool.cfg  `pool: <name>` (allocation, retention, template, encrypt, comment)
//   tape-job.cfg    `backup: <id>` (store, pool, drive, ns, max-depth, group-filter*, schedule,
//                   eject-media, export-media-set, latest-only, notify-user,
//                   notification-mode, worker-threads, comment)
// plus the `mtx status` output parser and the LTO density-code table. Text in, values out.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "pbskit/formats/section_config.h"
#include "pbskit/formats/status.h"

namespace pbskit::tape {

struct VirtualDriveConfig {
  std::string name;
  std::string path;
  std::optional<uint64_t> max_size;  // bytes; default 64 MiB
};

struct LtoDriveConfig {
  std::string name;
  std::string path;
  std::optional<std::string> changer;
  std::optional<uint64_t> changer_drivenum;
};

struct ChangerConfig {
  std::string name;
  std::string path;
  std::optional<std::string> export_slots;
  std::optional<bool> eject_before_unload;
};

struct TapeDriveConfigFile {
  std::vector<VirtualDriveConfig> virtual_drives;
  std::vector<LtoDriveConfig> lto_drives;
  std::vector<ChangerConfig> changers;

  // Parses tape.cfg. InvalidArgument "<file>:<line>: ..." for syntax errors, unknown section
  // types or keys, a missing `path`, bad numbers, or a name used twice.
  static Result<TapeDriveConfigFile> Parse(std::string_view text, const std::string& filename);
  std::string ToString() const;  // PBS's section-config serialisation
  const VirtualDriveConfig* FindVirtual(std::string_view name) const;
  bool HasName(std::string_view name) const;
};

struct MediaPoolConfig {
  std::string name;
  std::optional<std::string> allocation;  // "continue" (default), "always" or a calendar event
  std::optional<std::string> retention;   // "keep" (default), "overwrite" or a time span
  std::optional<std::string> template_;   // media-set name template (default "%c")
  std::optional<std::string> encrypt;     // key fingerprint
  std::optional<std::string> comment;
};

struct MediaPoolConfigFile {
  std::vector<MediaPoolConfig> pools;
  // Parses media-pool.cfg (section type `pool`). InvalidArgument as above.
  static Result<MediaPoolConfigFile> Parse(std::string_view text, const std::string& filename);
  std::string ToString() const;
  const MediaPoolConfig* Find(std::string_view name) const;
};

struct TapeBackupJobConfig {
  std::string id;
  std::string store;
  std::string pool;
  std::string drive;
  std::optional<std::string> ns;
  std::optional<uint64_t> max_depth;
  std::vector<std::string> group_filter;
  std::optional<std::string> schedule;
  std::optional<bool> eject_media;
  std::optional<bool> export_media_set;
  std::optional<bool> latest_only;
  std::optional<std::string> notify_user;
  std::optional<std::string> notification_mode;
  std::optional<uint64_t> worker_threads;
  std::optional<std::string> comment;
};

struct TapeJobConfigFile {
  std::vector<TapeBackupJobConfig> jobs;
  // Parses tape-job.cfg (section type `backup`; store, pool and drive required).
  static Result<TapeJobConfigFile> Parse(std::string_view text, const std::string& filename);
};

// Parses a size: plain bytes or a number with a unit (K, M, G, T; KB, MB, ..., KiB, MiB, ...;
// decimal units are powers of 1000, binary ones of 1024, single letters binary).
// InvalidArgument "invalid size '<text>'".
Result<uint64_t> ParseTapeSize(std::string_view text);

// ---------------------------------------------------------------- mtx status

struct MtxElementStatus {
  enum class Kind { kEmpty, kFull, kVolumeTag };
  Kind kind = Kind::kEmpty;
  std::string volume_tag;  // kVolumeTag
};
struct MtxDriveStatus {
  uint64_t element_address = 0;
  std::optional<uint64_t> loaded_slot;
  MtxElementStatus status;
};
struct MtxSlotStatus {
  uint64_t element_address = 0;
  bool import_export = false;
  MtxElementStatus status;
};
struct MtxStatus {
  std::vector<MtxDriveStatus> drives;
  std::vector<MtxSlotStatus> slots;
};
// Parses the output of `mtx status` as PBS does (drives numbered 0.., slots 1..; trailing
// content is refused). InvalidArgument "unable to parse mtx status - <what> at line <n>".
Result<MtxStatus> ParseMtxStatus(std::string_view text);

// ---------------------------------------------------------------- LTO density codes

struct TapeDensity {
  uint8_t code;
  const char* name;          // "LTO-5" ...
  uint64_t native_capacity;  // bytes
};
// The density codes PBS knows (LTO-5 .. LTO-9, incl. LTO-M8), in code order.
const std::vector<TapeDensity>& LtoDensityTable();
// Name for a density code, nullopt when unknown.
std::optional<std::string> DensityName(uint8_t code);

}  // namespace pbskit::tape
