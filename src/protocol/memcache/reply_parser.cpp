// memcached ASCII reply scanner. See reply_parser.h for the contract.

#include "protocol/memcache/reply_parser.h"

#include <charconv>
#include <cstdint>
#include <cstring>
#include <limits>

#include "protocol/byte_scan.h"

namespace dproxy::protocol::memcache {
namespace {

// A VALUE data block longer than this is treated as a corrupt length (memcached's own limit).
constexpr uint64_t kMaxValueBytes = static_cast<uint64_t>(std::numeric_limits<int32_t>::max()) - 2;

enum class LineStatus : uint8_t { kOk, kNeedMore, kBad };

// Finds the "\r\n"-terminated line starting at `pos`: `line` gets its content (without the
// terminator) and `next` the offset just past it.
LineStatus find_line(std::string_view in, size_t pos, std::string_view& line, size_t& next) {
  const size_t avail = in.size() - pos;
  const size_t scan = avail < kMaxReplyLineBytes ? avail : kMaxReplyLineBytes;
  const void* nl = scan == 0 ? nullptr : std::memchr(in.data() + pos, '\n', scan);
  if (nl == nullptr) return avail >= kMaxReplyLineBytes ? LineStatus::kBad : LineStatus::kNeedMore;
  const size_t end = static_cast<size_t>(static_cast<const char*>(nl) - in.data());
  if (end == pos || in[end - 1] != '\r') return LineStatus::kBad;
  line = in.substr(pos, end - 1 - pos);
  next = end + 1;
  return LineStatus::kOk;
}

bool starts_with_word(std::string_view line, std::string_view word) {
  return line.size() >= word.size() && std::memcmp(line.data(), word.data(), word.size()) == 0 &&
         (line.size() == word.size() || line[word.size()] == ' ');
}

// ERROR / CLIENT_ERROR ... / SERVER_ERROR ...
bool is_error_line(std::string_view line) {
  switch (line.empty() ? '\0' : line[0]) {
    case 'E':
      return starts_with_word(line, "ERROR");
    case 'C':
      return starts_with_word(line, "CLIENT_ERROR");
    case 'S':
      return starts_with_word(line, "SERVER_ERROR");
    default:
      return false;
  }
}

// Next token of `s` (separated by one or more spaces), advancing `s`; false when none is left.
bool next_token(std::string_view& s, std::string_view& tok) {
  size_t i = 0;
  while (i < s.size() && s[i] == ' ') ++i;
  if (i == s.size()) return false;
  size_t j = i;
  while (j < s.size() && s[j] != ' ') ++j;
  tok = s.substr(i, j - i);
  s.remove_prefix(j);
  return true;
}

bool parse_unsigned(std::string_view s, uint64_t max, uint64_t& v) {
  if (s.empty() || s[0] < '0' || s[0] > '9') return false;
  const char* end = s.data() + s.size();
  auto [ptr, ec] = std::from_chars(s.data(), end, v);
  return ec == std::errc() && ptr == end && v <= max;
}

// Parses "VALUE <key> <flags> <bytes> [<cas>]" (line content without "\r\n").
bool parse_value_line(std::string_view line, std::string_view& key, uint64_t& bytes) {
  std::string_view tok;
  if (!next_token(line, tok) || tok != "VALUE") return false;
  if (!next_token(line, key)) return false;
  uint64_t ignored = 0;
  if (!next_token(line, tok) ||
      !parse_unsigned(tok, std::numeric_limits<uint32_t>::max(), ignored)) {
    return false;
  }
  if (!next_token(line, tok) || !parse_unsigned(tok, kMaxValueBytes, bytes)) return false;
  if (next_token(line, tok)) {
    if (!parse_unsigned(tok, std::numeric_limits<uint64_t>::max(), ignored)) return false;
    if (next_token(line, tok)) return false;
  }
  return true;
}

bool is_value_line(std::string_view line) {
  return line.size() > 6 && line.substr(0, 6) == "VALUE ";
}

inline bool is_digit(char c) {
  return static_cast<unsigned>(static_cast<unsigned char>(c)) - '0' <= 9u;
}

// The common shape of a VALUE line, read straight from the buffer in one pass:
// "VALUE <key> <flags> <bytes>[ <cas>]\r\n" with single spaces, flags and bytes of at most 9
// digits and cas of at most 18 (so no overflow is possible), the key free of LF.
// True: `key`, `bytes` and `next` (the offset after "\n") are what find_line +
// parse_value_line would give. False: not that shape (or incomplete); the caller takes the
// general path, which decides.
inline bool fast_value_line(std::string_view in, size_t pos, std::string_view& key, uint64_t& bytes,
                            size_t& next) {
  const char* p = in.data() + pos;
  const char* const end = in.data() + in.size();
  if (end - p < 13 || std::memcmp(p, "VALUE ", 6) != 0) return false;
  p += 6;
  const char* const key_start = p;
  p = byte_scan::find_space_or_lf(p, end);
  if (p == key_start || p == end || *p != ' ') return false;
  key = std::string_view(key_start, static_cast<size_t>(p - key_start));
  // Flags: 1 to 9 digits, then a space.
  const char* digits = ++p;
  while (p < end && is_digit(*p)) ++p;
  if (p == digits || p - digits > 9 || p == end || *p != ' ') return false;
  // Bytes: 1 to 9 digits.
  digits = ++p;
  uint64_t value = 0;
  while (p < end && is_digit(*p)) {
    value = value * 10 + static_cast<unsigned>(*p - '0');
    ++p;
  }
  if (p == digits || p - digits > 9 || p == end) return false;
  if (*p == ' ') {
    // Cas: 1 to 18 digits.
    digits = ++p;
    while (p < end && is_digit(*p)) ++p;
    if (p == digits || p - digits > 18 || p == end) return false;
  }
  if (end - p < 2 || p[0] != '\r' || p[1] != '\n') return false;
  bytes = value;
  next = static_cast<size_t>(p + 2 - in.data());
  // find_line gives up on longer lines.
  return next - pos <= kMaxReplyLineBytes;
}

ParseResult bad_reply(std::string_view in) {
  return ParseResult::Error(kBadReplyError, in.size(), 0, true);
}

// Whether `line` (without CRLF) is a valid non-error answer of shape `kind`.
bool valid_line(ReplyKind kind, std::string_view line) {
  switch (kind) {
    case ReplyKind::kRetrieval:
    case ReplyKind::kLine:
      return true;
    case ReplyKind::kStorage:
      return line == "STORED" || line == "NOT_STORED" || line == "EXISTS" || line == "NOT_FOUND";
    case ReplyKind::kDelete:
      return line == "DELETED" || line == "NOT_FOUND";
    case ReplyKind::kArith:
      if (line == "NOT_FOUND") return true;
      if (line.empty() || line.size() > 20) return false;
      for (char c : line) {
        if (c < '0' || c > '9') return false;
      }
      return true;
    case ReplyKind::kTouch:
      return line == "TOUCHED" || line == "NOT_FOUND";
    case ReplyKind::kOk:
      return line == "OK";
    case ReplyKind::kVersion:
      return line.starts_with("VERSION ");
    case ReplyKind::kReset:
      return line == "RESET";
    case ReplyKind::kStats:
      return true;
    case ReplyKind::kMetaQuiet:  // scanned by scan_meta_quiet
    case ReplyKind::kMeta:
      // Two capital letters (HD, EN, NF, NS, EX, MN), alone or before flags.
      return line.size() >= 2 && line[0] >= 'A' && line[0] <= 'Z' && line[1] >= 'A' &&
             line[1] <= 'Z' && (line.size() == 2 || line[2] == ' ');
  }
  return false;
}

// "VA <size> <flags>*": the size of the data block that follows; false for another line.
bool meta_value_size(std::string_view line, uint64_t& bytes) {
  if (!line.starts_with("VA ")) return false;
  std::string_view rest = line.substr(3);
  std::string_view tok;
  return next_token(rest, tok) && parse_unsigned(tok, kMaxValueBytes, bytes);
}

// kMetaQuiet: meta replies (or error lines) up to and including "MN". `is_error`: the first
// line is an error line.
ParseResult scan_meta_quiet(std::string_view in, bool* is_error) {
  size_t pos = 0;
  for (;;) {
    std::string_view line;
    size_t next = 0;
    switch (find_line(in, pos, line, next)) {
      case LineStatus::kNeedMore:
        return ParseResult::NeedMore();
      case LineStatus::kBad:
        return bad_reply(in);
      case LineStatus::kOk:
        break;
    }
    if (line == "MN") return ParseResult::Ok(next);
    const bool error = is_error_line(line);
    if (pos == 0 && is_error != nullptr) *is_error = error;
    uint64_t bytes = 0;
    if (!error && meta_value_size(line, bytes)) {
      const size_t end = next + static_cast<size_t>(bytes) + 2;
      if (in.size() < end) return ParseResult::NeedMore(end + 4);
      if (in[end - 2] != '\r' || in[end - 1] != '\n') return bad_reply(in);
      next = end;
    } else if (!error && !valid_line(ReplyKind::kMeta, line)) {
      return bad_reply(in);
    }
    pos = next;
  }
}

}  // namespace

ParseResult scan_reply(std::string_view in, ReplyKind kind, bool* is_error) {
  ReplyScanState state;
  return scan_reply(in, kind, state, is_error);
}

ParseResult scan_reply(std::string_view in, ReplyKind kind, ReplyScanState& state, bool* is_error,
                       std::vector<size_t>* marks) {
  if (is_error != nullptr) *is_error = false;
  if (kind == ReplyKind::kMetaQuiet) [[unlikely]] {
    state = {};
    return scan_meta_quiet(in, is_error);
  }
  std::string_view line;
  size_t pos = 0;
  if ((kind == ReplyKind::kRetrieval || kind == ReplyKind::kStats) && state.pos <= in.size())
    pos = state.pos;
  if (pos == 0 && marks != nullptr) marks->clear();
  state = {};
  size_t next = 0;
  for (;;) {
    std::string_view key;
    uint64_t bytes = 0;
    if (kind == ReplyKind::kRetrieval && fast_value_line(in, pos, key, bytes, next)) {
      // The common case: a well-formed VALUE line, no need to split it into a line first.
    } else {
      switch (find_line(in, pos, line, next)) {
        case LineStatus::kNeedMore:
          state.pos = pos;
          return ParseResult::NeedMore(pos == 0 ? 0 : pos + 5);
        case LineStatus::kBad:
          return bad_reply(in);
        case LineStatus::kOk:
          break;
      }
      if (kind == ReplyKind::kStats) {
        // Lines up to END; an error line only as the first line (a STAT value may read "ERROR").
        if (pos == 0 && is_error_line(line)) {
          if (is_error != nullptr) *is_error = true;
          return ParseResult::Ok(next);
        }
        if (line == "END") return ParseResult::Ok(next);
        pos = next;
        continue;
      }
      if (is_error_line(line)) {
        if (is_error != nullptr) *is_error = true;
        return ParseResult::Ok(next);
      }
      if (kind == ReplyKind::kMeta && meta_value_size(line, bytes)) {
        const size_t end = next + static_cast<size_t>(bytes) + 2;
        if (in.size() < end) return ParseResult::NeedMore(end);
        if (in[end - 2] != '\r' || in[end - 1] != '\n') return bad_reply(in);
        return ParseResult::Ok(end);
      }
      if (kind != ReplyKind::kRetrieval) {
        // A line that is no answer to the command: the backend is out of sync (or not memcached).
        return valid_line(kind, line) ? ParseResult::Ok(next) : bad_reply(in);
      }
      if (line == "END") return ParseResult::Ok(next);
      if (!is_value_line(line) || !parse_value_line(line, key, bytes)) return bad_reply(in);
    }
    const size_t item_end = next + static_cast<size_t>(bytes) + 2;
    // At least "END\r\n" follows the item.
    if (in.size() < item_end) {
      state.pos = pos;
      return ParseResult::NeedMore(item_end + 5);
    }
    if (in[item_end - 2] != '\r' || in[item_end - 1] != '\n') return bad_reply(in);
    if (marks != nullptr) {
      marks->push_back(static_cast<size_t>(key.data() - in.data()));
      marks->push_back(key.size());
      marks->push_back(item_end);
    }
    pos = item_end;
  }
}

bool ValueIterator::next(ValueItem& item) {
  std::string_view line;
  size_t next = 0;
  std::string_view key;
  uint64_t bytes = 0;
  if (rest_.empty()) return false;
  if (!fast_value_line(rest_, 0, key, bytes, next) &&
      (find_line(rest_, 0, line, next) != LineStatus::kOk || !is_value_line(line) ||
       !parse_value_line(line, key, bytes))) {
    rest_ = {};
    return false;
  }
  const size_t item_end = next + static_cast<size_t>(bytes) + 2;
  if (rest_.size() < item_end || rest_[item_end - 2] != '\r' || rest_[item_end - 1] != '\n') {
    rest_ = {};
    return false;
  }
  item.key = key;
  item.bytes = rest_.substr(0, item_end);
  rest_.remove_prefix(item_end);
  return true;
}

}  // namespace dproxy::protocol::memcache
