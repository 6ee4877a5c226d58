#include "pbskit/server/serve.h"

#include <sys/resource.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <iostream>

#include "backup_protocol.h"
#include "file_util.h"
#include "pbskit/datastore/datastore.h"
#include "pbskit/datastore/datastore_config.h"
#include "pbskit/server/access_config.h"
#include "pbskit/server/certificate.h"
#include "pbskit/server/password.h"

namespace pbskit::server {

Result<std::optional<DefaultSetup>> CreateDefaultSetup(const std::string& config_dir,
                                                       const std::string& store_path) {
  PBSKIT_RETURN_IF_ERROR(EnsureDirectory(config_dir));
  PBSKIT_ASSIGN_OR_RETURN(auto ds_lock, LockDatastoreConfig(config_dir));
  PBSKIT_ASSIGN_OR_RETURN(DatastoreConfig ds_cfg, DatastoreConfig::Load(config_dir));
  std::error_code ec;
  bool has_users = std::filesystem::exists(config_dir + "/" + kUserCfgFile, ec) ||
                   std::filesystem::exists(config_dir + "/" + kTokenShadowFile, ec);
  if (!ds_cfg.entries().empty() || has_users) return std::optional<DefaultSetup>();

  DefaultSetup setup;
  setup.store = "store1";
  setup.store_path =
      std::filesystem::absolute(store_path).lexically_normal().string();
  while (setup.store_path.size() > 1 && setup.store_path.back() == '/') setup.store_path.pop_back();
  setup.token_id = "root@pam!pbskit";
  setup.secret = GenerateTokenSecret();

  auto created = DataStore::Create(setup.store_path, setup.store);
  if (!created.ok() && created.status().code() != Code::kAlreadyExists) return created.status();
  DatastoreConfigEntry entry;
  entry.name = setup.store;
  entry.Set("path", setup.store_path);
  PBSKIT_RETURN_IF_ERROR(ds_cfg.Add(std::move(entry)));
  PBSKIT_RETURN_IF_ERROR(ds_cfg.Save(config_dir));

  PBSKIT_ASSIGN_OR_RETURN(auto user_lock,
                          FileLock::Acquire(ConfigLockPath(config_dir, kUserCfgFile)));
  PBSKIT_ASSIGN_OR_RETURN(UserConfig users, UserConfig::Load(config_dir));
  UserEntry token;
  token.id = setup.token_id;
  token.is_token = true;
  token.enable = true;
  token.expire = 0;
  token.comment = "created by pbskit serve on first start";
  PBSKIT_RETURN_IF_ERROR(users.Add(std::move(token)));
  PBSKIT_ASSIGN_OR_RETURN(auto shadow_lock,
                          FileLock::Acquire(ConfigLockPath(config_dir, kTokenShadowFile)));
  std::string shadow_path = config_dir + "/" + kTokenShadowFile;
  PBSKIT_ASSIGN_OR_RETURN(auto hashes, LoadHashFile(shadow_path));
  PBSKIT_ASSIGN_OR_RETURN(hashes[setup.token_id], EncryptPassword(setup.secret));
  PBSKIT_RETURN_IF_ERROR(SaveHashFile(shadow_path, hashes, false));
  PBSKIT_RETURN_IF_ERROR(users.Save(config_dir));

  PBSKIT_ASSIGN_OR_RETURN(auto acl_lock,
                          FileLock::Acquire(ConfigLockPath(config_dir, kAclCfgFile)));
  PBSKIT_ASSIGN_OR_RETURN(AclTree acl, LoadAcl(config_dir));
  acl.Insert("/", setup.token_id, "DatastoreAdmin", true);
  PBSKIT_RETURN_IF_ERROR(SaveAcl(config_dir, acl));
  return std::optional<DefaultSetup>(std::move(setup));
}

namespace {

// Descriptors a server needs besides one per connection: listener, config and datastore files
// opened by requests, task logs, the HTTP/2 sessions' index writers.
constexpr uint64_t kFileReserve = 256;

}  // namespace

uint64_t RaiseOpenFileLimit(uint64_t needed) {
  struct rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) != 0) {
    std::cerr << "pbskit serve: unable to read the open file limit: " << std::strerror(errno)
              << "\n";
    return 0;
  }
  if (rl.rlim_cur < rl.rlim_max) {
    struct rlimit raised = rl;
    raised.rlim_cur = rl.rlim_max;
    if (::setrlimit(RLIMIT_NOFILE, &raised) == 0) {
      rl = raised;
    } else {
      std::cerr << "pbskit serve: unable to raise the open file limit from " << rl.rlim_cur
                << " to " << rl.rlim_max << ": " << std::strerror(errno) << "\n";
    }
  }
  uint64_t soft = rl.rlim_cur == RLIM_INFINITY ? UINT64_MAX : static_cast<uint64_t>(rl.rlim_cur);
  if (soft < needed) {
    std::cerr << "pbskit serve: open file limit is " << soft << " (hard limit "
              << (rl.rlim_max == RLIM_INFINITY ? std::string("unlimited")
                                               : std::to_string(rl.rlim_max))
              << "), below the " << needed
              << " that max-connections needs; connections beyond about "
              << (soft > kFileReserve ? soft - kFileReserve : 0)
              << " wait in the listen queue until others close (raise 'ulimit -Hn' or "
                 "LimitNOFILE)\n";
  }
  return soft;
}

Serve::~Serve() {
  if (http_) http_->Stop();
}

Result<std::unique_ptr<Serve>> Serve::Start(const ServeConfig& config) {
  std::unique_ptr<Serve> s(new Serve());
  PBSKIT_RETURN_IF_ERROR(EnsureDirectory(config.config_dir));
  CertificateOptions cert_opts;
  cert_opts.rsa_bits = config.cert_bits;
  PBSKIT_ASSIGN_OR_RETURN(bool made_cert, EnsureProxyCertificate(config.config_dir, cert_opts));
  (void)made_cert;
  PBSKIT_ASSIGN_OR_RETURN(s->fingerprint_,
                          CertificateFingerprint(config.config_dir + "/" + kProxyCertFile));
  if (config.create_default) {
    std::string path = config.default_store_path.empty()
                           ? config.config_dir + "/../store1"
                           : config.default_store_path;
    PBSKIT_ASSIGN_OR_RETURN(s->default_, CreateDefaultSetup(config.config_dir, path));
  }
  ServeOptions api_opts;
  api_opts.config_dir = config.config_dir;
  api_opts.state_dir = config.state_dir;
  api_opts.auth_failure_delay = config.auth_failure_delay;
  api_opts.forbidden_delay = config.forbidden_delay;
  PBSKIT_ASSIGN_OR_RETURN(s->api_, ApiServer::Create(api_opts));
  if (config.protocol_h2) ProtocolH2Options() = *config.protocol_h2;
  HttpServerOptions http = config.http;
  http.listen = config.listen;
  http.threads = config.threads;
  http.cert_file = config.config_dir + "/" + kProxyCertFile;
  http.key_file = config.config_dir + "/" + kProxyKeyFile;
  RaiseOpenFileLimit(static_cast<uint64_t>(http.max_connections) + kFileReserve);
  PBSKIT_ASSIGN_OR_RETURN(s->http_, HttpServer::Start(http, s->api_.get()));
  return s;
}

}  // namespace pbskit::server
