// Text forms of pxar entries as PBS's `pxar` tool prints them.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "pbskit/formats/pxar/decoder.h"

namespace pbskit::pxar {

// Quotes bytes the way Rust's `{:?}` prints a Path/OsStr (what `pxar list` prints): wrapped in
// double quotes; `\t \r \n \\ \" \' \0` escaped; other control and non-printable characters
// as `\u{hex}`; bytes that are not valid UTF-8 as `\xNN` (upper-case hex). Printable non-ASCII
// characters are copied as UTF-8. With `str_style` the quoting follows Rust's `str` Debug
// instead (single quotes are not escaped). Pure.
std::string RustDebugQuote(std::string_view bytes, bool str_style = false);

// The line `pxar list` prints for an entry (its quoted path), or "" for version, prelude and
// directory-end entries, which `pxar list` does not print.
std::string ListLine(const Entry& entry);

// pxar's `EntryKind` as Rust's `{:?}` prints it (what PBS's API errors show, e.g. "cannot
// download file of type Fifo"): "Directory", "Fifo", "Socket", "Device(Device { major: 1,
// minor: 3 })", "Symlink(Symlink { data: [104, 111] })", "Hardlink(Hardlink { offset: 96, data:
// [...] })", "File { size: 5, offset: Some(170), payload_offset: None }". `position` is the
// decoder's position() right after it returned the entry: a file's `offset` (where its content,
// or for a split archive its payload reference, starts in the archive) is derived from it. Pure.
std::string RustEntryKindDebug(const Entry& entry, uint64_t position);

}  // namespace pbskit::pxar
