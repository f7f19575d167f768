#pragma once
// Incremental RESP2 request parser: multibulk and inline commands, read the way Redis reads them.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "protocol/parse_result.h"
#include "protocol/request.h"

namespace dproxy::protocol::resp {

// The exact error replies RequestParser returns (string literals or a static table: valid
// forever). The wording is Redis's own (networking.c) where Redis has one.
namespace errors {
inline constexpr std::string_view kInvalidMultibulkLength =
    "-ERR Protocol error: invalid multibulk length\r\n";
inline constexpr std::string_view kInvalidBulkLength =
    "-ERR Protocol error: invalid bulk length\r\n";
// Redis does not check the two bytes after a bulk's data; dproxy does (no Redis wording).
inline constexpr std::string_view kBadBulkEnd =
    "-ERR Protocol error: expected CRLF after bulk data\r\n";
inline constexpr std::string_view kTooBigInline = "-ERR Protocol error: too big inline request\r\n";
inline constexpr std::string_view kUnbalancedQuotes =
    "-ERR Protocol error: unbalanced quotes in request\r\n";
// A well-formed bulk longer than RequestLimits::max_bulk_bytes. The connection stays usable.
inline constexpr std::string_view kValueTooLarge =
    "-ERR dproxy: value too large (max_value_bytes)\r\n";

// "-ERR Protocol error: expected '$', got 'X'\r\n" with X = `got`, from a static table of the
// 256 byte values. As Redis does, '\r' and '\n' are shown as ' ' so the reply stays one line.
std::string_view expected_dollar(char got);
}  // namespace errors

struct RequestLimits {
  size_t max_bulk_bytes = 512 * 1024 * 1024;  // larger bulks are refused with kValueTooLarge
  size_t max_args = 1024 * 1024;              // a larger multibulk count is a protocol error
  size_t max_inline_bytes = 64 * 1024;        // an inline line longer than this is an error
};

// Parses one client command at a time: a multibulk `*N\r\n$len\r\n<arg>\r\n...` or, when the
// first byte is not '*', an inline command line. Does not classify commands.
//
// One parser per connection: it is stateful. It remembers how far it got into an incomplete
// frame (so a frame arriving over many reads is scanned once, not once per read) and it
// remembers an oversize command whose remaining arguments it still has to discard.
//
// How the caller drives it (as ClientSession does for memcached):
//   r = parse(buffer, req)
//   kNeedMore: wait for more bytes; call again with THE SAME bytes plus more (the buffer may move
//     or be compacted, but its content must start at the same frame). r.size_hint is the total
//     size the frame needs at least (known once a bulk header is read), else 0.
//   kOk: drop r.consumed bytes. If req.args is empty, do nothing else (an empty command such as
//     "\r\n" or "*0\r\n", or part of a refused command being discarded); otherwise dispatch req.
//   kError: send r.error, drop r.consumed bytes. If r.close, close the connection after the
//     reply. Otherwise drop r.skip more bytes (possibly over several reads) BEFORE calling parse
//     again, and keep calling parse as usual: discarding() is then true and the following kOk
//     results (with empty args) eat the rest of the refused command without buffering it.
class RequestParser {
 public:
  explicit RequestParser(RequestLimits limits = {}) : limits_(limits) {}

  // Parses the first command at the start of `in` (see the class comment for the protocol).
  // kOk: out.frame = in.substr(0, consumed); out.args = every argument (binary safe), args[0]
  //   being the command name as sent; out.name = args[0]. The views point into `in`, except the
  //   arguments of an inline command that needed unescaping ("a\x41", 'it\'s', a"b"c): those
  //   point into storage owned by the parser, valid until the next call to parse().
  //   Empty args: nothing to execute (see the class comment); out.frame = the bytes consumed.
  // kError: consumed = the bytes of the frame examined up to and including the fault (the bad
  //   line, the bad '$' byte, the two bytes that should have been CRLF, max_inline_bytes + 1 for
  //   an unterminated inline line, 21 bytes after the marker for an unterminated count line).
  //   close = true for every error but kValueTooLarge. kValueTooLarge: consumed = up to the end
  //   of the oversize bulk's header line, skip = its data + CRLF; out.name = args[0] when the
  //   oversize bulk is not args[0] itself.
  // Every other field of `out` is reset. Never throws; allocates only to grow out.args past its
  // capacity or the unescaping storage of an inline command past its largest size so far.
  // Any split of the input into reads gives the same commands, errors and replies.
  ParseResult parse(std::string_view in, Request& out);

  // True while the remainder of a command refused with kValueTooLarge is being discarded.
  bool discarding() const { return discard_args_ > 0 || discard_bytes_ > 0; }

  // Forgets every partial frame and discard in progress (e.g. for a new connection).
  void reset();

 private:
  enum class Resume : uint8_t { kNone, kMultibulk, kInline };

  ParseResult parse_multibulk(std::string_view in, Request& out);
  ParseResult parse_inline(std::string_view in, Request& out);
  ParseResult discard(std::string_view in, Request& out);
  ParseResult too_large(std::string_view in, Request& out, size_t header_end, uint64_t len,
                        uint64_t index, uint64_t count);
  void fill_args(std::string_view in, Request& out) const;

  RequestLimits limits_;
  // An incomplete frame seen by the previous call.
  Resume resume_ = Resume::kNone;
  size_t resume_pos_ = 0;     // multibulk: offset of the first incomplete argument's header;
                              // inline: bytes already scanned for '\n'
  size_t args_pos_ = 0;       // multibulk: offset of the first argument (after the count line)
  uint64_t resume_args_ = 0;  // multibulk: complete arguments before resume_pos_
  uint64_t nargs_ = 0;        // multibulk: the argument count
  // The rest of a command refused with kValueTooLarge: whole bulks still to discard, and the
  // bytes still to discard of the bulk being discarded.
  uint64_t discard_args_ = 0;
  uint64_t discard_bytes_ = 0;
  // Unescaped inline arguments.
  std::string scratch_;
};

}  // namespace dproxy::protocol::resp
