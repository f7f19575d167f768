// Incremental memcached ASCII request parser. See request_parser.h for the contract.

#include "protocol/memcache/request_parser.h"

#include <charconv>
#include <cstdint>
#include <cstring>
#include <limits>

#include "protocol/byte_scan.h"
#include "protocol/memcache/meta.h"
#include "protocol/memcache/request_lexer.h"

namespace dproxy::protocol::memcache {
namespace {

// One parse step over the line in[0, line_len) (line_len includes the "\n").
class LineParser {
 public:
  LineParser(const RequestLimits& limits, std::string_view in, size_t line_len, Request& out)
      : limits_(limits), in_(in), line_len_(line_len), out_(out) {}

  // Parses the line; on an error, sets kFlagNoreply when the request carried noreply.
  ParseResult parse(std::string_view line);

 private:
  ParseResult parse_line(std::string_view line);
  ParseResult retrieval(Tokenizer& tz, bool with_exptime);
  ParseResult storage(const Tokens& t, bool is_cas);
  ParseResult del(const Tokens& t);
  ParseResult arith(const Tokens& t);
  ParseResult touch(const Tokens& t);
  ParseResult flush_all(const Tokens& t);
  ParseResult verbosity(const Tokens& t);
  ParseResult stats(const Tokens& t);
  ParseResult unknown(Tokenizer& tz, std::string_view name);
  ParseResult no_args(uint32_t flags);
  ParseResult unsupported(const Tokens& t);
  ParseResult meta(Command cmd, Tokenizer& tz);
  // The meta request's routing key: `token`, or its decoded bytes when flagged b (a token that
  // does not decode routes as sent: every server gives the same error).
  void meta_key(std::string_view token, bool base64);
  // Completes a frame that carries `bytes` of data after the line.
  ParseResult with_data(uint64_t bytes);

  // memcached checks a key's length only: any byte but ' ' (and NUL, which ends the line)
  // may be part of it.
  bool key_too_long(std::string_view key) const { return key.size() > limits_.max_key_bytes; }
  ParseResult line_error(std::string_view err, size_t skip = 0) const {
    return ParseResult::Error(err, line_len_, skip);
  }
  ParseResult ok_line() {
    out_.frame = in_.substr(0, line_len_);
    return ParseResult::Ok(line_len_);
  }
  // Sets kFlagNoreply and noreply_token if t.tok[i] is "noreply"; false otherwise.
  bool take_noreply(const Tokens& t, size_t i) {
    if (t.tok[i] != kNoreply) return false;
    out_.flags |= kFlagNoreply;
    out_.noreply_token = t.with_leading_spaces(i);
    return true;
  }

  const RequestLimits& limits_;
  std::string_view in_;
  size_t line_len_;
  Request& out_;
};

// The commands that take memcached's "noreply" as their last token.
bool takes_noreply(Command c) {
  switch (c) {
    case Command::kSet:
    case Command::kAdd:
    case Command::kReplace:
    case Command::kAppend:
    case Command::kPrepend:
    case Command::kCas:
    case Command::kDelete:
    case Command::kIncr:
    case Command::kDecr:
    case Command::kTouch:
    case Command::kFlushAll:
    case Command::kVerbosity:
      return true;
    default:
      return false;
  }
}

// True when the last of at least two tokens of `line` is "noreply".
bool ends_with_noreply(std::string_view line) {
  while (!line.empty() && line.back() == ' ') line.remove_suffix(1);
  if (line.size() <= kNoreply.size() || line.substr(line.size() - kNoreply.size()) != kNoreply)
    return false;
  return line[line.size() - kNoreply.size() - 1] == ' ';
}

ParseResult LineParser::parse(std::string_view line) {
  ParseResult r = parse_line(line);
  // A refused request that asked for no reply gets none, whatever is wrong with it (memcached
  // too stays silent once it has seen the noreply token): kFlagNoreply tells the caller.
  if (r.status == ParseStatus::kError && !out_.has(kFlagNoreply) &&
      takes_noreply(static_cast<Command>(out_.command)) && !out_.name.empty() &&
      ends_with_noreply(line)) {
    out_.flags |= kFlagNoreply;
  }
  return r;
}

ParseResult LineParser::parse_line(std::string_view line) {
  Tokenizer tz(line);
  std::string_view name;
  Command cmd = Command::kUnsupported;
  if (!tz.next(name)) return line_error(errors::kError);
  if (!lookup_command(name, cmd)) return unknown(tz, name);
  out_.name = name;
  out_.command = static_cast<uint16_t>(cmd);

  switch (cmd) {
    case Command::kGet:
    case Command::kGets:
      return retrieval(tz, false);
    case Command::kGat:
    case Command::kGats:
      return retrieval(tz, true);
    case Command::kMetaGet:
    case Command::kMetaSet:
    case Command::kMetaDelete:
    case Command::kMetaArith:
    case Command::kMetaNoop:
    case Command::kMetaDebug:
      return meta(cmd, tz);
    default:
      break;
  }

  Tokens t(name, tz);
  // Too many tokens for any fixed-arity command: memcached's token count checks say "ERROR".
  // version and quit ignore their tokens; stats and unsupported commands are still framed.
  if (t.overflow && cmd != Command::kUnsupported && cmd != Command::kStats &&
      cmd != Command::kVersion && cmd != Command::kQuit) {
    return line_error(errors::kError);
  }
  // t.tok[0] is the command name; t.count includes it.
  switch (cmd) {
    case Command::kSet:
    case Command::kAdd:
    case Command::kReplace:
    case Command::kAppend:
    case Command::kPrepend:
      return storage(t, false);
    case Command::kCas:
      return storage(t, true);
    case Command::kDelete:
      return del(t);
    case Command::kIncr:
    case Command::kDecr:
      return arith(t);
    case Command::kTouch:
      return touch(t);
    case Command::kVersion:
      return no_args(kFlagLocal);
    case Command::kQuit:
      return no_args(kFlagQuit | kFlagLocal);
    case Command::kFlushAll:
      return flush_all(t);
    case Command::kVerbosity:
      return verbosity(t);
    case Command::kStats:
      return stats(t);
    default:
      return unsupported(t);
  }
}

// get|gets <key>+ ; gat|gats <exptime> <key>+
ParseResult LineParser::retrieval(Tokenizer& tz, bool with_exptime) {
  std::string_view tok;
  if (with_exptime) {
    if (!tz.next(tok)) return line_error(errors::kError);
    if (!parse_int32(tok)) return line_error(errors::kBadExptime);
  }
  // The keys, read eight bytes at a time: a key ends at a space (or the line's end). The scan
  // stops at control characters too (rare: they are part of the key), then goes on.
  const char* p = tz.pos();
  const char* const end = tz.end();
  for (;;) {
    while (p < end && *p == ' ') ++p;
    if (p == end) break;
    const char* const start = p;
    p = byte_scan::find_space_or_control(p, end);
    while (p < end && *p != ' ') p = byte_scan::find_space_or_control(p + 1, end);
    tok = std::string_view(start, static_cast<size_t>(p - start));
    if (key_too_long(tok)) return line_error(errors::kBadFormat);
    out_.keys.push_back(tok);
  }
  // memcached checks the token count first: get without keys is "ERROR"; gat <exptime>
  // without keys is an empty hit list.
  if (out_.keys.empty()) return line_error(with_exptime ? errors::kEmptyGat : errors::kError);
  out_.flags = kFlagRead | kFlagMultiKey;
  return ok_line();
}

// set|add|replace|append|prepend <key> <flags> <exptime> <bytes> [noreply]
// cas <key> <flags> <exptime> <bytes> <cas unique> [noreply]
ParseResult LineParser::storage(const Tokens& t, bool is_cas) {
  const size_t base = is_cas ? 6 : 5;
  if (t.count != base && t.count != base + 1) return line_error(errors::kError);
  uint64_t bytes = 0;
  const bool bytes_ok = parse_unsigned(t.tok[4], kMaxDataBytes, bytes);
  // An over-long key gets memcached's reply, but unlike memcached dproxy swallows the data
  // block when <bytes> is valid: a value is never run as a command, and a noreply request
  // stays silent.
  if (key_too_long(t.tok[1])) return line_error(errors::kBadFormat, bytes_ok ? bytes + 2 : 0);
  if (!bytes_ok || !parse_u32(t.tok[2]) || !parse_int32(t.tok[3]) ||
      (is_cas && !parse_u64(t.tok[5]))) {
    return line_error(errors::kBadFormat);
  }
  // A last token other than "noreply" is ignored, as memcached does (and forwarded).
  if (t.count == base + 1) take_noreply(t, base);
  out_.keys.push_back(t.tok[1]);
  if (bytes > limits_.max_value_bytes) return line_error(errors::kTooLarge, bytes + 2);
  out_.flags |= kFlagWrite | kFlagHasData;
  return with_data(bytes);
}

ParseResult LineParser::with_data(uint64_t bytes) {
  const size_t total = line_len_ + static_cast<size_t>(bytes) + 2;
  if (in_.size() < total) return ParseResult::NeedMore(total);
  if (in_[total - 2] != '\r' || in_[total - 1] != '\n') {
    return ParseResult::Error(errors::kBadDataChunk, total, 0, true);
  }
  out_.frame = in_.substr(0, total);
  return ParseResult::Ok(total);
}

// delete <key> [0] [noreply]
ParseResult LineParser::del(const Tokens& t) {
  if (t.count < 2 || t.count > 4) return line_error(errors::kError);
  if (t.count > 2) {
    const bool hold_is_zero = t.tok[2] == "0";
    const bool noreply = take_noreply(t, t.count - 1);
    const bool valid = t.count == 3 ? (hold_is_zero || noreply) : (hold_is_zero && noreply);
    if (!valid) return line_error(errors::kDeleteUsage);
  }
  if (key_too_long(t.tok[1])) return line_error(errors::kBadFormat);
  out_.keys.push_back(t.tok[1]);
  out_.flags |= kFlagWrite;
  return ok_line();
}

// incr|decr <key> <delta> [noreply]
ParseResult LineParser::arith(const Tokens& t) {
  if (t.count != 3 && t.count != 4) return line_error(errors::kError);
  if (key_too_long(t.tok[1])) return line_error(errors::kBadFormat);
  if (!parse_u64(t.tok[2])) return line_error(errors::kBadDelta);
  if (t.count == 4) take_noreply(t, 3);  // any other last token is ignored (memcached)
  out_.keys.push_back(t.tok[1]);
  out_.flags |= kFlagWrite;
  return ok_line();
}

// touch <key> <exptime> [noreply]
ParseResult LineParser::touch(const Tokens& t) {
  if (t.count != 3 && t.count != 4) return line_error(errors::kError);
  if (key_too_long(t.tok[1])) return line_error(errors::kBadFormat);
  if (!parse_int32(t.tok[2])) return line_error(errors::kBadExptime);
  if (t.count == 4) take_noreply(t, 3);  // any other last token is ignored (memcached)
  out_.keys.push_back(t.tok[1]);
  out_.flags |= kFlagWrite;
  return ok_line();
}

// flush_all [delay] [noreply]
// memcached reads the delay from the first argument whenever there is one besides noreply, and
// ignores a second one ("flush_all 1 2" is OK).
ParseResult LineParser::flush_all(const Tokens& t) {
  if (t.count > 3) return line_error(errors::kError);
  const bool noreply = t.count > 1 && take_noreply(t, t.count - 1);
  if (t.count != (noreply ? 2u : 1u) && !parse_int32(t.tok[1])) {
    return line_error(errors::kBadExptime);
  }
  out_.flags |= kFlagBroadcast | kFlagWrite;
  return ok_line();
}

// verbosity <level> [noreply]
ParseResult LineParser::verbosity(const Tokens& t) {
  if (t.count != 2 && t.count != 3) return line_error(errors::kError);
  if (t.count == 3) take_noreply(t, 2);  // any other last token is ignored (memcached)
  if (!parse_u32(t.tok[1])) return line_error(errors::kBadFormat);
  out_.flags |= kFlagLocal;
  return ok_line();
}

// version, quit: memcached ignores any tokens after the name.
ParseResult LineParser::no_args(uint32_t flags) {
  out_.flags = flags;
  return ok_line();
}

// stats [<group> ...]: plain "stats" is answered by dproxy (its own figures); the groups are
// sent to every server (concatenated, or reset / detail on|off answered once by all).
ParseResult LineParser::stats(const Tokens& t) {
  if (t.count == 1) return no_args(kFlagLocal);
  const std::string_view sub = t.tok[1];
  Command c = Command::kStatsGroup;
  if (sub == "reset") {
    c = Command::kStatsReset;
  } else if (sub == "detail") {
    const std::string_view arg = t.count > 2 ? t.tok[2] : std::string_view();
    if (arg == "on" || arg == "off") {
      c = Command::kStatsDetail;
    } else if (arg != "dump") {
      return line_error(errors::kStatsDetailUsage);
    }
  } else if (sub != "settings" && sub != "items" && sub != "slabs" && sub != "sizes" &&
             sub != "conns" && sub != "cachedump") {
    return line_error(errors::kError);
  }
  out_.command = static_cast<uint16_t>(c);
  out_.flags |= kFlagBroadcast;
  return ok_line();
}

// A command memcached does not know: "ERROR", except that memcached closes the connection on
// the line of a browser (an unknown command whose last token, the 23rd if there are more,
// starts with "HTTP/"). memcached dispatches names starting g s a c i d t, and two-letter
// names starting m, before that check: those always get "ERROR", as do one-letter names.
ParseResult LineParser::unknown(Tokenizer& tz, std::string_view name) {
  if (name.size() < 2) return line_error(errors::kError);
  switch (name[0]) {
    case 'g':
    case 's':
    case 'a':
    case 'c':
    case 'i':
    case 'd':
    case 't':
      return line_error(errors::kError);
    case 'm':
      if (name.size() == 2) return line_error(errors::kError);
      break;
    default:
      break;
  }
  std::string_view last = name;
  std::string_view tok;
  for (size_t n = 1; n < 23 && tz.next(tok); ++n) last = tok;
  if (last.starts_with("HTTP/")) return ParseResult::Error(errors::kCloseHttp, line_len_, 0, true);
  return line_error(errors::kError);
}

// A known command dproxy refuses. `ms <key> <datalen> ...` carries a data block that is framed
// too, so the stream stays in sync; with an unparseable datalen only the line is framed.
ParseResult LineParser::unsupported(const Tokens& t) {
  out_.flags = kFlagRejected;
  uint64_t bytes = 0;
  if (out_.name == "ms" && t.count >= 3 && parse_unsigned(t.tok[2], kMaxDataBytes, bytes)) {
    if (bytes > limits_.max_value_bytes) return line_error(errors::kTooLarge, bytes + 2);
    return with_data(bytes);
  }
  return ok_line();
}

// ms's data length as memcached reads it (strtol into an int32, then 0 <= length <= INT_MAX - 2):
// "+2" and "-0" are valid.
bool meta_data_length(std::string_view s, uint64_t& v) {
  if (!parse_int32(s)) return false;
  if (s[0] == '-') {
    for (char c : s.substr(1)) {
      if (c != '0') return false;
    }
    v = 0;
    return true;
  }
  return parse_unsigned(s, kMaxDataBytes, v);
}

void LineParser::meta_key(std::string_view token, bool base64) {
  if (base64 && !key_too_long(token) && meta::base64_decode(token, out_.decoded_key)) {
    out_.keys.push_back(out_.decoded_key);
  } else {
    out_.keys.push_back(token);
  }
}

// mg|md|ma|me <key> <flag>* ; ms <key> <datalen> <flag>* ; mn
// The request is forwarded as sent (the server checks the flags and gives its own errors):
// only what memcached refuses before it reads a data block is answered here, so that the
// request and the server's reply stay one frame and one reply.
ParseResult LineParser::meta(Command cmd, Tokenizer& tz) {
  if (cmd == Command::kMetaNoop) {  // memcached ignores anything after "mn"
    out_.flags = kFlagLocal;
    return ok_line();
  }
  std::string_view key;
  if (!tz.next(key)) {
    // memcached: "ERROR" for a missing key, but me says "bad command line format".
    return line_error(cmd == Command::kMetaDebug ? errors::kBadFormat : errors::kError);
  }
  if (cmd != Command::kMetaSet) {
    const meta::FlagSummary f =
        meta::summarize_flags(std::string_view(tz.pos(), static_cast<size_t>(tz.end() - tz.pos())));
    meta_key(key, f.base64);
    out_.flags = kFlagMeta;
    // me ignores its flags (q included): it always answers.
    if (f.quiet && cmd != Command::kMetaDebug) out_.flags |= kFlagQuiet;
    if (f.compare_cas && cmd != Command::kMetaGet) out_.flags |= kFlagCompareCas;
    const bool read = cmd == Command::kMetaDebug || (cmd == Command::kMetaGet && !f.writes);
    out_.flags |= read ? kFlagRead : kFlagWrite;
    return ok_line();
  }
  // ms: memcached checks the key's length, the data length's presence, the token count and
  // the data length, in that order, before it reads the data block; an error there leaves the
  // block to be read as a command. dproxy swallows it instead when the data length is valid (as
  // for a classic set with an over-long key): a value is never run as a command.
  std::string_view len_tok;
  const bool has_len = tz.next(len_tok);
  uint64_t bytes = 0;
  const bool len_ok = has_len && meta_data_length(len_tok, bytes);
  const size_t skip = len_ok ? bytes + 2 : 0;
  if (key_too_long(key)) return line_error(errors::kBadFormat, skip);
  if (!has_len) return line_error(errors::kBadFormat);
  const meta::FlagSummary f =
      meta::summarize_flags(std::string_view(tz.pos(), static_cast<size_t>(tz.end() - tz.pos())));
  if (f.count + 3 > meta::kMaxTokens) return line_error(errors::kMetaFlagsTooLong, skip);
  if (!len_ok) return line_error(errors::kBadFormat);
  meta_key(key, f.base64);
  out_.flags = kFlagMeta | kFlagWrite | kFlagHasData;
  if (f.quiet) out_.flags |= kFlagQuiet;
  if (f.compare_cas) out_.flags |= kFlagCompareCas;
  // memcached removes the key's old value when it refuses a value for its size.
  if (bytes > limits_.max_value_bytes) return line_error(errors::kTooLarge, bytes + 2);
  return with_data(bytes);
}

ParseResult parse_frame(const RequestLimits& limits, std::string_view in, Request& out) {
  if (in.empty()) return ParseResult::NeedMore();
  // Only the first max_line_bytes + 1 bytes may hold the "\n": a line whose content is longer
  // than max_line_bytes is refused however the bytes arrive.
  const size_t scan = in.size() > limits.max_line_bytes ? limits.max_line_bytes + 1 : in.size();
  const void* nl = std::memchr(in.data(), '\n', scan);
  if (nl == nullptr) {
    if (in.size() > limits.max_line_bytes) {
      return ParseResult::Error(errors::kLineTooLong, in.size(), 0, true);
    }
    return ParseResult::NeedMore();
  }
  const size_t line_len = static_cast<size_t>(static_cast<const char*>(nl) - in.data()) + 1;
  size_t content_len = line_len - 1;
  if (content_len > 0 && in[content_len - 1] == '\r') --content_len;
  // memcached reads the line as a C string: a NUL byte ends it.
  if (const void* nul = std::memchr(in.data(), '\0', content_len); nul != nullptr) {
    content_len = static_cast<size_t>(static_cast<const char*>(nul) - in.data());
  }
  LineParser p(limits, in, line_len, out);
  return p.parse(in.substr(0, content_len));
}

}  // namespace

ParseResult RequestParser::parse(std::string_view in, Request& out) const {
  out.reset();
  ParseResult r = parse_frame(limits_, in, out);
  if (r.status == ParseStatus::kNeedMore) {
    out.reset();
  } else if (r.status == ParseStatus::kError) {
    // Keep what the caller may need to act on the error: the command, its noreply, its keys.
    out.frame = {};
    out.args.clear();
    out.noreply_token = {};
    out.flags &= kFlagNoreply;
  }
  return r;
}

}  // namespace dproxy::protocol::memcache
