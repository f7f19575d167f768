// Incremental RESP2 request parser. See request_parser.h for the contract.

#include "protocol/resp/request_parser.h"

#include <array>
#include <cstring>

#include "protocol/resp/reply_parser.h"

namespace dproxy::protocol::resp {
namespace errors {
namespace {

constexpr std::string_view kExpectedDollarHead = "-ERR Protocol error: expected '$', got '";
constexpr std::string_view kExpectedDollarTail = "'\r\n";
constexpr size_t kExpectedDollarSize = kExpectedDollarHead.size() + 1 + kExpectedDollarTail.size();

using ExpectedDollarTable = std::array<std::array<char, kExpectedDollarSize>, 256>;

constexpr ExpectedDollarTable make_expected_dollar_table() {
  ExpectedDollarTable t{};
  for (size_t b = 0; b < 256; ++b) {
    size_t i = 0;
    for (char ch : kExpectedDollarHead) t[b][i++] = ch;
    const char got = static_cast<char>(static_cast<unsigned char>(b));
    t[b][i++] = (got == '\r' || got == '\n') ? ' ' : got;
    for (char ch : kExpectedDollarTail) t[b][i++] = ch;
  }
  return t;
}

constexpr ExpectedDollarTable kExpectedDollarTable = make_expected_dollar_table();

}  // namespace

std::string_view expected_dollar(char got) {
  const auto& text = kExpectedDollarTable[static_cast<unsigned char>(got)];
  return std::string_view(text.data(), text.size());
}

}  // namespace errors

namespace {

using detail::LineStatus;
using detail::read_integer_line;

ParseResult close_error(std::string_view error, size_t consumed) {
  return ParseResult::Error(error, consumed, 0, true);
}

// The whitespace of C isspace() in the "C" locale: what Redis skips between inline arguments.
bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Builds the inline arguments of one line. An argument that is a contiguous run of the line's
// bytes is a view into the line; one that is not (escapes, quotes inside it) is copied into
// `scratch`, which is sized once per line so that earlier copies never move.
class InlineSplitter {
 public:
  InlineSplitter(std::string_view line, std::string& scratch) : line_(line), scratch_(scratch) {}

  // Splits the line as Redis's sdssplitargs() does; false on unbalanced quotes (or a closing
  // quote followed by something else than a space).
  bool split(std::vector<std::string_view>& args);

 private:
  // The argument being built.
  void start(const char* p) {
    begin_ = p;
    len_ = 0;
    copied_ = false;
  }
  // Appends the input byte at `p`.
  void add_source(const char* p) {
    if (!copied_) {
      if (len_ == 0) begin_ = p;
      if (begin_ + len_ == p) {
        ++len_;
        return;
      }
      to_scratch();
    }
    scratch_[used_++] = *p;
    ++len_;
  }
  // Appends a byte that is not in the input as such (an escape's value).
  void add_byte(char c) {
    if (!copied_) to_scratch();
    scratch_[used_++] = c;
    ++len_;
  }
  void to_scratch() {
    if (!scratch_ready_) {
      if (scratch_.size() < line_.size()) scratch_.resize(line_.size());
      scratch_ready_ = true;
    }
    char* dst = scratch_.data() + used_;
    if (len_ > 0) std::memcpy(dst, begin_, len_);
    begin_ = dst;
    used_ += len_;
    copied_ = true;
  }
  std::string_view arg() const { return std::string_view(begin_, len_); }

  std::string_view line_;
  std::string& scratch_;
  bool scratch_ready_ = false;
  size_t used_ = 0;
  const char* begin_ = nullptr;
  size_t len_ = 0;
  bool copied_ = false;
};

// The byte a backslash escape inside double quotes stands for (redis-cli's sdssplitargs):
// \n \r \t \b \a, any other character stands for itself.
inline char unescape(char c) {
  switch (c) {
    case 'n':
      return '\n';
    case 'r':
      return '\r';
    case 't':
      return '\t';
    case 'b':
      return '\b';
    case 'a':
      return '\a';
    default:
      return c;
  }
}

bool InlineSplitter::split(std::vector<std::string_view>& args) {
  const char* p = line_.data();
  const char* end = p + line_.size();
  // Redis splits a C string: a NUL byte ends the line.
  if (const void* nul = std::memchr(p, '\0', line_.size())) end = static_cast<const char*>(nul);
  for (;;) {
    while (p != end && is_space(*p)) ++p;
    if (p == end) return true;
    start(p);
    bool in_double = false;
    bool in_single = false;
    for (bool done = false; !done;) {
      if (in_double) {
        if (p == end) return false;  // unterminated quotes
        if (*p == '\\' && end - p >= 4 && p[1] == 'x' && hex_value(p[2]) >= 0 &&
            hex_value(p[3]) >= 0) {
          add_byte(static_cast<char>(hex_value(p[2]) * 16 + hex_value(p[3])));
          p += 4;
        } else if (*p == '\\' && end - p >= 2) {
          add_byte(unescape(p[1]));
          p += 2;
        } else if (*p == '"') {
          // The closing quote must be followed by a space or nothing at all.
          if (end - p >= 2 && !is_space(p[1])) return false;
          ++p;
          done = true;
        } else {
          add_source(p++);
        }
      } else if (in_single) {
        if (p == end) return false;
        if (*p == '\\' && end - p >= 2 && p[1] == '\'') {
          add_byte('\'');
          p += 2;
        } else if (*p == '\'') {
          if (end - p >= 2 && !is_space(p[1])) return false;
          ++p;
          done = true;
        } else {
          add_source(p++);
        }
      } else if (p == end) {
        done = true;
      } else {
        switch (*p) {
          case ' ':
          case '\n':
          case '\r':
          case '\t':
            ++p;
            done = true;
            break;
          case '"':
            in_double = true;
            ++p;
            break;
          case '\'':
            in_single = true;
            ++p;
            break;
          default:
            add_source(p++);
            break;
        }
      }
    }
    args.push_back(arg());
  }
}

}  // namespace

void RequestParser::reset() {
  resume_ = Resume::kNone;
  resume_pos_ = 0;
  args_pos_ = 0;
  resume_args_ = 0;
  nargs_ = 0;
  discard_args_ = 0;
  discard_bytes_ = 0;
}

ParseResult RequestParser::parse(std::string_view in, Request& out) {
  out.reset();
  if (discarding()) return discard(in, out);
  if (in.empty()) return ParseResult::NeedMore();
  const bool multibulk = in[0] == '*';
  // A caller that breaks the "same bytes plus more" rule gets a fresh parse, as far as that
  // can be seen.
  if (resume_ != Resume::kNone &&
      (in.size() < resume_pos_ || multibulk != (resume_ == Resume::kMultibulk))) {
    resume_ = Resume::kNone;
  }
  return multibulk ? parse_multibulk(in, out) : parse_inline(in, out);
}

// *<count>\r\n then <count> times $<len>\r\n<len bytes>\r\n. A count <= 0 is an empty command
// (Redis ignores it). A fresh parse fills out.args on the way; a resumed one walks the frame
// again once it is complete (the earlier views may point into a buffer that has moved).
ParseResult RequestParser::parse_multibulk(std::string_view in, Request& out) {
  size_t pos = 0;
  uint64_t i = 0;
  uint64_t count = 0;
  const bool fill = resume_ != Resume::kMultibulk;
  if (fill) {
    int64_t n = 0;
    size_t next = 0;
    switch (read_integer_line(in, 1, n, next)) {
      case LineStatus::kNeedMore:
        return ParseResult::NeedMore();
      case LineStatus::kBad:
        return close_error(errors::kInvalidMultibulkLength, next);
      case LineStatus::kOk:
        break;
    }
    if (n <= 0) {
      out.frame = in.substr(0, next);
      return ParseResult::Ok(next);
    }
    if (static_cast<uint64_t>(n) > limits_.max_args) {
      return close_error(errors::kInvalidMultibulkLength, next);
    }
    count = static_cast<uint64_t>(n);
    pos = next;
    args_pos_ = next;
  } else {
    pos = resume_pos_;
    i = resume_args_;
    count = nargs_;
  }
  resume_ = Resume::kNone;
  const auto need_more = [&](size_t hint) {
    resume_ = Resume::kMultibulk;
    resume_pos_ = pos;
    resume_args_ = i;
    nargs_ = count;
    out.args.clear();
    return ParseResult::NeedMore(hint);
  };
  for (; i < count; ++i) {
    if (pos == in.size()) return need_more(0);
    if (in[pos] != '$') {
      out.args.clear();
      return close_error(errors::expected_dollar(in[pos]), pos + 1);
    }
    int64_t len = 0;
    size_t next = 0;
    switch (read_integer_line(in, pos + 1, len, next)) {
      case LineStatus::kNeedMore:
        return need_more(0);
      case LineStatus::kBad:
        out.args.clear();
        return close_error(errors::kInvalidBulkLength, next);
      case LineStatus::kOk:
        break;
    }
    if (len < 0) {
      out.args.clear();
      return close_error(errors::kInvalidBulkLength, next);
    }
    const auto ulen = static_cast<uint64_t>(len);
    if (ulen > limits_.max_bulk_bytes) return too_large(in, out, next, ulen, i, count);
    const uint64_t end = next + ulen + 2;
    if (in.size() < end) return need_more(static_cast<size_t>(end));
    if (in[end - 2] != '\r' || in[end - 1] != '\n') {
      out.args.clear();
      return close_error(errors::kBadBulkEnd, end);
    }
    if (fill) out.args.push_back(in.substr(next, ulen));
    pos = end;
  }
  if (!fill) fill_args(in, out);
  out.frame = in.substr(0, pos);
  out.name = out.args[0];
  return ParseResult::Ok(pos);
}

// Refuses the bulk `index` of `count` whose header ends at `header_end`: the caller skips its
// data, the parser discards the bulks after it.
ParseResult RequestParser::too_large(std::string_view in, Request& out, size_t header_end,
                                     uint64_t len, uint64_t index, uint64_t count) {
  std::string_view name;
  if (index > 0) {
    if (!out.args.empty()) {
      name = out.args[0];
    } else {
      // Resumed: args[0] was validated by an earlier call.
      int64_t n = 0;
      size_t next = 0;
      read_integer_line(in, args_pos_ + 1, n, next);
      name = in.substr(next, static_cast<size_t>(n));
    }
  }
  out.args.clear();
  out.name = name;
  resume_ = Resume::kNone;
  discard_args_ = count - index - 1;
  discard_bytes_ = 0;
  return ParseResult::Error(errors::kValueTooLarge, header_end, static_cast<size_t>(len + 2));
}

// Fills out.args from a complete multibulk frame validated by earlier calls.
void RequestParser::fill_args(std::string_view in, Request& out) const {
  if (out.args.capacity() < nargs_) out.args.reserve(nargs_);
  size_t pos = args_pos_;
  for (uint64_t i = 0; i < nargs_; ++i) {
    int64_t len = 0;
    size_t next = 0;
    read_integer_line(in, pos + 1, len, next);
    out.args.push_back(in.substr(next, static_cast<size_t>(len)));
    pos = next + static_cast<size_t>(len) + 2;
  }
}

// Eats the rest of a refused command: whole bulks (header, data, CRLF; the data is neither kept
// nor checked) as far as they are buffered, as an Ok with no args. A malformed bulk header is a
// protocol error as usual, reported at the start of `in` (the bytes before it go first).
ParseResult RequestParser::discard(std::string_view in, Request& out) {
  size_t pos = 0;
  for (;;) {
    if (discard_bytes_ > 0) {
      const size_t avail = in.size() - pos;
      const size_t n = discard_bytes_ < avail ? static_cast<size_t>(discard_bytes_) : avail;
      pos += n;
      discard_bytes_ -= n;
      if (discard_bytes_ > 0) break;
    }
    if (discard_args_ == 0 || pos == in.size()) break;
    std::string_view error;
    int64_t len = 0;
    size_t next = 0;
    if (in[pos] != '$') {
      error = errors::expected_dollar(in[pos]);
      next = pos + 1;
    } else {
      const LineStatus st = read_integer_line(in, pos + 1, len, next);
      if (st == LineStatus::kNeedMore) break;
      if (st == LineStatus::kBad || len < 0) error = errors::kInvalidBulkLength;
    }
    if (!error.empty()) {
      if (pos > 0) break;
      reset();
      return close_error(error, next);
    }
    --discard_args_;
    discard_bytes_ = static_cast<uint64_t>(len) + 2;
    pos = next;
  }
  if (pos == 0) return ParseResult::NeedMore();
  out.frame = in.substr(0, pos);
  return ParseResult::Ok(pos);
}

// A line up to "\n" (a "\r" before it is stripped), split into arguments as Redis does. The
// "\n" must come within max_inline_bytes + 1 bytes, whatever the reads.
ParseResult RequestParser::parse_inline(std::string_view in, Request& out) {
  const size_t max = limits_.max_inline_bytes;
  const size_t window = in.size() <= max ? in.size() : max + 1;
  const size_t from = resume_ == Resume::kInline ? resume_pos_ : 0;
  const void* nl = from < window ? std::memchr(in.data() + from, '\n', window - from) : nullptr;
  if (nl == nullptr) {
    if (in.size() > max) {
      resume_ = Resume::kNone;
      return close_error(errors::kTooBigInline, max + 1);
    }
    resume_ = Resume::kInline;
    resume_pos_ = in.size();
    return ParseResult::NeedMore();
  }
  resume_ = Resume::kNone;
  const size_t line_len = static_cast<size_t>(static_cast<const char*>(nl) - in.data()) + 1;
  size_t content = line_len - 1;
  if (content > 0 && in[content - 1] == '\r') --content;
  InlineSplitter splitter(in.substr(0, content), scratch_);
  if (!splitter.split(out.args)) {
    out.args.clear();
    return close_error(errors::kUnbalancedQuotes, line_len);
  }
  out.frame = in.substr(0, line_len);
  if (!out.args.empty()) out.name = out.args[0];
  return ParseResult::Ok(line_len);
}

}  // namespace dproxy::protocol::resp
