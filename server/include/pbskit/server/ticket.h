// Ticket login and CSRF tokens in PBS's formats (proxmox-auth-api ticket.rs / access.rs).
//
//   ticket  "PBS:<userid>:<TIME>::<SIG>"  TIME = creation epoch as >= 8 upper-case hex digits,
//           ':' and control characters in the userid percent-encoded, SIG = base64 (no padding)
//           signature of "PBS:<userid>:<TIME>" with the private key in authkey.key (Ed25519 for
//           new installs, as PBS; RSA/SHA-256 keys are accepted too).
//   CSRF    "<TIME 8 hex>:<base64 no-pad HMAC-SHA3-256(csrf.key, "<TIME>:<userid>:")>"
// Both are valid from 300 s before to 7200 s after their time stamp.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "pbskit/formats/status.h"

namespace pbskit::server {

inline constexpr int64_t kTicketLifetime = 7200;

class AuthKeys {
 public:
  // Loads `<config_dir>/authkey.key` (+ writes authkey.pub) and `csrf.key`, creating missing
  // ones (Ed25519 key, 64 random bytes stored as base64 without padding). IoError / Aborted on
  // failure. The returned object is immutable and thread safe.
  static Result<std::shared_ptr<const AuthKeys>> LoadOrCreate(const std::string& config_dir);
  ~AuthKeys();

  // Signs a full ticket for `userid` created at `now`.
  Result<std::string> CreateTicket(const std::string& userid, int64_t now) const;
  // Verifies signature and age; returns the user id. PermissionDenied with PBS's reasons
  // ("ticket with invalid signature", "ticket expired", "ticket is too new", ...).
  Result<std::string> VerifyTicket(std::string_view ticket, int64_t now) const;

  std::string CreateCsrfToken(const std::string& userid, int64_t now) const;
  // PermissionDenied "invalid csrf token - <why>" unless valid for `userid` at `now`.
  Status VerifyCsrfToken(const std::string& userid, std::string_view token, int64_t now) const;

  struct Keys;

 private:
  explicit AuthKeys(std::unique_ptr<Keys> keys);
  std::unique_ptr<Keys> keys_;
};

}  // namespace pbskit::server
