// The memcached binary protocol: parsing, encoding, translation. See binary.h.

#include "protocol/memcache/binary.h"

#include <charconv>
#include <cstring>
#include <limits>

namespace dproxy::protocol::memcache::binary {
namespace {

uint16_t be16(const char* p) {
  const auto* u = reinterpret_cast<const unsigned char*>(p);
  return static_cast<uint16_t>((u[0] << 8) | u[1]);
}
uint32_t be32(const char* p) {
  const auto* u = reinterpret_cast<const unsigned char*>(p);
  return (uint32_t{u[0]} << 24) | (uint32_t{u[1]} << 16) | (uint32_t{u[2]} << 8) | u[3];
}
uint64_t be64(const char* p) {
  return (uint64_t{be32(p)} << 32) | be32(p + 4);
}
void put_be16(char* p, uint16_t v) {
  p[0] = static_cast<char>(v >> 8);
  p[1] = static_cast<char>(v);
}
void put_be32(char* p, uint32_t v) {
  for (int i = 3; i >= 0; --i, v >>= 8) p[i] = static_cast<char>(v);
}
void put_be64(char* p, uint64_t v) {
  for (int i = 7; i >= 0; --i, v >>= 8) p[i] = static_cast<char>(v);
}

// Static texts of the parse errors (ParseResult::error); the response itself is built from
// Request::error_status.
constexpr std::string_view kBadMagic = "bad magic byte";
constexpr std::string_view kBadLengths = "key and extras longer than the body";
constexpr std::string_view kBadHeader = "invalid arguments";
constexpr std::string_view kUnknown = "unknown command";
constexpr std::string_view kTooLarge = "value too large";

ParseResult fail(Request& out, uint16_t status, std::string_view why, size_t consumed, size_t skip,
                 bool close) {
  out.error_status = status;
  return ParseResult::Error(why, consumed, skip, close);
}

// Whether the header's lengths are ones the opcode accepts (memcached's dispatch_bin_command).
bool header_ok(const Request& r) {
  const uint32_t k = r.keylen;
  const uint32_t e = r.extlen;
  const uint32_t b = r.bodylen;
  switch (r.op) {
    case Op::kNoop:
    case Op::kVersion:
    case Op::kQuit:
      return e == 0 && k == 0 && b == 0;
    case Op::kFlush:
      return k == 0 && b == e && (e == 0 || e == 4);
    case Op::kStore:
      return e == 8 && k != 0 && b >= k + 8;
    case Op::kGet:
    case Op::kDelete:
      return e == 0 && k > 0 && b == k;
    case Op::kArith:
      return k > 0 && e == 20 && b == k + e;
    case Op::kConcat:
      return k > 0 && e == 0;
    case Op::kStat:
      // memcached ignores a body past the key (and would read it as the next request): dproxy
      // refuses it instead of losing the framing.
      return e == 0 && b == k;
    case Op::kTouch:
    case Op::kGat:
      return e == 4 && k != 0 && b == k + 4;
    case Op::kSasl:
      if (r.opcode == kSaslListMechs) return e == 0 && k == 0 && b == 0;
      return e == 0 && k != 0;
    case Op::kUnknown:
      return true;
  }
  return false;
}

bool key_needs_base64(std::string_view key) {
  for (char c : key) {
    const auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u == 0x7f) return true;
  }
  return false;
}

void append_base64(std::string& out, std::string_view in) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  size_t i = 0;
  for (; i + 3 <= in.size(); i += 3) {
    const uint32_t v = (uint32_t{static_cast<unsigned char>(in[i])} << 16) |
                       (uint32_t{static_cast<unsigned char>(in[i + 1])} << 8) |
                       static_cast<unsigned char>(in[i + 2]);
    out.push_back(kAlphabet[(v >> 18) & 63]);
    out.push_back(kAlphabet[(v >> 12) & 63]);
    out.push_back(kAlphabet[(v >> 6) & 63]);
    out.push_back(kAlphabet[v & 63]);
  }
  const size_t rest = in.size() - i;
  if (rest == 0) return;
  uint32_t v = uint32_t{static_cast<unsigned char>(in[i])} << 16;
  if (rest == 2) v |= uint32_t{static_cast<unsigned char>(in[i + 1])} << 8;
  out.push_back(kAlphabet[(v >> 18) & 63]);
  out.push_back(kAlphabet[(v >> 12) & 63]);
  out.push_back(rest == 2 ? kAlphabet[(v >> 6) & 63] : '=');
  out.push_back('=');
}

void append_uint(std::string& out, uint64_t v) {
  char buf[24];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), v);
  (void)ec;
  out.append(buf, static_cast<size_t>(end - buf));
}

// A binary expiration as a meta / classic token: memcached reads those as int32; a larger
// (absolute, past 2038) time becomes the largest one.
uint64_t exptime_token(uint32_t exptime) {
  constexpr uint32_t kMax = static_cast<uint32_t>(std::numeric_limits<int32_t>::max());
  return exptime > kMax ? kMax : exptime;
}

// "<cmd> <key>" or "<cmd> <base64 key> ... b": the command and its key, with the b flag.
void append_command_key(std::string& out, std::string_view cmd, std::string_view key,
                        bool& base64) {
  out.append(cmd);
  out.push_back(' ');
  base64 = key_needs_base64(key);
  if (base64) {
    append_base64(out, key);
  } else {
    out.append(key);
  }
}

// The first "\r\n"-terminated line of `reply` (without the terminator) and what follows it.
std::string_view first_line(std::string_view reply, std::string_view& rest) {
  const size_t nl = reply.find("\r\n");
  if (nl == std::string_view::npos) {
    rest = {};
    return reply;
  }
  rest = reply.substr(nl + 2);
  return reply.substr(0, nl);
}

bool parse_u64(std::string_view s, uint64_t& v) {
  if (s.empty()) return false;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  return ec == std::errc() && ptr == s.data() + s.size();
}

// The flags of a meta reply line after its code ("VA <size> f1 c2", "HD c2"): f and c, and the
// size of a VA line.
struct MetaLine {
  std::string_view code;
  uint64_t size = 0;
  uint64_t flags = 0;
  uint64_t cas = 0;
};

bool parse_meta_line(std::string_view line, MetaLine& m) {
  size_t pos = 0;
  bool first = true;
  bool want_size = false;
  while (pos < line.size()) {
    size_t end = line.find(' ', pos);
    if (end == std::string_view::npos) end = line.size();
    const std::string_view tok = line.substr(pos, end - pos);
    pos = end + 1;
    if (tok.empty()) continue;
    if (first) {
      m.code = tok;
      first = false;
      want_size = tok == "VA";
      continue;
    }
    if (want_size) {
      if (!parse_u64(tok, m.size)) return false;
      want_size = false;
      continue;
    }
    if (tok[0] == 'f' && !parse_u64(tok.substr(1), m.flags)) return false;
    if (tok[0] == 'c' && !parse_u64(tok.substr(1), m.cas)) return false;
  }
  return !first && !want_size;
}

void append_text_error(std::string& out, const Pending& p, uint16_t status, std::string_view text) {
  append_response(out, p.opcode, status, p.opaque, 0, {}, {}, text);
}

// An error line (memcached's or dproxy's) as the binary error memcached would give for it.
void append_error_line(std::string& out, const Pending& p, std::string_view line) {
  if (line == "CLIENT_ERROR cannot increment or decrement non-numeric value") {
    append_error(out, p.opcode, kNonNumeric, p.opaque);
  } else if (line.starts_with("SERVER_ERROR object too large")) {
    append_error(out, p.opcode, kValueTooLarge, p.opaque);
  } else if (line.starts_with("SERVER_ERROR out of memory")) {
    append_error(out, p.opcode, kOutOfMemory, p.opaque);
  } else if (line.starts_with("SERVER_ERROR ")) {
    append_text_error(out, p, kInternalError, line.substr(13));
  } else if (line.starts_with("CLIENT_ERROR ")) {
    append_text_error(out, p, kInvalidArguments, line.substr(13));
  } else if (line == "ERROR") {
    append_error(out, p.opcode, kUnknownCommand, p.opaque);
  } else {
    append_text_error(out, p, kInternalError, "bad reply from backend");
  }
}

bool is_error_line(std::string_view line) {
  return line == "ERROR" || line.starts_with("CLIENT_ERROR ") || line.starts_with("SERVER_ERROR ");
}

// stats: "STAT <name> <value>" lines (other lines skipped) up to END / RESET / OK, as one
// packet each and an empty terminator.
void append_stats(std::string& out, const Pending& p, std::string_view reply) {
  std::string_view rest = reply;
  while (!rest.empty()) {
    std::string_view next;
    const std::string_view line = first_line(rest, next);
    rest = next;
    if (!line.starts_with("STAT ")) continue;
    const std::string_view body = line.substr(5);
    const size_t sp = body.find(' ');
    const std::string_view name = body.substr(0, sp);
    const std::string_view value =
        sp == std::string_view::npos ? std::string_view() : body.substr(sp + 1);
    append_response(out, p.opcode, kNoError, p.opaque, 0, {}, name, value);
  }
  append_response(out, p.opcode, kNoError, p.opaque, 0, {}, {}, {});
}

}  // namespace

std::string_view status_text(uint16_t status) {
  switch (status) {
    case kOutOfMemory:
      return "Out of memory";
    case kUnknownCommand:
      return "Unknown command";
    case kKeyNotFound:
      return "Not found";
    case kInvalidArguments:
      return "Invalid arguments";
    case kKeyExists:
      return "Data exists for key.";
    case kValueTooLarge:
      return "Too large.";
    case kNonNumeric:
      return "Non-numeric server-side value for incr or decr";
    case kItemNotStored:
      return "Not stored.";
    case kAuthError:
      return "Auth failure.";
    default:
      return "";
  }
}

bool is_quiet(uint8_t opcode) {
  switch (opcode) {
    case kGetQ:
    case kGetKQ:
    case kSetQ:
    case kAddQ:
    case kReplaceQ:
    case kDeleteQ:
    case kIncrementQ:
    case kDecrementQ:
    case kQuitQ:
    case kFlushQ:
    case kAppendQ:
    case kPrependQ:
    case kGatQ:
    case kGatKQ:
      return true;
    default:
      return false;
  }
}

bool returns_key(uint8_t opcode) {
  return opcode == kGetK || opcode == kGetKQ || opcode == kGatK || opcode == kGatKQ;
}

Op op_of(uint8_t opcode) {
  switch (opcode) {
    case kGet:
    case kGetQ:
    case kGetK:
    case kGetKQ:
      return Op::kGet;
    case kGat:
    case kGatQ:
    case kGatK:
    case kGatKQ:
      return Op::kGat;
    case kTouch:
      return Op::kTouch;
    case kSet:
    case kSetQ:
    case kAdd:
    case kAddQ:
    case kReplace:
    case kReplaceQ:
      return Op::kStore;
    case kAppend:
    case kAppendQ:
    case kPrepend:
    case kPrependQ:
      return Op::kConcat;
    case kDelete:
    case kDeleteQ:
      return Op::kDelete;
    case kIncrement:
    case kIncrementQ:
    case kDecrement:
    case kDecrementQ:
      return Op::kArith;
    case kFlush:
    case kFlushQ:
      return Op::kFlush;
    case kNoop:
      return Op::kNoop;
    case kVersion:
      return Op::kVersion;
    case kQuit:
    case kQuitQ:
      return Op::kQuit;
    case kStat:
      return Op::kStat;
    case kSaslListMechs:
    case kSaslAuth:
    case kSaslStep:
      return Op::kSasl;
    default:
      return Op::kUnknown;
  }
}

ParseResult parse_request(std::string_view in, size_t max_value_bytes, Request& out) {
  out = Request{};
  if (in.empty()) return ParseResult::NeedMore();
  if (static_cast<unsigned char>(in[0]) != kRequestMagic) {
    return fail(out, 0, kBadMagic, in.size(), 0, true);
  }
  if (in.size() < kHeaderBytes) return ParseResult::NeedMore(kHeaderBytes);
  out.opcode = static_cast<uint8_t>(in[1]);
  out.keylen = be16(in.data() + 2);
  out.extlen = static_cast<uint8_t>(in[4]);
  out.bodylen = be32(in.data() + 8);
  std::memcpy(&out.opaque, in.data() + 12, 4);
  out.cas = be64(in.data() + 16);
  out.op = op_of(out.opcode);
  const size_t key_end = kHeaderBytes + out.extlen + out.keylen;
  if (uint64_t{out.keylen} + out.extlen > out.bodylen) {
    return fail(out, kUnknownCommand, kBadLengths, in.size(), 0, true);
  }
  if (out.keylen > kMaxKeyBytes || !header_ok(out)) {
    return fail(out, kInvalidArguments, kBadHeader, in.size(), 0, true);
  }
  if (out.op == Op::kUnknown)
    return fail(out, kUnknownCommand, kUnknown, kHeaderBytes, out.bodylen, false);
  const uint64_t vlen = uint64_t{out.bodylen} - out.extlen - out.keylen;
  if ((out.op == Op::kStore || out.op == Op::kConcat) && vlen > max_value_bytes) {
    if (in.size() < key_end) return ParseResult::NeedMore(key_end);
    out.key = in.substr(kHeaderBytes + out.extlen, out.keylen);
    return fail(out, kValueTooLarge, kTooLarge, key_end, static_cast<size_t>(vlen), false);
  }
  const size_t total = kHeaderBytes + size_t{out.bodylen};
  if (in.size() < total) return ParseResult::NeedMore(total);
  const char* ext = in.data() + kHeaderBytes;
  out.key = in.substr(kHeaderBytes + out.extlen, out.keylen);
  out.value = in.substr(key_end, total - key_end);
  switch (out.op) {
    case Op::kStore:
      out.flags = be32(ext);
      out.exptime = be32(ext + 4);
      break;
    case Op::kArith:
      out.delta = be64(ext);
      out.initial = be64(ext + 8);
      out.exptime = be32(ext + 16);
      break;
    case Op::kTouch:
    case Op::kGat:
      out.exptime = be32(ext);
      break;
    case Op::kFlush:
      if (out.extlen == 4) {
        out.exptime = be32(ext);
        out.has_exptime = true;
      }
      break;
    default:
      break;
  }
  return ParseResult::Ok(total);
}

bool key_unsendable(std::string_view key) {
  return key.size() > kMaxBase64KeyBytes && key_needs_base64(key);
}

bool parse_sasl_plain(std::string_view message, std::string_view& user,
                      std::string_view& password) {
  const size_t first = message.find('\0');
  if (first == std::string_view::npos) return false;
  const size_t second = message.find('\0', first + 1);
  if (second == std::string_view::npos) return false;
  const std::string_view authzid = message.substr(0, first);
  user = message.substr(first + 1, second - first - 1);
  password = message.substr(second + 1);
  return !user.empty() && (authzid.empty() || authzid == user);
}

void append_response(std::string& out, uint8_t opcode, uint16_t status, uint32_t opaque,
                     uint64_t cas, std::string_view extras, std::string_view key,
                     std::string_view value) {
  char h[kHeaderBytes];
  h[0] = static_cast<char>(kResponseMagic);
  h[1] = static_cast<char>(opcode);
  put_be16(h + 2, static_cast<uint16_t>(key.size()));
  h[4] = static_cast<char>(extras.size());
  h[5] = 0;  // raw bytes
  put_be16(h + 6, status);
  put_be32(h + 8, static_cast<uint32_t>(extras.size() + key.size() + value.size()));
  std::memcpy(h + 12, &opaque, 4);
  put_be64(h + 16, cas);
  out.append(h, kHeaderBytes);
  out.append(extras);
  out.append(key);
  out.append(value);
}

void append_error(std::string& out, uint8_t opcode, uint16_t status, uint32_t opaque) {
  append_response(out, opcode, status, opaque, 0, {}, {}, status_text(status));
}

void append_backend_request(std::string& out, const Request& req) {
  bool base64 = false;
  switch (req.op) {
    case Op::kGet:
    case Op::kGat:
    case Op::kTouch:
      append_command_key(out, "mg", req.key, base64);
      out.append(req.op == Op::kTouch ? " f c" : " f c v");
      if (req.op != Op::kGet) {
        out.append(" T");
        append_uint(out, exptime_token(req.exptime));
      }
      break;
    case Op::kStore:
    case Op::kConcat: {
      append_command_key(out, "ms", req.key, base64);
      out.push_back(' ');
      append_uint(out, req.value.size());
      out.append(" c");
      char mode = 'S';
      if (req.op == Op::kStore) {
        out.append(" F");
        append_uint(out, req.flags);
        out.append(" T");
        append_uint(out, exptime_token(req.exptime));
        // A cas makes any of set / add / replace a compare-and-swap (memcached).
        if (req.cas == 0 && (req.opcode == kAdd || req.opcode == kAddQ)) mode = 'E';
        if (req.cas == 0 && (req.opcode == kReplace || req.opcode == kReplaceQ)) mode = 'R';
      } else {
        mode = (req.opcode == kAppend || req.opcode == kAppendQ) ? 'A' : 'P';
      }
      if (req.cas != 0) {
        out.append(" C");
        append_uint(out, req.cas);
      }
      out.append(" M");
      out.push_back(mode);
      if (base64) out.append(" b");
      out.append("\r\n");
      out.append(req.value);
      out.append("\r\n");
      return;
    }
    case Op::kDelete:
      append_command_key(out, "md", req.key, base64);
      if (req.cas != 0) {
        out.append(" C");
        append_uint(out, req.cas);
      }
      break;
    case Op::kArith:
      append_command_key(out, "ma", req.key, base64);
      out.append(" v c D");
      append_uint(out, req.delta);
      // An expiration of 0xffffffff: no item is created for a missing key.
      if (req.exptime != 0xffffffffu) {
        out.append(" N");
        append_uint(out, exptime_token(req.exptime));
        out.append(" J");
        append_uint(out, req.initial);
      }
      if (req.cas != 0) {
        out.append(" C");
        append_uint(out, req.cas);
      }
      if (req.opcode == kDecrement || req.opcode == kDecrementQ) out.append(" MD");
      break;
    case Op::kFlush:
      out.append("flush_all");
      if (req.has_exptime && req.exptime > 0) {
        out.push_back(' ');
        append_uint(out, exptime_token(req.exptime));
      }
      break;
    default:
      break;
  }
  if (base64) out.append(" b");
  out.append("\r\n");
}

void append_translated_reply(std::string& out, const Pending& p, std::string_view key,
                             std::string_view reply) {
  const Op op = op_of(p.opcode);
  const bool quiet = is_quiet(p.opcode);
  if (op == Op::kStat) {
    std::string_view rest;
    const std::string_view line = first_line(reply, rest);
    if (is_error_line(line)) {
      append_error_line(out, p, line);
    } else {
      append_stats(out, p, reply);
    }
    return;
  }
  std::string_view rest;
  const std::string_view line = first_line(reply, rest);
  if (is_error_line(line)) {
    append_error_line(out, p, line);
    return;
  }
  if (op == Op::kFlush) {
    if (line != "OK") {
      append_error_line(out, p, line);
    } else if (!quiet) {
      append_response(out, p.opcode, kNoError, p.opaque, 0, {}, {}, {});
    }
    return;
  }
  MetaLine m;
  if (!parse_meta_line(line, m) || (m.code == "VA" && rest.size() < m.size + 2)) {
    append_error_line(out, p, line);
    return;
  }
  const std::string_view data = m.code == "VA" ? rest.substr(0, m.size) : std::string_view();
  char extras[8];
  switch (op) {
    case Op::kGet:
    case Op::kGat:
    case Op::kTouch:
      if (m.code == "EN") {
        if (quiet) return;
        if (returns_key(p.opcode)) {
          append_response(out, p.opcode, kKeyNotFound, p.opaque, 0, {}, key, {});
        } else {
          append_error(out, p.opcode, kKeyNotFound, p.opaque);
        }
        return;
      }
      if ((op == Op::kTouch && m.code != "HD") || (op != Op::kTouch && m.code != "VA")) break;
      put_be32(extras, static_cast<uint32_t>(m.flags));
      append_response(out, p.opcode, kNoError, p.opaque, m.cas, std::string_view(extras, 4),
                      returns_key(p.opcode) ? key : std::string_view(), data);
      return;
    case Op::kStore:
    case Op::kConcat:
    case Op::kDelete:
      if (m.code == "HD") {
        if (!quiet) {
          append_response(out, p.opcode, kNoError, p.opaque, op == Op::kDelete ? 0 : m.cas, {}, {},
                          {});
        }
        return;
      }
      if (m.code == "NS") {
        uint16_t status = kItemNotStored;
        if (p.opcode == kAdd || p.opcode == kAddQ) status = kKeyExists;
        if (p.opcode == kReplace || p.opcode == kReplaceQ) status = kKeyNotFound;
        append_error(out, p.opcode, status, p.opaque);
        return;
      }
      if (m.code == "EX") {
        append_error(out, p.opcode, kKeyExists, p.opaque);
        return;
      }
      if (m.code == "NF") {
        append_error(out, p.opcode, kKeyNotFound, p.opaque);
        return;
      }
      break;
    case Op::kArith: {
      uint64_t value = 0;
      if (m.code == "VA" && parse_u64(data, value)) {
        if (quiet) return;
        put_be64(extras, value);
        append_response(out, p.opcode, kNoError, p.opaque, m.cas, {}, {},
                        std::string_view(extras, 8));
        return;
      }
      if (m.code == "NF") {
        append_error(out, p.opcode, kKeyNotFound, p.opaque);
        return;
      }
      if (m.code == "EX") {
        append_error(out, p.opcode, kKeyExists, p.opaque);
        return;
      }
      if (m.code == "NS") {
        append_error(out, p.opcode, kItemNotStored, p.opaque);
        return;
      }
      break;
    }
    default:
      break;
  }
  append_text_error(out, p, kInternalError, "bad reply from backend");
}

}  // namespace dproxy::protocol::memcache::binary
