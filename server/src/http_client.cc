#include "pbskit/server/http_client.h"

#include <openssl/x509.h>

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <cstdio>
#include <sys/socket.h>
#include <sys/time.h>

#include "api.h"
#include "pbskit/formats/names.h"
#include "pbskit/server/acl.h"

namespace pbskit::server {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = net::ssl;
using tcp = net::ip::tcp;

const std::string* ClientResponse::Header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (k == name) return &v;
  }
  return nullptr;
}

namespace {

std::string Fingerprint(X509* cert) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  X509_digest(cert, EVP_sha256(), md, &len);
  std::string out;
  char buf[4];
  for (unsigned int i = 0; i < len; ++i) {
    std::snprintf(buf, sizeof(buf), "%02x", md[i]);
    if (i) out += ':';
    out += buf;
  }
  return out;
}

std::string Lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

struct Connection {
  net::io_context ioc;
  ssl::context ctx{ssl::context::tls_client};
  std::unique_ptr<beast::ssl_stream<beast::tcp_stream>> stream;
  beast::flat_buffer buffer;
};

Status OpenConnection(const HttpClientOptions& o, Connection* c) {
  c->ctx.set_verify_mode(ssl::verify_none);
  c->stream = std::make_unique<beast::ssl_stream<beast::tcp_stream>>(c->ioc, c->ctx);
  tcp::resolver resolver(c->ioc);
  beast::error_code ec;
  auto results = resolver.resolve(o.host, std::to_string(o.port), ec);
  if (ec) return Status::IoError("unable to resolve '" + o.host + "': " + ec.message());
  auto& tcp_stream = beast::get_lowest_layer(*c->stream);
  tcp_stream.expires_after(std::chrono::seconds(o.timeout_seconds));
  tcp_stream.connect(results, ec);
  if (ec) {
    return Status::IoError("unable to connect to " + o.host + ":" + std::to_string(o.port) +
                           ": " + ec.message());
  }
  tcp_stream.socket().set_option(tcp::no_delay(true), ec);
  // Synchronous operations ignore tcp_stream's expiry: bound them with socket timeouts.
  struct timeval tv{};
  tv.tv_sec = o.timeout_seconds;
  ::setsockopt(tcp_stream.socket().native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  ::setsockopt(tcp_stream.socket().native_handle(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  SSL_set_tlsext_host_name(c->stream->native_handle(), o.host.c_str());
  c->stream->handshake(ssl::stream_base::client, ec);
  if (ec) return Status::IoError("TLS handshake failed: " + ec.message());
  X509* cert = SSL_get1_peer_certificate(c->stream->native_handle());
  if (!cert) return Status::PermissionDenied("server sent no certificate");
  std::string fp = Fingerprint(cert);
  X509_free(cert);
  if (Lower(o.fingerprint) != fp) {
    return Status::PermissionDenied("certificate fingerprint mismatch (expected " +
                                    o.fingerprint + ", got " + fp + ")");
  }
  return Status::OK();
}

}  // namespace

struct HttpClient::Impl {
  HttpClientOptions options;
  std::unique_ptr<Connection> conn;
  std::string token_header;
  std::string ticket;
  std::string csrf;
};

HttpClient::HttpClient(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
HttpClient::~HttpClient() = default;

Result<std::unique_ptr<HttpClient>> HttpClient::Connect(const HttpClientOptions& options) {
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  impl->conn = std::make_unique<Connection>();
  PBSKIT_RETURN_IF_ERROR(OpenConnection(options, impl->conn.get()));
  return std::unique_ptr<HttpClient>(new HttpClient(std::move(impl)));
}

void HttpClient::UseToken(const std::string& token_id, const std::string& secret) {
  impl_->token_header = "PBSAPIToken " + token_id + ":" + secret;
}

Result<ClientResponse> HttpClient::Request(
    const std::string& method, const std::string& path, const std::string& body,
    const std::string& content_type,
    const std::vector<std::pair<std::string, std::string>>& extra) {
  for (int attempt = 0; attempt < 2; ++attempt) {
    if (!impl_->conn) {
      impl_->conn = std::make_unique<Connection>();
      auto st = OpenConnection(impl_->options, impl_->conn.get());
      if (!st.ok()) {
        impl_->conn.reset();
        return st;
      }
    }
    Connection& c = *impl_->conn;
    http::request<http::string_body> req;
    req.method_string(method);
    req.target(path);
    req.version(11);
    req.set(http::field::host, impl_->options.host + ":" + std::to_string(impl_->options.port));
    req.set(http::field::user_agent, "proxmox-backup-client/1.0");
    if (!content_type.empty()) req.set(http::field::content_type, content_type);
    if (!impl_->ticket.empty()) {
      req.set(http::field::cookie, "PBSAuthCookie=" + PercentEncode(impl_->ticket));
      if (method != "GET") req.set("CSRFPreventionToken", impl_->csrf);
    } else if (!impl_->token_header.empty()) {
      req.set(http::field::authorization, impl_->token_header);
    }
    for (const auto& [k, v] : extra) req.set(k, v);
    req.body() = body;
    req.prepare_payload();
    beast::error_code ec;
    auto& tcp_stream = beast::get_lowest_layer(*c.stream);
    tcp_stream.expires_after(std::chrono::seconds(impl_->options.timeout_seconds));
    http::write(*c.stream, req, ec);
    http::response_parser<http::string_body> parser;
    parser.body_limit(1024ull * 1024 * 1024);
    if (!ec) http::read(*c.stream, c.buffer, parser, ec);
    if (ec) {
      impl_->conn.reset();
      if (attempt == 0 && (ec == http::error::end_of_stream || ec == net::error::eof ||
                           ec == net::error::connection_reset || ec == net::error::broken_pipe ||
                           ec == ssl::error::stream_truncated)) {
        continue;
      }
      return Status::IoError(method + " " + path + " failed: " + ec.message());
    }
    auto res = parser.release();
    ClientResponse out;
    out.status = static_cast<int>(res.result_int());
    out.body = std::move(res.body());
    for (const auto& f : res) {
      out.headers.emplace_back(Lower(std::string(f.name_string())), std::string(f.value()));
    }
    if (!res.keep_alive()) impl_->conn.reset();
    return out;
  }
  return Status::IoError(method + " " + path + " failed: connection closed");
}

std::string HttpClient::EncodeQuery(const boost::json::object& params) {
  std::string q;
  auto add = [&](const std::string& k, const boost::json::value& v) {
    std::string text;
    if (v.is_string()) {
      text = std::string(v.as_string());
    } else if (v.is_bool()) {
      text = v.as_bool() ? "true" : "false";
    } else {
      text = boost::json::serialize(v);
    }
    if (!q.empty()) q += '&';
    q += PercentEncode(k) + "=" + PercentEncode(text);
  };
  for (const auto& [k, v] : params) {
    if (v.is_array()) {
      for (const auto& item : v.as_array()) add(std::string(k), item);
    } else {
      add(std::string(k), v);
    }
  }
  return q;
}

Result<boost::json::value> HttpClient::Call(const std::string& method, const std::string& path,
                                            const boost::json::object& params) {
  std::string target = "/api2/json" + path;
  Result<ClientResponse> res = Status::Aborted("not sent");
  if (method == "POST") {
    res = Request(method, target, boost::json::serialize(params), "application/json");
  } else {
    std::string q = EncodeQuery(params);
    if (!q.empty()) target += "?" + q;
    res = Request(method, target, "", "application/x-www-form-urlencoded");
  }
  if (!res.ok()) return res.status();
  if (res->status != 200) {
    std::string msg = res->body.empty() ? "HTTP status " + std::to_string(res->status)
                                        : res->body;
    if (res->status == 401 || res->status == 403) return Status::PermissionDenied(msg);
    if (res->status == 404) return Status::NotFound(msg);
    if (res->status >= 500) return Status::IoError(msg);
    return Status::InvalidArgument(msg);
  }
  if (res->body.empty()) return boost::json::value(nullptr);
  boost::system::error_code ec;
  auto v = boost::json::parse(res->body, ec);
  if (ec || !v.is_object() || !v.as_object().contains("data")) {
    return Status::Corruption("unexpected response from " + path + ": no JSON object with data");
  }
  return v.as_object()["data"];
}

Status HttpClient::Login(const std::string& userid, const std::string& password) {
  impl_->ticket.clear();
  auto data = Call("POST", "/access/ticket", {{"username", userid}, {"password", password}});
  if (!data.ok()) return data.status();
  auto* o = data->if_object();
  if (!o || !o->contains("ticket") || !o->contains("CSRFPreventionToken")) {
    return Status::Corruption("login response lacks ticket or CSRFPreventionToken");
  }
  impl_->ticket = std::string((*o)["ticket"].as_string());
  impl_->csrf = std::string((*o)["CSRFPreventionToken"].as_string());
  return Status::OK();
}

Result<std::string> HttpClient::RawExchange(const HttpClientOptions& options,
                                            const std::string& bytes, int timeout_seconds) {
  HttpClientOptions o = options;
  o.timeout_seconds = timeout_seconds;
  Connection c;
  PBSKIT_RETURN_IF_ERROR(OpenConnection(o, &c));
  beast::error_code ec;
  beast::get_lowest_layer(*c.stream).expires_after(std::chrono::seconds(timeout_seconds));
  net::write(*c.stream, net::buffer(bytes), ec);
  std::string out;
  char buf[16384];
  for (;;) {
    size_t n = c.stream->read_some(net::buffer(buf), ec);
    out.append(buf, n);
    if (ec) break;
  }
  return out;
}

std::vector<std::pair<std::string, std::string>> HttpClient::AuthHeaders() const {
  std::vector<std::pair<std::string, std::string>> out;
  if (!impl_->ticket.empty()) {
    out.emplace_back("Cookie", "PBSAuthCookie=" + PercentEncode(impl_->ticket));
    out.emplace_back("CSRFPreventionToken", impl_->csrf);
  } else if (!impl_->token_header.empty()) {
    out.emplace_back("Authorization", impl_->token_header);
  }
  return out;
}

const HttpClientOptions& HttpClient::options() const { return impl_->options; }

namespace {

bool IsHostName(std::string_view h) {
  if (h.empty() || h.size() > 253) return false;
  for (char c : h) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '.') return false;
  }
  return h.front() != '-' && h.front() != '.';
}

bool IsIpv6(std::string_view h) {
  if (h.size() < 2) return false;
  for (char c : h) {
    if (!std::isxdigit(static_cast<unsigned char>(c)) && c != ':' && c != '.') return false;
  }
  return h.find(':') != std::string_view::npos;
}

}  // namespace

Result<BackupRepository> BackupRepository::Parse(std::string_view text) {
  auto fail = [&] {
    return Status::InvalidArgument("unable to parse repository url '" + std::string(text) + "'");
  };
  BackupRepository r;
  std::string_view rest = text;
  // The host part never contains '@'; an auth id contains exactly one (user@realm[!token]).
  auto at = rest.rfind('@');
  if (at != std::string_view::npos) {
    std::string_view auth = rest.substr(0, at);
    if (!Authid::Parse(auth).ok()) return fail();
    r.auth_id = std::string(auth);
    rest = rest.substr(at + 1);
  }
  std::string host, port, store;
  if (!rest.empty() && rest.front() == '[') {
    auto close = rest.find(']');
    if (close == std::string_view::npos || close + 1 >= rest.size() || rest[close + 1] != ':') {
      return fail();
    }
    if (!IsIpv6(rest.substr(1, close - 1))) return fail();
    host = std::string(rest.substr(0, close + 1));
    rest = rest.substr(close + 2);
    auto colon = rest.find(':');
    if (colon != std::string_view::npos) {
      port = std::string(rest.substr(0, colon));
      rest = rest.substr(colon + 1);
    }
    store = std::string(rest);
  } else {
    std::vector<std::string> parts;
    size_t pos = 0;
    for (;;) {
      auto colon = rest.find(':', pos);
      parts.emplace_back(rest.substr(pos, colon == std::string_view::npos ? colon : colon - pos));
      if (colon == std::string_view::npos) break;
      pos = colon + 1;
    }
    if (parts.size() > 3) return fail();
    if (parts.size() == 1 && at != std::string_view::npos) return fail();  // auth needs a host
    if (parts.size() >= 2) {
      if (!IsHostName(parts[0])) return fail();
      host = parts[0];
    }
    if (parts.size() == 3) port = parts[1];
    store = parts.back();
  }
  if (!host.empty()) r.host = host;
  if (!port.empty()) {
    if (port.size() > 5) return fail();
    uint32_t n = 0;
    for (char c : port) {
      if (!std::isdigit(static_cast<unsigned char>(c))) return fail();
      n = n * 10 + static_cast<uint32_t>(c - '0');
    }
    if (n == 0 || n > 65535) return fail();
    r.port = static_cast<uint16_t>(n);
  }
  if (!CheckDatastoreName(store).ok()) return fail();
  r.store = store;
  return r;
}

std::string BackupRepository::ToString() const {
  return auth_id + "@" + host + ":" + std::to_string(port) + ":" + store;
}

Result<std::unique_ptr<HttpClient>> ConnectRepository(const RepositoryConnectOptions& options) {
  const BackupRepository& repo = options.repository;
  HttpClientOptions o;
  o.host = repo.host;
  if (o.host.size() > 2 && o.host.front() == '[') o.host = o.host.substr(1, o.host.size() - 2);
  o.port = repo.port;
  o.fingerprint = options.fingerprint;
  o.timeout_seconds = options.timeout_seconds;
  PBSKIT_ASSIGN_OR_RETURN(std::unique_ptr<HttpClient> client, HttpClient::Connect(o));
  if (repo.is_token()) {
    client->UseToken(repo.auth_id, options.secret);
  } else {
    PBSKIT_RETURN_IF_ERROR(client->Login(repo.auth_id, options.secret));
  }
  return client;
}

}  // namespace pbskit::server
