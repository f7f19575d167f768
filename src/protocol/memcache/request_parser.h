#pragma once
// Incremental memcached ASCII request parser: a pure function of the bytes given.

#include <cstddef>
#include <string_view>

#include "protocol/memcache/command.h"
#include "protocol/parse_result.h"
#include "protocol/request.h"

namespace dproxy::protocol::memcache {

// The exact error replies RequestParser returns (string literals: static storage, valid forever).
namespace errors {
inline constexpr std::string_view kError = "ERROR\r\n";
inline constexpr std::string_view kBadFormat = "CLIENT_ERROR bad command line format\r\n";
inline constexpr std::string_view kDeleteUsage =
    "CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]\r\n";
inline constexpr std::string_view kBadExptime = "CLIENT_ERROR invalid exptime argument\r\n";
inline constexpr std::string_view kStatsDetailUsage =
    "CLIENT_ERROR usage: stats detail on|off|dump\r\n";
inline constexpr std::string_view kBadDelta = "CLIENT_ERROR invalid numeric delta argument\r\n";
inline constexpr std::string_view kTooLarge = "SERVER_ERROR object too large for cache\r\n";
inline constexpr std::string_view kBadDataChunk = "CLIENT_ERROR bad data chunk\r\n";
inline constexpr std::string_view kLineTooLong = "CLIENT_ERROR line too long\r\n";
// ms with more tokens than memcached reads (meta::kMaxTokens).
inline constexpr std::string_view kMetaFlagsTooLong = "CLIENT_ERROR options flags too long\r\n";
// No reply: the connection is closed (a command line ending in "HTTP/...", as memcached does).
inline constexpr std::string_view kCloseHttp = "";
// Not an error: memcached's answer to `gat <exptime>` / `gats <exptime>` without keys.
inline constexpr std::string_view kEmptyGat = "END\r\n";
}  // namespace errors

struct RequestLimits {
  size_t max_key_bytes = 250;
  size_t max_value_bytes = 1024 * 1024;     // storage data blocks larger than this are refused
  size_t max_line_bytes = 2 * 1024 * 1024;  // a command line without "\n" longer than this: error
};

class RequestParser {
 public:
  explicit RequestParser(RequestLimits limits = {}) : limits_(limits) {}

  // Parses the first frame at the start of `in`.
  // kOk: `out` describes the frame (out.frame = in.substr(0, consumed)); its string_views
  //   point into `in`.
  // kNeedMore: `in` holds no complete frame; call again with the same bytes plus more.
  //   size_hint = the total frame size once known (storage commands after their line), else 0.
  // kError: `error` is the exact reply line to send (one of `errors::`); drop `consumed` bytes
  //   then `skip` more. consumed = the bad line with its terminator, except:
  //   - kBadDataChunk: consumed = line + <bytes> + 2 (the whole would-be frame), close = true;
  //   - kLineTooLong and kCloseHttp: consumed = in.size() (everything buffered), close = true.
  //   skip = <bytes> + 2 only for a storage line (or `ms`) that is refused for its key or its
  //   size while <bytes> itself is valid (memcached swallows the block of an over-long key
  //   only for the size: dproxy never runs a value as a command); other errors in the line
  //   format never skip, as memcached: the data block is then read as a command line.
  //   The replies are memcached 1.6's: a wrong token count is "ERROR"; a NUL byte ends the
  //   command line (the rest of the line up to "\n" is ignored); only ' ' separates tokens.
  //   out.name / out.command are set when the command was recognized (name is empty for an
  //   unknown command). kFlagNoreply is set when the request carried noreply (its last token
  //   is "noreply" and the command takes one): the caller then sends no reply at all. `keys`
  //   holds the key of a storage command refused with kTooLarge (and perhaps keys parsed before
  //   another error); every other field of `out` is reset.
  // The result is a pure function of the bytes: any split of the input gives the same frames.
  // Never allocates except to grow out.keys past its previous capacity.
  ParseResult parse(std::string_view in, Request& out) const;

 private:
  RequestLimits limits_;
};

}  // namespace dproxy::protocol::memcache
