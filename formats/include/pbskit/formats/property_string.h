// Property strings: the "key=value,key2=value2" values found inside PBS configuration files
// (`tuning`, `backend`, `maintenance-mode`, `notify`, `acme`, `location`, ...).
//
// Grammar (as proxmox-schema's PropertyIterator reads it):
//   list    := element ("," element)*
//   element := [key "="] value
//   key     := text up to the first "=" (only if that "=" comes before the next ",")
//   value   := text up to the next ","   |   '"' quoted '"'
// Inside quotes `\"`, `\\` and `\n` are the only escapes; a quoted value must be followed by ","
// or the end. An element without "=" belongs to the schema's default key (e.g. `type` for
// `backend` and `maintenance-mode`). Values are NOT percent-decoded here: PBS percent-decodes
// only the maintenance-mode message when it shows it (see PercentDecode).
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "pbskit/formats/status.h"

namespace pbskit {

using PropertyList = std::vector<std::pair<std::string, std::string>>;

// Splits a property string into (key, value) pairs in input order.
// `default_key`: the key for elements without "="; empty means the schema has none.
// Thread-safe (pure). Errors (all InvalidArgument):
//   - an element without key and no default key ("value '<v>' without key, but schema does not
//     define a default key"),
//   - an unterminated quoted value, an unsupported escape, text after a closing quote,
//   - an empty key ("=v") or the same key twice ("parameter '<k>': duplicate parameter.").
Result<PropertyList> ParsePropertyString(std::string_view s, std::string_view default_key = {});

// Joins pairs as "k=v,k2=v2" in the given order. A value containing `"`, `\`, a newline or a
// comma (or starting with a quote) is written quoted with `\"`, `\\`, `\n` escapes so that
// ParsePropertyString reads it back unchanged. A pair whose key equals `default_key` (when that
// is non-empty) is written as the bare value, like PBS does. Thread-safe (pure).
std::string FormatPropertyString(const PropertyList& kv, std::string_view default_key = {});

// Decodes %XX escapes (the web UI percent-encodes the maintenance-mode message before storing
// it). Malformed escapes are kept literally. Invalid UTF-8 after decoding yields "" like PBS.
std::string PercentDecode(std::string_view s);

// Returns the value for `key` or nullptr. Convenience for PropertyList lookups.
const std::string* FindProperty(const PropertyList& kv, std::string_view key);

}  // namespace pbskit
