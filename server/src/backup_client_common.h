// Shared pieces of the protocol clients (backup_client.cc, reader_client.cc): how a repository
// connection becomes an authenticated protocol upgrade, and how answers inside the HTTP/2
// session become values or errors.
#pragma once

#include <boost/json.hpp>
#include <string>

#include "pbskit/formats/status.h"
#include "pbskit/server/h2_client.h"
#include "pbskit/server/http_client.h"

namespace pbskit::server {

// Transport options for an upgrade to `connect.repository`: the token header for API tokens;
// for users a ticket login first (its cookie and CSRF token go on the upgrade request).
// Errors of the login (PermissionDenied with the server's text, IoError).
Result<H2ClientOptions> ProtocolConnectOptions(const RepositoryConnectOptions& connect);

// Status of an HTTP answer: 401/403 PermissionDenied, 404 NotFound, 5xx IoError, other
// non-200 InvalidArgument, each with the server's plain-text message (or "<what>: HTTP
// status <n>" when the body is empty).
Status StatusOfHttpError(int status, const std::string& body, const std::string& what);

// The `data` of a 200 JSON answer (an empty body is null), else StatusOfHttpError;
// Corruption when a 200 body is not a JSON object with `data`.
Result<boost::json::value> DataOfResponse(const H2ClientResponse& r, const std::string& what);

}  // namespace pbskit::server
