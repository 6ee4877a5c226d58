// Text forms of pxar entries as PBS's `pxar` tool prints them.
#pragma once

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

}  // namespace pbskit::pxar
