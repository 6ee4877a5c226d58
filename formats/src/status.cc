#include "pbskit/formats/status.h"

#include <cstring>

namespace pbskit {

const char* CodeName(Code code) {
  switch (code) {
    case Code::kOk: return "ok";
    case Code::kNotFound: return "not found";
    case Code::kCorruption: return "corruption";
    case Code::kIoError: return "i/o error";
    case Code::kInvalidArgument: return "invalid argument";
    case Code::kPermissionDenied: return "permission denied";
    case Code::kBusy: return "busy";
    case Code::kUnsupported: return "unsupported";
    case Code::kAborted: return "aborted";
    case Code::kAlreadyExists: return "already exists";
  }
  return "unknown";
}

Status Status::FromErrno(int err, const std::string& what) {
  Code code = Code::kIoError;
  if (err == ENOENT) code = Code::kNotFound;
  if (err == EACCES || err == EPERM) code = Code::kPermissionDenied;
  if (err == EEXIST) code = Code::kAlreadyExists;
  if (err == EWOULDBLOCK || err == EBUSY) code = Code::kBusy;
  return Status(code, what + ": " + std::strerror(err));
}

}  // namespace pbskit
