#include "kiln/status.h"

namespace kiln {

const char* status_code_name(StatusCode code) {
  switch (code) {
    case StatusCode::kOk: return "ok";
    case StatusCode::kInvalidArgument: return "invalid argument";
    case StatusCode::kOutOfRange: return "out of range";
    case StatusCode::kNotFound: return "not found";
    case StatusCode::kUnsupported: return "unsupported";
    case StatusCode::kTruncated: return "truncated file";
    case StatusCode::kCorruptFile: return "corrupt file";
    case StatusCode::kVersionMismatch: return "version mismatch";
    case StatusCode::kWrongTarget: return "wrong target";
    case StatusCode::kCudaError: return "CUDA error";
    case StatusCode::kOutOfMemory: return "out of memory";
    case StatusCode::kInternal: return "internal error";
  }
  return "unknown";
}

std::string Status::toString() const {
  if (ok()) return "ok";
  return str(status_code_name(code_), ": ", message_);
}

Status Status::withContext(const std::string& context) const {
  if (ok()) return *this;
  return Status(code_, str(context, ": ", message_));
}

}  // namespace kiln
