// Helpers for tests that run `pbskit serve` in-process on loopback: the server configuration
// they share, users / tokens / ACL entries written the way `pbskit user|token|acl` write them,
// and a client authenticated with a token. Header-only: only server tests include it.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <string>

#include "pbskit/server/access_config.h"
#include "pbskit/server/acl.h"
#include "pbskit/server/http_client.h"
#include "pbskit/server/password.h"
#include "pbskit/server/serve.h"
#include "test_support.h"

namespace pbskit::test {

// A server below `dir` (config in etc/, state in state/, the default store1 in store1/) on a
// free loopback port, with a 2048-bit certificate and short auth-failure delays.
inline server::ServeConfig LoopbackServeConfig(const TempDir& dir) {
  server::ServeConfig cfg;
  cfg.config_dir = dir / "etc";
  cfg.state_dir = dir / "state";
  cfg.listen = "127.0.0.1:0";
  cfg.threads = 2;
  cfg.cert_bits = 2048;
  cfg.default_store_path = dir / "store1";
  cfg.auth_failure_delay = std::chrono::milliseconds(10);
  cfg.forbidden_delay = std::chrono::milliseconds(10);
  return cfg;
}

// Adds user `id` (with `password` in shadow.json unless empty) to user.cfg in `config`.
inline void AddUser(const std::string& config, const std::string& id,
                    const std::string& password = "") {
  auto users = server::UserConfig::Load(config);
  ASSERT_TRUE(users.ok()) << users.status().ToString();
  server::UserEntry u;
  u.id = id;
  ASSERT_TRUE(users->Add(u).ok());
  ASSERT_TRUE(users->Save(config).ok());
  if (password.empty()) return;
  auto shadow = server::LoadHashFile(config + "/shadow.json");
  ASSERT_TRUE(shadow.ok()) << shadow.status().ToString();
  auto hash = server::EncryptPassword(password);
  ASSERT_TRUE(hash.ok()) << hash.status().ToString();
  (*shadow)[id] = *hash;
  ASSERT_TRUE(server::SaveHashFile(config + "/shadow.json", *shadow, true).ok());
}

// Adds API token `token_id` ("user@realm!name") with `secret` to user.cfg and token.shadow.
inline void AddToken(const std::string& config, const std::string& token_id,
                     const std::string& secret) {
  auto users = server::UserConfig::Load(config);
  ASSERT_TRUE(users.ok()) << users.status().ToString();
  server::UserEntry t;
  t.id = token_id;
  t.is_token = true;
  ASSERT_TRUE(users->Add(t).ok());
  ASSERT_TRUE(users->Save(config).ok());
  auto tokens = server::LoadHashFile(config + "/token.shadow");
  ASSERT_TRUE(tokens.ok()) << tokens.status().ToString();
  auto hash = server::EncryptPassword(secret);
  ASSERT_TRUE(hash.ok()) << hash.status().ToString();
  (*tokens)[token_id] = *hash;
  ASSERT_TRUE(server::SaveHashFile(config + "/token.shadow", *tokens, false).ok());
}

// Gives `auth_id` `role` on `path` (propagating) in acl.cfg.
inline void Grant(const std::string& config, const std::string& path, const std::string& auth_id,
                  const std::string& role) {
  auto acl = server::LoadAcl(config);
  ASSERT_TRUE(acl.ok()) << acl.status().ToString();
  acl->Insert(path, auth_id, role, true);
  ASSERT_TRUE(server::SaveAcl(config, *acl).ok());
}

// A client of `serve` (fingerprint pinned) authenticated with an API token; null (with a
// test failure) when the connection fails.
inline std::unique_ptr<server::HttpClient> TokenClient(const server::Serve& serve,
                                                       const std::string& token_id,
                                                       const std::string& secret) {
  server::HttpClientOptions o;
  o.port = serve.port();
  o.fingerprint = serve.fingerprint();
  o.timeout_seconds = 60;
  auto c = server::HttpClient::Connect(o);
  EXPECT_TRUE(c.ok()) << c.status().ToString();
  if (!c.ok()) return nullptr;
  (*c)->UseToken(token_id, secret);
  return std::move(c).value();
}

}  // namespace pbskit::test
