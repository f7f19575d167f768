// RESP2 reply scanner and readers. See reply_parser.h for the contract.

#include "protocol/resp/reply_parser.h"

#include <cstring>
#include <limits>

namespace dproxy::protocol::resp {

namespace detail {

// The longest valid integer line content ("-9223372036854775808") plus its "\r".
constexpr size_t kIntegerLineWindow = 21;

LineStatus read_integer_line_slow(std::string_view in, size_t pos, int64_t& value, size_t& next) {
  if (pos >= in.size()) return LineStatus::kNeedMore;
  const char* p = in.data() + pos;
  const size_t avail = in.size() - pos;
  const size_t window = avail < kIntegerLineWindow ? avail : kIntegerLineWindow;
  size_t k = 0;
  while (k < window && p[k] != '\r') ++k;
  if (k == window) {
    if (avail < kIntegerLineWindow) return LineStatus::kNeedMore;
    next = pos + kIntegerLineWindow;
    return LineStatus::kBad;
  }
  if (k + 1 == avail) return LineStatus::kNeedMore;
  next = pos + k + 2;
  if (p[k + 1] != '\n' || !parse_int64(std::string_view(p, k), value)) return LineStatus::kBad;
  return LineStatus::kOk;
}

}  // namespace detail

namespace {

using detail::LineStatus;
using detail::read_integer_line;

ParseResult bad_reply(std::string_view in) {
  return ParseResult::Error(kBadReplyError, in.size(), 0, true);
}

// An array header's n elements join the values still pending (one less: the array itself,
// already taken off); false when n is out of range.
inline bool add_elements(int64_t n, uint64_t& pending) {
  if (n < -1 || n > kMaxReplyArrayElements) return false;
  if (n <= 0) return true;
  if (pending > std::numeric_limits<uint64_t>::max() - static_cast<uint64_t>(n)) return false;
  pending += static_cast<uint64_t>(n);
  return true;
}

// A blob's content (a bulk string, blob error, verbatim string) of n bytes and its CRLF after the
// header that ends at `next`: moves `next` past them; on kNeedMore, `next` is the byte count
// the whole reply needs at least.
inline LineStatus skip_blob(std::string_view in, int64_t n, size_t& next) {
  next += static_cast<size_t>(n) + 2;
  if (in.size() < next) return LineStatus::kNeedMore;
  return in[next - 2] == '\r' && in[next - 1] == '\n' ? LineStatus::kOk : LineStatus::kBad;
}

// A '+' or '-' line at `pos`: its content, then "\r\n" within kMaxReplyLineBytes + 2 bytes;
// `next` is the position after it.
inline LineStatus read_simple_line(std::string_view in, size_t pos, size_t& next) {
  const size_t avail = in.size() - pos - 1;
  const size_t window = avail < kMaxReplyLineBytes + 2 ? avail : kMaxReplyLineBytes + 2;
  const void* nl = std::memchr(in.data() + pos + 1, '\n', window);
  if (nl == nullptr)
    return window == kMaxReplyLineBytes + 2 ? LineStatus::kBad : LineStatus::kNeedMore;
  const size_t end = static_cast<size_t>(static_cast<const char*>(nl) - in.data());
  if (in[end - 1] != '\r') return LineStatus::kBad;  // in[pos] when the line is empty
  next = end + 1;
  return LineStatus::kOk;
}

// One RESP3 value at `pos` (its type byte is none of RESP2's): on kOk, `next` is the offset
// after its header (an aggregate: `aggregate` is set and its elements join `pending`) or after
// the whole value (a scalar), and the value is taken off `pending`. kNeedMore: `hint` as in
// scan_reply. kBad: not a RESP3 value (or streamed, which Redis never sends).
[[gnu::noinline]] LineStatus scan_resp3_value(std::string_view in, size_t pos, uint64_t& pending,
                                              size_t& next, bool& aggregate, size_t& hint) {
  int64_t n = 0;
  switch (in[pos]) {
    case '_':  // null: "_\r\n"
    case '#':  // boolean: "#t\r\n" / "#f\r\n"
    {
      const size_t len = in[pos] == '_' ? 3 : 4;
      const std::string_view want = in[pos] == '_' ? "_\r\n" : "#t\r\n";
      for (size_t k = 1; k < len; ++k) {
        if (pos + k >= in.size()) return LineStatus::kNeedMore;
        const char c = in[pos + k];
        if (c != want[k] && !(k == 1 && len == 4 && c == 'f')) return LineStatus::kBad;
      }
      next = pos + len;
      --pending;
      return LineStatus::kOk;
    }
    case ',':  // double
    case '(':  // big number
      if (auto s = read_simple_line(in, pos, next); s != LineStatus::kOk) return s;
      if (next - pos == 3) return LineStatus::kBad;  // no digits at all
      --pending;
      return LineStatus::kOk;
    case '!':  // blob error
    case '=':  // verbatim string: "<3-byte format>:" then the text
      if (auto s = read_integer_line(in, pos + 1, n, next); s != LineStatus::kOk) return s;
      if (n < (in[pos] == '=' ? 4 : 0) || n > kMaxReplyBulkBytes) return LineStatus::kBad;
      if (auto s = skip_blob(in, n, next); s != LineStatus::kOk) {
        hint = next;
        return s;
      }
      --pending;
      return LineStatus::kOk;
    case '~':  // set
    case '>':  // push
    case '%':  // map: n keys and n values
    case '|':  // attribute: n keys and values, then the value they describe (still pending)
      if (auto s = read_integer_line(in, pos + 1, n, next); s != LineStatus::kOk) return s;
      if (n < 0) return LineStatus::kBad;
      if (in[pos] == '%' || in[pos] == '|') {
        if (n > kMaxReplyArrayElements / 2) return LineStatus::kBad;
        n *= 2;
      }
      if (in[pos] != '|') --pending;
      if (!add_elements(n, pending)) return LineStatus::kBad;
      aggregate = true;
      return LineStatus::kOk;
    default:
      return LineStatus::kBad;
  }
}

}  // namespace

bool parse_int64(std::string_view s, int64_t& out) {
  const size_t n = s.size();
  if (n == 0 || n > 20) return false;
  size_t i = 0;
  const bool negative = s[0] == '-';
  if (negative) i = 1;
  if (i == n) return false;
  if (s[i] == '0') {
    if (n != 1) return false;  // leading zero, or "-0"
    out = 0;
    return true;
  }
  uint64_t acc = 0;
  for (; i < n; ++i) {
    const unsigned d = static_cast<unsigned char>(s[i]) - static_cast<unsigned>('0');
    if (d > 9) return false;
    if (acc > (std::numeric_limits<uint64_t>::max() - d) / 10) return false;
    acc = acc * 10 + d;
  }
  constexpr auto kMax = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
  if (negative) {
    if (acc > kMax + 1) return false;
    out = acc == kMax + 1 ? std::numeric_limits<int64_t>::min() : -static_cast<int64_t>(acc);
  } else {
    if (acc > kMax) return false;
    out = static_cast<int64_t>(acc);
  }
  return true;
}

ParseResult scan_reply(std::string_view in, bool* is_error) {
  ReplyScanState state;
  return scan_reply(in, state, is_error);
}

namespace {

// Reads values one after the other, counting how many are still pending: an array of n
// elements is one value that adds n pending ones. The reply ends when none is pending.
// With kMarks, records the end of every value that is no array (see the header).
template <bool kMarks>
ParseResult scan_impl(std::string_view in, ReplyScanState& state, bool* is_error,
                      std::vector<size_t>* marks) {
  if (is_error != nullptr) *is_error = false;
  // Resume where an earlier call stopped for more bytes, or start at the first byte.
  const bool resume = state.pending != 0 && state.pos <= in.size();
  size_t pos = resume ? state.pos : 0;
  uint64_t pending = resume ? state.pending : 1;
  bool nested = resume && state.nested;
  if (kMarks && !resume) marks->clear();
  state = {};
  const auto need_more = [&](size_t hint) {
    state = {.pos = pos, .pending = pending, .nested = nested};
    return ParseResult::NeedMore(hint);
  };
  // A value that could not be read: more bytes needed (`hint`: how many, 0 if unknown), or a
  // malformed reply.
  const auto stop = [&](LineStatus status, size_t hint = 0) {
    return status == LineStatus::kNeedMore ? need_more(hint) : bad_reply(in);
  };
  const auto mark = [&] {
    if constexpr (kMarks) {
      if (!nested) marks->push_back(pos);
    }
  };
  while (pending > 0) {
    if (pos == in.size()) return need_more(0);
    int64_t n = 0;
    size_t next = 0;
    switch (in[pos]) {
      case '+':
      case '-':
        if (auto s = read_simple_line(in, pos, next); s != LineStatus::kOk) return stop(s);
        pos = next;
        --pending;
        mark();
        break;
      case ':':
        if (auto s = read_integer_line(in, pos + 1, n, next); s != LineStatus::kOk) return stop(s);
        pos = next;
        --pending;
        mark();
        break;
      case '$':
        if (auto s = read_integer_line(in, pos + 1, n, next); s != LineStatus::kOk) return stop(s);
        if (n < -1 || n > kMaxReplyBulkBytes) return bad_reply(in);
        if (n != -1) {  // a null has no content
          if (auto s = skip_blob(in, n, next); s != LineStatus::kOk) return stop(s, next);
        }
        pos = next;
        --pending;
        mark();
        break;
      case '*':
        if (auto s = read_integer_line(in, pos + 1, n, next); s != LineStatus::kOk) return stop(s);
        if (!add_elements(n, --pending)) return bad_reply(in);
        if (pos > 0) nested = true;
        pos = next;
        break;
      default: {
        // The RESP3 types (connections that said HELLO 3), kept out of the RESP2 cases' way.
        bool aggregate = false;
        size_t hint = 0;
        if (auto s = scan_resp3_value(in, pos, pending, next, aggregate, hint);
            s != LineStatus::kOk) {
          return stop(s, hint);
        }
        if (aggregate && pos > 0) nested = true;
        pos = next;
        if (!aggregate) mark();
        break;
      }
    }
  }
  if (is_error != nullptr) *is_error = in[0] == '-' || in[0] == '!';
  if constexpr (kMarks) {
    if (in[0] != '*' || nested) marks->clear();
  }
  return ParseResult::Ok(pos);
}

}  // namespace

ParseResult scan_reply(std::string_view in, ReplyScanState& state, bool* is_error) {
  return scan_impl<false>(in, state, is_error, nullptr);
}

ParseResult scan_reply(std::string_view in, ReplyScanState& state, bool* is_error,
                       std::vector<size_t>* marks) {
  if (marks == nullptr) return scan_impl<false>(in, state, is_error, nullptr);
  return scan_impl<true>(in, state, is_error, marks);
}

bool parse_integer_reply(std::string_view reply, int64_t& out) {
  if (reply.size() < 4 || reply[0] != ':') return false;
  int64_t v = 0;
  size_t next = 0;
  if (read_integer_line(reply, 1, v, next) != LineStatus::kOk || next != reply.size()) {
    return false;
  }
  out = v;
  return true;
}

ArrayReader::ArrayReader(std::string_view reply) {
  if (reply.empty()) return;
  if (reply == "_\r\n") {
    ok_ = true;  // RESP3's null, read as a null array
    return;
  }
  const char type = reply[0];
  if (type != '*' && type != '~' && type != '>' && type != '%') return;
  int64_t n = 0;
  size_t next = 0;
  if (read_integer_line(reply, 1, n, next) != LineStatus::kOk || n < (type == '*' ? -1 : 0) ||
      n > kMaxReplyArrayElements) {
    return;
  }
  if (type == '%') {
    if (n > kMaxReplyArrayElements / 2) return;
    n *= 2;  // a map: its keys and values, in turn
  }
  ok_ = true;
  size_ = n;
  left_ = n > 0 ? n : 0;
  rest_ = reply.substr(next);
}

bool ArrayReader::next(std::string_view& element) {
  if (left_ == 0) return false;
  if (!rest_.empty() && rest_[0] == '$') {
    // The common element (MGET): a bulk string or a null, read directly.
    int64_t n = 0;
    size_t next = 0;
    if (read_integer_line(rest_, 1, n, next) == LineStatus::kOk && n >= -1 &&
        n <= kMaxReplyBulkBytes) {
      const size_t end = n == -1 ? next : next + static_cast<size_t>(n) + 2;
      if (n == -1 || (end <= rest_.size() && rest_[end - 2] == '\r' && rest_[end - 1] == '\n')) {
        element = rest_.substr(0, end);
        rest_.remove_prefix(end);
        --left_;
        return true;
      }
    }
  }
  const ParseResult r = scan_reply(rest_);
  if (r.status != ParseStatus::kOk) {
    ok_ = false;
    size_ = -1;
    left_ = 0;
    rest_ = {};
    return false;
  }
  element = rest_.substr(0, r.consumed);
  rest_.remove_prefix(r.consumed);
  --left_;
  return true;
}

}  // namespace dproxy::protocol::resp
