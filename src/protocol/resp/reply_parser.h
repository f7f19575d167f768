#pragma once
// Scans RESP2 and RESP3 replies coming back from a Redis backend, and reads complete ones.

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "protocol/parse_result.h"

namespace dproxy::protocol::resp {

// A simple string or error line ("+..." / "-...") without "\r\n" within this many bytes of
// content is malformed: scan_reply returns kError rather than buffering without bound.
inline constexpr size_t kMaxReplyLineBytes = 1024 * 1024;
// A bulk string longer than this is malformed (Redis's proto-max-bulk-len default).
inline constexpr int64_t kMaxReplyBulkBytes = 512 * 1024 * 1024;
// An array with more elements than this is malformed (hiredis's own limit).
inline constexpr int64_t kMaxReplyArrayElements = (int64_t{1} << 32) - 1;

// The `error` of a kError from scan_reply (the backend connection is out of sync).
inline constexpr std::string_view kBadReplyError = "-ERR dproxy: bad reply from backend\r\n";

// Progress of scan_reply over an incomplete reply, so that a large reply arriving over many
// reads is scanned once in total. Value-initialize it before the first call of each reply.
struct ReplyScanState {
  size_t pos = 0;        // offset of the first value not yet complete
  uint64_t pending = 0;  // values still to read from `pos` (0: not started)
  bool nested = false;   // an array inside the reply was seen (marks are not elements then)
};

// Finds the end of the first complete reply at the start of `in`: RESP2's +simple, -error,
// :integer, $bulk ($-1 = null), *array (*-1 = null), and RESP3's _null, ,double, #boolean,
// !blob error, =verbatim, (big number, %map, ~set, >push and |attribute (its pairs, then the
// value it describes: one reply), nested to any depth: the scan keeps a count of pending values,
// no stack. RESP3's streamed forms ($?, *? ...) are malformed (Redis never sends them).
// kOk: consumed = size of the reply. *is_error (optional) = the top-level reply is an error,
//   '-' or '!' (it is set to false otherwise, and for every other status).
// kNeedMore: incomplete; size_hint = once a bulk header is read, the size the reply needs at
//   least (the end of that bulk: exact for a top-level bulk), else 0.
// kError: the bytes cannot be a reply (bad type byte, bad integer, bulk data not followed by
//   "\r\n", a line without "\r\n" within its limit, a length above its limit): consumed =
//   in.size(), close = true, error = kBadReplyError. Decided as soon as the bad bytes are there.
// Every line must end with "\r\n". Integers use Redis's strict syntax (see parse_int64).
ParseResult scan_reply(std::string_view in, bool* is_error = nullptr);

// The same, resuming from `state` (which it updates on kNeedMore and clears otherwise). Call it
// again with the same bytes plus more, or with a cleared state for another reply.
// `marks` (optional): for a '*' array reply whose elements are no aggregates (an MGET reply), the
// offset just past each element, in order; left empty for any other reply (the elements are
// then read with ArrayReader). Cleared when the scan starts a reply; a resumed scan appends, so
// pass the same vector with the same state.
ParseResult scan_reply(std::string_view in, ReplyScanState& state, bool* is_error,
                       std::vector<size_t>* marks);
ParseResult scan_reply(std::string_view in, ReplyScanState& state, bool* is_error = nullptr);

// Redis's strict integer syntax (string2ll): "0", or an optional '-' then a digit 1-9 then
// digits, within int64. No '+', spaces, leading zeros or "-0".
bool parse_int64(std::string_view s, int64_t& out);

// The value of a complete integer reply ":<n>\r\n" (exactly that, nothing after it).
bool parse_integer_reply(std::string_view reply, int64_t& out);

// Iterates the elements of a complete array reply (as accepted by scan_reply); RESP3's set and
// push read the same, a map as its keys and values in turn (size() counts both), and "_" as a
// null array.
class ArrayReader {
 public:
  explicit ArrayReader(std::string_view reply);
  // The reply starts with a valid array header, and no element has failed to scan so far.
  bool ok() const { return ok_; }
  // The number of elements, -1 for a null array (and when !ok()).
  int64_t size() const { return size_; }
  // Stores the next element's complete bytes (any type, nested arrays included) in `element`;
  // false after the last one, or when the rest is not a complete reply (then ok() is false).
  bool next(std::string_view& element);

 private:
  std::string_view rest_;
  int64_t size_ = -1;
  int64_t left_ = 0;
  bool ok_ = false;
};

namespace detail {

enum class LineStatus : uint8_t { kOk, kNeedMore, kBad };

// Reads the integer line starting at in[pos] (just after its type byte): parse_int64 digits then
// "\r\n", found within 21 bytes (the longest int64 is 20 characters). kOk: `value` and `next`
// (the offset after "\n"). kBad: `next` = the offset just past the bytes that make it bad.
LineStatus read_integer_line_slow(std::string_view in, size_t pos, int64_t& value, size_t& next);

// The same; inline for the common case (an optional '-', 1 to 18 digits, "\r\n": no overflow
// possible), read in one pass.
inline LineStatus read_integer_line(std::string_view in, size_t pos, int64_t& value, size_t& next) {
  if (pos < in.size()) {
    const char* p = in.data() + pos;
    const size_t avail = in.size() - pos;
    const size_t first = p[0] == '-' ? 1 : 0;
    const size_t limit = avail < first + 18 ? avail : first + 18;
    size_t k = first;
    uint64_t acc = 0;
    for (; k < limit; ++k) {
      const unsigned d = static_cast<unsigned char>(p[k]) - static_cast<unsigned>('0');
      if (d > 9) break;
      acc = acc * 10 + d;
    }
    if (k > first && k + 1 < avail && p[k] == '\r' && p[k + 1] == '\n' &&
        (p[first] != '0' || k == 1)) {
      value = first == 0 ? static_cast<int64_t>(acc) : -static_cast<int64_t>(acc);
      next = pos + k + 2;
      return LineStatus::kOk;
    }
  }
  return read_integer_line_slow(in, pos, value, next);
}

}  // namespace detail

}  // namespace dproxy::protocol::resp
