// Loading encryption key files for CLI commands (backup, restore, key, verify with a key).
#pragma once

#include <string>
#include <vector>

#include "pbskit/formats/crypt_config.h"
#include "pbskit/formats/key_config.h"
#include "pbskit/formats/status.h"

namespace pbskit::cli {

// Loads a key file. A protected key takes its password from PBS_ENCRYPTION_PASSWORD, else asks
// on the terminal (no echo). NotFound / IoError for an unreadable file, InvalidArgument for a
// malformed file or a wrong password, Aborted when no password source is available.
Result<CryptConfig> LoadCryptConfig(const std::string& keyfile_path);

// Reads and parses a key file without decrypting it. NotFound / IoError for an unreadable
// file, InvalidArgument (naming the file) for malformed content.
Result<KeyConfig> LoadKeyConfig(const std::string& keyfile_path);

// Reads a whole (small) file. NotFound when it does not exist, IoError otherwise.
Result<std::string> ReadTextFile(const std::string& path);

// Reads a password: from the environment variable PBS_ENCRYPTION_PASSWORD (or, as PBS does,
// PBS_ENCRYPTION_PASSWORD_FD / _FILE / _CMD; first line only) if set, else from the terminal
// without echo (asked twice when `confirm`; InvalidArgument if they differ). Aborted
// when stdin is not a terminal and the variable is unset.
Result<std::string> ReadPassword(const std::string& prompt, bool confirm);

// Same, but tries the environment variables in `env_names` in order before the terminal.
Result<std::string> ReadPasswordFrom(const std::vector<std::string>& env_names,
                                     const std::string& prompt, bool confirm);

}  // namespace pbskit::cli
