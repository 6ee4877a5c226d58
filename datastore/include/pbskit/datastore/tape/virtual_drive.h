// The PBS `virtual` tape drive: a directory that emulates a tape drive and its changer, in
// the on-disk layout PBS uses (so PBS and pbskit can read each other's virtual tapes):
//   .drive.lck                  flock held while the drive is open
//   drive-status.json           {"current_tape": {"name": <label>, "pos": <n>}} or null
//   tape-<label>.json           tape index {"files": <count>}; defines that tape
//   tapefile-<n>-<label>.json   tape file n: raw 256 KiB blocks (binary despite the name)
// Filemarks are the boundaries between tapefiles. See docs/formats/tape.md.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "pbskit/datastore/fs.h"
#include "pbskit/formats/status.h"
#include "pbskit/formats/tape/blocked_stream.h"
#include "pbskit/formats/tape/media_content.h"

namespace pbskit::tape {

inline constexpr uint64_t kVirtualDriveDefaultMaxSize = 64ull * 1024 * 1024;

// Drive state as stored in drive-status.json.
struct VirtualDriveCurrentTape {
  std::string name;
  uint64_t pos = 0;  // number of the next file to read
};

// Labels read from the loaded tape (file 0 and, if present, file 1).
struct VirtualTapeLabels {
  std::optional<MediaLabel> label;         // nullopt: empty tape
  std::optional<MediaSetLabel> media_set;  // nullopt: no media-set label
};

// An open virtual drive. Holds the drive lock for its lifetime. Not thread safe; one open
// drive per directory across processes (the lock enforces it).
class VirtualTapeDrive {
 public:
  // Opens the drive directory `path` (must exist), taking `.drive.lck` exclusively; waits up
  // to `lock_timeout_ms` (PBS: 10 s). Busy when the lock stays taken, NotFound when `path`
  // is missing, IoError otherwise. `fs` must outlive the drive.
  static Result<std::unique_ptr<VirtualTapeDrive>> Open(
      Filesystem* fs, const std::string& path, uint64_t max_size = kVirtualDriveDefaultMaxSize,
      int lock_timeout_ms = 10000);
  ~VirtualTapeDrive();

  // Tape names ("online media") in directory order: every tape-<label>.json.
  Result<std::vector<std::string>> OnlineMediaLabelTexts();
  // Loads tape `label` at position 0, creating an empty tape index if the tape is new.
  // InvalidArgument for a label that is not a usable file name part.
  Status LoadMedia(const std::string& label);
  // Loads the s-th (1-based) tape of OnlineMediaLabelTexts. InvalidArgument "invalid slot ID"
  // / "slot <s> is empty".
  Status LoadMediaFromSlot(uint64_t slot);
  // Unloads (current_tape = null). Always fine, even when empty.
  Status UnloadMedia();
  // The loaded tape and position, nullopt when the drive is empty. IoError / Corruption for an
  // unreadable drive-status.json.
  Result<std::optional<VirtualDriveCurrentTape>> CurrentTape();
  // Number of files on the loaded tape.
  Result<uint64_t> TapeFiles();

  // Positioning; all fail with InvalidArgument "drive is empty (no tape loaded)." when empty.
  Status Rewind();
  Result<uint64_t> CurrentFileNumber();
  Status MoveToEom();
  // InvalidArgument "invalid file nr" when k > files.
  Status MoveToFile(uint64_t k);
  // InvalidArgument "move_to_last_file failed - media contains no data" on an empty tape.
  Status MoveToLastFile();
  // Erases all files of the loaded tape.
  Status FormatMedia();

  // Opens the file at the current position for reading and advances the position (persisted
  // before any data is read). At end of data the returned device reports kEndOfStream; an
  // empty tapefile reports kEndOfFile; a tapefile whose length is not a multiple of the block
  // size yields IoError at the short block.
  Result<std::unique_ptr<TapeBlockReader>> ReadNextFile();
  // Starts a new file at the current position: files >= pos are erased, files = pos + 1,
  // pos = files. Capacity per max_size: free/256 KiB blocks (at least 2) without LEOM, two
  // more with LEOM, then IoError "no space left on device". The second filemark on the same
  // writer is InvalidArgument.
  Result<std::unique_ptr<TapeBlockWriter>> WriteFile();

  // format + write file 0 (content uuid random, ctime = label.ctime).
  Status WriteMediaLabel(const MediaLabel& label);
  // Truncates to file 0 and writes file 1. InvalidArgument "media is empty (no label)." when
  // the tape has no file 0, Unsupported "encryption is not implemented" when the label names
  // an encryption key.
  Status WriteMediaSetLabel(const MediaSetLabel& set);
  // Rewinds and reads file 0 and file 1. Corruption "got unexpected filemark at BOT" etc.
  Result<VirtualTapeLabels> ReadLabel();

  const std::string& path() const { return path_; }

 private:
  VirtualTapeDrive(Filesystem* fs, std::string path, uint64_t max_size, ScopedFd lock)
      : fs_(fs), path_(std::move(path)), max_size_(max_size), lock_(std::move(lock)) {}

  std::string StatusPath() const;
  std::string IndexPath(const std::string& tape) const;
  std::string TapeFilePath(const std::string& tape, uint64_t n) const;
  Status StoreStatus(const std::optional<VirtualDriveCurrentTape>& current);
  Result<uint64_t> LoadIndex(const std::string& tape);
  Status StoreIndex(const std::string& tape, uint64_t files);
  // Removes tapefiles >= pos and returns the bytes used by files < pos.
  Result<uint64_t> TruncateTape(const std::string& tape, uint64_t pos);
  Result<VirtualDriveCurrentTape> Loaded();

  Filesystem* fs_;
  std::string path_;
  uint64_t max_size_;
  ScopedFd lock_;
};

}  // namespace pbskit::tape
