#pragma once
// The lexical side of the memcached ASCII request parser: the command line's tokens, its
// numbers and the command names. Included by request_parser.cpp only; the unnamed namespace
// keeps internal linkage, so the parser compiles (and inlines) exactly as with these in its
// own file.

#include <charconv>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string_view>

#include "protocol/memcache/command.h"

namespace dproxy::protocol::memcache {
namespace {  // NOLINT(google-build-namespaces): see above

// memcached refuses data block lengths above INT_MAX - 2 as a bad command line.
constexpr uint64_t kMaxDataBytes = static_cast<uint64_t>(std::numeric_limits<int32_t>::max()) - 2;

constexpr std::string_view kNoreply = "noreply";

// Splits a command line into tokens separated by one or more spaces.
class Tokenizer {
 public:
  explicit Tokenizer(std::string_view line) : p_(line.data()), end_(line.data() + line.size()) {}

  // Stores the next token in `tok`; false when the line holds no more tokens.
  bool next(std::string_view& tok) {
    while (p_ != end_ && *p_ == ' ') ++p_;
    if (p_ == end_) return false;
    const char* start = p_;
    while (p_ != end_ && *p_ != ' ') ++p_;
    tok = std::string_view(start, static_cast<size_t>(p_ - start));
    return true;
  }

  // The unread rest of the line.
  const char* pos() const { return p_; }
  const char* end() const { return end_; }

 private:
  const char* p_;
  const char* end_;
};

// The tokens of a fixed-arity command line. More than kMax tokens: `overflow`.
struct Tokens {
  static constexpr size_t kMax = 8;
  std::string_view tok[kMax];
  size_t count = 0;
  bool overflow = false;

  // tok[0] = the command name, already taken from `tz`; the rest of the line follows.
  Tokens(std::string_view name, Tokenizer& tz) {
    tok[count++] = name;
    std::string_view t;
    while (tz.next(t)) {
      if (count == kMax) {
        overflow = true;
        return;
      }
      tok[count++] = t;
    }
  }
  // Bytes from the end of token i-1 to the end of token i (token i with its leading spaces).
  std::string_view with_leading_spaces(size_t i) const {
    const char* begin = tok[i - 1].data() + tok[i - 1].size();
    return std::string_view(begin, static_cast<size_t>(tok[i].data() + tok[i].size() - begin));
  }
};

// Decimal digits after an optional '+' (as strtoul), value <= max.
bool parse_unsigned(std::string_view s, uint64_t max, uint64_t& v) {
  if (!s.empty() && s[0] == '+') s.remove_prefix(1);
  if (s.empty() || s[0] < '0' || s[0] > '9') return false;
  const char* end = s.data() + s.size();
  auto [ptr, ec] = std::from_chars(s.data(), end, v);
  return ec == std::errc() && ptr == end && v <= max;
}

// Optional '-' or '+' then decimal digits, fitting an int32 (memcached exptime / delay).
bool parse_int32(std::string_view s) {
  if (s.size() > 1 && s[0] == '+' && s[1] != '-') s.remove_prefix(1);
  const size_t sign = (!s.empty() && s[0] == '-') ? 1 : 0;
  if (s.size() <= sign || s[sign] < '0' || s[sign] > '9') return false;
  int32_t v = 0;
  const char* end = s.data() + s.size();
  auto [ptr, ec] = std::from_chars(s.data(), end, v);
  return ec == std::errc() && ptr == end;
}

bool parse_u32(std::string_view s) {
  uint64_t v = 0;
  return parse_unsigned(s, std::numeric_limits<uint32_t>::max(), v);
}

bool parse_u64(std::string_view s) {
  uint64_t v = 0;
  return parse_unsigned(s, std::numeric_limits<uint64_t>::max(), v);
}

struct CommandName {
  std::string_view name;
  Command command;
};

// Every command memcached knows, the most frequent first.
constexpr CommandName kCommands[] = {
    {"get", Command::kGet},
    {"set", Command::kSet},
    {"gets", Command::kGets},
    {"delete", Command::kDelete},
    {"incr", Command::kIncr},
    {"decr", Command::kDecr},
    {"add", Command::kAdd},
    {"cas", Command::kCas},
    {"touch", Command::kTouch},
    {"gat", Command::kGat},
    {"gats", Command::kGats},
    {"replace", Command::kReplace},
    {"append", Command::kAppend},
    {"prepend", Command::kPrepend},
    {"version", Command::kVersion},
    {"quit", Command::kQuit},
    {"flush_all", Command::kFlushAll},
    {"verbosity", Command::kVerbosity},
    {"mg", Command::kMetaGet},
    {"ms", Command::kMetaSet},
    {"md", Command::kMetaDelete},
    {"ma", Command::kMetaArith},
    {"mn", Command::kMetaNoop},
    {"me", Command::kMetaDebug},
    {"stats", Command::kStats},
    {"slabs", Command::kUnsupported},
    {"lru", Command::kUnsupported},
    {"lru_crawler", Command::kUnsupported},
    {"watch", Command::kUnsupported},
    {"shutdown", Command::kUnsupported},
    {"cache_memlimit", Command::kUnsupported},
    {"misbehave", Command::kUnsupported},
    {"extstore", Command::kUnsupported},
    {"debugtime", Command::kUnsupported},
};

// Maps a command name (case-sensitive) to its Command; false for a name memcached does not know.
bool lookup_command(std::string_view n, Command& c) {
  for (const CommandName& e : kCommands) {
    if (e.name.size() == n.size() && std::memcmp(e.name.data(), n.data(), n.size()) == 0) {
      c = e.command;
      return true;
    }
  }
  return false;
}

}  // namespace
}  // namespace dproxy::protocol::memcache
