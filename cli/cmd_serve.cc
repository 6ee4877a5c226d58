// pbskit serve: the PBS-compatible HTTPS server; pbskit cert fingerprint.
#include <csignal>
#include <filesystem>
#include <iostream>
#include <pthread.h>
#include <unistd.h>

#include "output.h"
#include "pbskit/server/certificate.h"
#include "pbskit/server/serve.h"
#include "registry.h"

namespace pbskit::cli {
namespace {

struct ServeArgs {
  std::string listen = "0.0.0.0:8007";
  int threads = 4;
  bool no_default = false;
  std::string default_store_path;
  server::HttpServerOptions http;  // limits and timeouts
  int64_t protocol_idle_timeout = 0;  // seconds; 0 = the built-in 15 minutes
};

std::string HostForRepository(const std::string& listen, uint16_t port) {
  std::string host = listen.substr(0, listen.rfind(':'));
  if (host == "0.0.0.0" || host == "[::]" || host == "::") {
    char buf[256] = {};
    host = ::gethostname(buf, sizeof(buf) - 1) == 0 && buf[0] ? buf : "localhost";
  }
  return host + ":" + std::to_string(port);
}

int RunServe(const GlobalOptions& g, const ServeArgs& a) {
  // Signals are taken by sigwait below; block them before any server thread starts.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  server::ServeConfig cfg;
  cfg.config_dir = g.config_dir;
  cfg.state_dir = g.state_dir;
  cfg.listen = a.listen;
  cfg.threads = a.threads;
  cfg.create_default = !a.no_default;
  cfg.default_store_path = a.default_store_path;
  cfg.http = a.http;
  if (a.protocol_idle_timeout > 0) {
    server::H2ServerOptions h2;
    h2.idle_timeout = std::chrono::seconds(a.protocol_idle_timeout);
    cfg.protocol_h2 = h2;
  }
  auto serve = server::Serve::Start(cfg);
  if (!serve.ok()) return ReportError(serve.status(), ExitCodeFor(serve.status()));
  auto& s = **serve;
  std::string where = a.listen.substr(0, a.listen.rfind(':')) + ":" + std::to_string(s.port());
  if (g.output_format == "text") {
    std::cout << "pbskit serve: listening on " << where << " (HTTPS)\n";
    std::cout << "certificate fingerprint: " << s.fingerprint() << "\n";
    if (const auto& d = s.default_setup()) {
      std::cout << "\nFirst start: created datastore '" << d->store << "' at " << d->store_path
                << "\nand API token '" << d->token_id << "' (DatastoreAdmin on /).\n"
                << "The token secret is shown only this once:\n\n"
                << "  export PBS_REPOSITORY='" << d->token_id << "@"
                << HostForRepository(a.listen, s.port()) << ":" << d->store << "'\n"
                << "  export PBS_PASSWORD='" << d->secret << "'\n"
                << "  export PBS_FINGERPRINT='" << s.fingerprint() << "'\n"
                << "  proxmox-backup-client list\n\n";
    }
  } else {
    boost::json::object o;
    o["listen"] = where;
    o["port"] = s.port();
    o["fingerprint"] = s.fingerprint();
    if (const auto& d = s.default_setup()) {
      o["store"] = d->store;
      o["store-path"] = d->store_path;
      o["tokenid"] = d->token_id;
      o["value"] = d->secret;
      o["repository"] = d->token_id + "@" + HostForRepository(a.listen, s.port()) + ":" + d->store;
    }
    PrintJson(std::cout, o, g.output_format);
  }
  std::cout.flush();
  int sig = 0;
  sigwait(&set, &sig);
  std::cerr << "pbskit serve: received signal " << sig << ", shutting down\n";
  s.Stop();
  return 0;
}

int RunFingerprint(const GlobalOptions& g) {
  std::string path = g.config_dir + "/" + server::kProxyCertFile;
  auto fp = server::CertificateFingerprint(path);
  if (!fp.ok()) {
    if (fp.status().IsNotFound()) {
      return ReportError(Status::NotFound("certificate '" + path +
                                          "' does not exist (it is created by the first "
                                          "'pbskit serve')"),
                         2);
    }
    return ReportError(fp.status(), 1);
  }
  if (g.output_format == "text") {
    std::cout << *fp << "\n";
  } else {
    PrintJson(std::cout, boost::json::object{{"fingerprint", *fp}}, g.output_format);
  }
  return 0;
}

void Setup(CLI::App& app, GlobalOptions& g) {
  auto a = std::make_shared<ServeArgs>();
  auto* serve = app.add_subcommand("serve", "run the PBS-compatible HTTPS server (REST API)");
  serve->add_option("--listen", a->listen, "address and port to listen on")->capture_default_str();
  serve->add_option("--threads", a->threads, "I/O threads")->capture_default_str()
      ->check(CLI::Range(1, 256));
  serve->add_flag("--no-default", a->no_default,
                  "do not create datastore store1 and the root@pam!pbskit token on first start");
  serve->add_option("--default-store-path", a->default_store_path,
                    "where the first start creates store1 (default: <config-dir>/../store1)");
  serve->add_option("--max-connections", a->http.max_connections,
                    "connections served at once; more get 503 'too many connections'")
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 20));
  auto seconds = [&](const char* name, std::chrono::seconds* field, const char* what) {
    serve->add_option_function<int64_t>(
              name, [field](int64_t v) { *field = std::chrono::seconds(v); }, what)
        ->default_str(std::to_string(field->count()))
        ->check(CLI::Range(int64_t{1}, int64_t{86400}));
  };
  seconds("--handshake-timeout", &a->http.handshake_timeout, "seconds for the TLS handshake");
  seconds("--header-timeout", &a->http.header_timeout, "seconds for a request header");
  seconds("--body-timeout", &a->http.body_timeout,
          "seconds for a request body or for writing a response");
  seconds("--idle-timeout", &a->http.idle_timeout,
          "seconds a keep-alive connection may wait for its next request");
  serve->add_option("--protocol-idle-timeout", a->protocol_idle_timeout,
                    "seconds a backup or reader session may stay silent (default 900)")
      ->check(CLI::Range(int64_t{1}, int64_t{86400}));
  serve->callback([&g, a] { g.exit_code = RunServe(g, *a); });

  auto* cert = app.add_subcommand("cert", "the server's TLS certificate");
  cert->require_subcommand(1);
  auto* fp = cert->add_subcommand("fingerprint", "print the SHA-256 fingerprint clients pin");
  fp->callback([&g] { g.exit_code = RunFingerprint(g); });
}

}  // namespace

PBSKIT_REGISTER_COMMAND(85, Setup);

}  // namespace pbskit::cli
