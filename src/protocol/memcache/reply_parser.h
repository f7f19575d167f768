#pragma once
// Scans memcached ASCII replies coming back from a backend.

#include <cstddef>
#include <string_view>
#include <vector>

#include "protocol/memcache/command.h"
#include "protocol/parse_result.h"

namespace dproxy::protocol::memcache {

// A reply line (VALUE line, status line, error line) without "\r\n" within this many bytes is
// malformed: scan_reply returns kError rather than buffering without bound.
inline constexpr size_t kMaxReplyLineBytes = 64 * 1024;

// The `error` of a kError from scan_reply (the backend connection is out of sync).
inline constexpr std::string_view kBadReplyError = "SERVER_ERROR bad reply from backend\r\n";

// Finds the end of the first reply in `in`, which must be of shape `kind` (or an error line:
// ERROR / CLIENT_ERROR ... / SERVER_ERROR ...).
// kOk: consumed = size of the reply. kNeedMore: incomplete. kError: the bytes cannot be a
// reply of that shape (the backend connection is out of sync and must be closed).
// `is_error` (optional) is set to true when the reply is an error line, false otherwise.
// Every line must end with "\r\n" (memcached never sends a bare "\n"); a data block must be
// followed by "\r\n". kLine accepts any single line; the other line kinds accept only the
// answers that command can give (see ReplyKind) or an error line. kRetrieval accepts VALUE items
// then "END", or an error line where an item could start (even after some items: the reply ends
// there). kError: consumed = in.size(), close = true, error = kBadReplyError.
// kNeedMore: size_hint = a lower bound of the reply size once a VALUE line is complete.
ParseResult scan_reply(std::string_view in, ReplyKind kind, bool* is_error = nullptr);

// Progress of scan_reply over an incomplete retrieval reply (the offset of the first item not
// yet complete), so that a large multi-item reply arriving over many reads is scanned once in
// total. Value-initialize it before the first call of each reply.
struct ReplyScanState {
  size_t pos = 0;
};

// The same, resuming from `state` (which it updates on kNeedMore and clears otherwise). Call it
// again with the same bytes plus more, or with a cleared state for another reply.
// `marks` (optional, kRetrieval only): the VALUE items found, three numbers each: the key's
// offset and length and the offset just past the item's data block, in order (offsets from the
// start of `in`). Cleared when the scan starts a reply; a resumed scan appends the items it
// completes, so pass the same vector with the same state.
ParseResult scan_reply(std::string_view in, ReplyKind kind, ReplyScanState& state,
                       bool* is_error = nullptr, std::vector<size_t>* marks = nullptr);
inline constexpr size_t kMarksPerItem = 3;

// One "VALUE key flags bytes [cas]\r\n<data>\r\n" item of a complete retrieval reply.
struct ValueItem {
  std::string_view key;
  std::string_view bytes;  // the whole item: VALUE line, data block and trailing CRLF
};

// Iterates the items of a complete retrieval reply (as accepted by scan_reply), in order.
class ValueIterator {
 public:
  explicit ValueIterator(std::string_view reply) : rest_(reply) {}
  // Returns false at "END" (or on anything that is not a well-formed item).
  bool next(ValueItem& item);

 private:
  std::string_view rest_;
};

}  // namespace dproxy::protocol::memcache
