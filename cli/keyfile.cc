#include "keyfile.h"

#include <fcntl.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>

#include "pbskit/datastore/fs.h"
#include "pbskit/formats/key_config.h"

namespace pbskit::cli {
namespace {

std::string FirstLine(const std::string& text) {
  size_t end = text.find('\n');
  std::string line = text.substr(0, end);
  if (!line.empty() && line.back() == '\r') line.pop_back();
  return line;
}

// Reads everything from fd (not closed).
Result<std::string> ReadFd(int fd, const std::string& what) {
  std::string out;
  char buf[4096];
  while (true) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::FromErrno(errno, what);
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
    if (out.find('\n') != std::string::npos) break;
  }
  return out;
}

// PBS's get_secret_from_env: NAME, NAME_FD, NAME_FILE, NAME_CMD, first line only.
Result<std::optional<std::string>> SecretFromEnv(const std::string& base) {
  if (const char* v = std::getenv(base.c_str())) return std::optional<std::string>(FirstLine(v));
  if (const char* v = std::getenv((base + "_FD").c_str())) {
    char* end = nullptr;
    long fd = std::strtol(v, &end, 10);
    if (!*v || *end || fd < 0) {
      return Status::InvalidArgument("unable to parse file descriptor in ENV(" + base + "_FD): '" +
                                     v + "'");
    }
    PBSKIT_ASSIGN_OR_RETURN(std::string text,
                            ReadFd(static_cast<int>(fd), "reading ENV(" + base + "_FD)"));
    return std::optional<std::string>(FirstLine(text));
  }
  if (const char* v = std::getenv((base + "_FILE").c_str())) {
    std::ifstream in(v, std::ios::binary);
    if (!in) {
      return Status::IoError("unable to open file in ENV(" + base + "_FILE): " + v);
    }
    std::string line;
    std::getline(in, line);
    return std::optional<std::string>(FirstLine(line));
  }
  if (const char* v = std::getenv((base + "_CMD").c_str())) {
    FILE* p = ::popen(v, "r");
    if (!p) return Status::FromErrno(errno, "running ENV(" + base + "_CMD)");
    std::string out;
    char buf[4096];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
    int rc = ::pclose(p);
    if (rc != 0) {
      return Status::IoError("command in ENV(" + base + "_CMD) failed (status " +
                             std::to_string(rc) + ")");
    }
    return std::optional<std::string>(FirstLine(out));
  }
  return std::optional<std::string>();
}

// Reads one line from the terminal on stdin with echo off.
Result<std::string> ReadTty(const std::string& prompt) {
  std::cerr << prompt << std::flush;
  termios old{};
  bool restore = ::tcgetattr(STDIN_FILENO, &old) == 0;
  if (restore) {
    termios quiet = old;
    quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
    quiet.c_lflag |= ECHONL;
    ::tcsetattr(STDIN_FILENO, TCSANOW, &quiet);
  }
  std::string line;
  bool ok = static_cast<bool>(std::getline(std::cin, line));
  if (restore) ::tcsetattr(STDIN_FILENO, TCSANOW, &old);
  if (!ok) return Status::Aborted("unable to read password - end of input");
  if (!line.empty() && line.back() == '\r') line.pop_back();
  return line;
}

}  // namespace

Result<std::string> ReadPasswordFrom(const std::vector<std::string>& env_names,
                                     const std::string& prompt, bool confirm) {
  for (const auto& name : env_names) {
    PBSKIT_ASSIGN_OR_RETURN(std::optional<std::string> secret, SecretFromEnv(name));
    if (secret) return *secret;
  }
  if (!::isatty(STDIN_FILENO)) {
    std::string names;
    for (const auto& n : env_names) names += (names.empty() ? "" : ", ") + n;
    return Status::Aborted("no password input mechanism available (no tty; set " + names + ")");
  }
  PBSKIT_ASSIGN_OR_RETURN(std::string first, ReadTty(prompt));
  if (confirm) {
    PBSKIT_ASSIGN_OR_RETURN(std::string second, ReadTty("Verify Password: "));
    if (first != second) return Status::InvalidArgument("Passwords do not match!");
  }
  return first;
}

Result<std::string> ReadPassword(const std::string& prompt, bool confirm) {
  return ReadPasswordFrom({"PBS_ENCRYPTION_PASSWORD"}, prompt, confirm);
}

Result<std::string> ReadTextFile(const std::string& path) {
  auto text = ReadWholeFileText(PosixFilesystem(), path);
  if (!text.ok() && text.status().IsNotFound())
    return Status::NotFound("file '" + path + "' does not exist");
  return text;
}

Result<KeyConfig> LoadKeyConfig(const std::string& keyfile_path) {
  PBSKIT_ASSIGN_OR_RETURN(std::string text, ReadTextFile(keyfile_path));
  auto kc = KeyConfig::Parse(text);
  if (!kc.ok()) return kc.status().WithContext("'" + keyfile_path + "'");
  return std::move(kc).value();
}

Result<CryptConfig> LoadCryptConfig(const std::string& keyfile_path) {
  const std::string context = "failed to load decryption key from '" + keyfile_path + "'";
  auto kc = LoadKeyConfig(keyfile_path);
  if (!kc.ok()) return kc.status().WithContext(context);
  std::string password;
  if (kc->kdf != Kdf::kNone) {
    auto pw = ReadPassword("Encryption Key Password: ", /*confirm=*/false);
    if (!pw.ok()) return pw.status().WithContext(context);
    password = std::move(pw).value();
  }
  auto key = kc->Decrypt(password);
  if (!key.ok()) return key.status().WithContext(context);
  return CryptConfig(*key);
}

}  // namespace pbskit::cli
