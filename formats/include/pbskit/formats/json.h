// JSON text exactly as PBS (serde_json) writes it, from Boost.JSON values.
//
// serde_json output rules reproduced here: strings escape only `"`, `\` and control characters
// (\b \f \n \r \t, others as \u00XX lower-case), non-ASCII is written raw and `/` is not escaped;
// integers in plain decimal; floats like Rust's shortest round-trip form. Object keys are
// written in the order the boost::json::object holds them (callers sort when PBS would).
#pragma once

#include <boost/json.hpp>
#include <string>
#include <string_view>

#include "pbskit/formats/status.h"

namespace pbskit {

// serde_json::to_string_pretty: 2-space indent, `"key": value`, empty `{}`/`[]` on one line,
// no trailing newline. Thread safe.
std::string ToSerdePretty(const boost::json::value& v);
// serde_json::to_string: no whitespace at all.
std::string ToSerdeCompact(const boost::json::value& v);
// proxmox-serde canonical JSON (the manifest signature input): compact, object keys sorted
// bytewise at every level. InvalidArgument when a null occurs anywhere (cannot be signed).
Result<std::string> ToCanonicalJson(const boost::json::value& v);
// Returns a deep copy of `v` with the keys of every object sorted bytewise (serde_json's
// default BTreeMap order).
boost::json::value SortedKeys(const boost::json::value& v);
// Appends `s` as a serde_json string literal (with quotes) to *out.
void AppendSerdeString(std::string_view s, std::string* out);

}  // namespace pbskit
