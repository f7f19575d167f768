#pragma once
// Incremental memcached ASCII request parser: a pure function of the bytes given.

#include <cstddef>
#include <string_view>

#include "protocol/memcache/command.h"
#include "protocol/parse_result.h"
#include "protocol/request.h"

namespace dproxy::protocol::memcache {

struct RequestLimits {
  size_t max_key_bytes = 250;
  size_t max_value_bytes = 1024 * 1024;  // storage data blocks larger than this are refused
  size_t max_line_bytes = 2 * 1024 * 1024;  // a command line without "\n" longer than this: error
};

class RequestParser {
 public:
  explicit RequestParser(RequestLimits limits = {}) : limits_(limits) {}

  // Parses the first frame at the start of `in`.
  // kOk: `out` describes the frame (out.frame = in.substr(0, consumed)); string_views point into `in`.
  // kNeedMore: `in` holds no complete frame; call again with the same bytes plus more.
  // kError: `error` is the exact reply line to send; drop `consumed` bytes then `skip` more.
  // Never allocates except to grow out.keys past its previous capacity.
  ParseResult parse(std::string_view in, Request& out) const;

 private:
  RequestLimits limits_;
};

}  // namespace dproxy::protocol::memcache
