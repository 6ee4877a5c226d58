// Password and API token secret hashes in crypt(3) form, as PBS stores them in `shadow.json`
// and `token.shadow` (PBS 4: yescrypt "$y$", cost 5, 32 random salt bytes; older hashes such as
// sha256crypt "$5$" still verify). Uses the system's libcrypt (libxcrypt), loaded at run time.
#pragma once

#include <string>
#include <string_view>

#include "pbskit/formats/status.h"

namespace pbskit::server {

// Hashes `password` with a fresh salt. Unsupported when no usable libcrypt is present.
// Thread safe.
Result<std::string> EncryptPassword(std::string_view password);

// OK when `password` matches `hash` (constant-time compare of the crypt output).
// PermissionDenied "invalid credentials" otherwise. Thread safe.
Status VerifyPassword(std::string_view password, const std::string& hash);

}  // namespace pbskit::server
