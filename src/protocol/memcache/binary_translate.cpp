// The memcached binary protocol's translation: a binary request as the meta (or classic)
// request dproxy sends a backend, and that backend's reply as the binary response memcached
// would give. See binary.h.

#include <charconv>
#include <limits>

#include "protocol/memcache/binary.h"
#include "protocol/memcache/binary_bytes.h"
#include "protocol/memcache/meta.h"

namespace dproxy::protocol::memcache::binary {
namespace {

using detail::put_be32;
using detail::put_be64;
using meta::append_base64;

bool key_needs_base64(std::string_view key) {
  for (char c : key) {
    const auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u == 0x7f) return true;
  }
  return false;
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

bool key_unsendable(std::string_view key) {
  return key.size() > kMaxBase64KeyBytes && key_needs_base64(key);
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

namespace {

// get / gat / touch (k and q variants): the value with its flags and cas, or not found.
bool translate_retrieval(std::string& out, const Pending& p, Op op, std::string_view key,
                         const MetaLine& m, std::string_view data) {
  if (m.code == "EN") {
    if (is_quiet(p.opcode)) return true;
    if (returns_key(p.opcode)) {
      append_response(out, p.opcode, kKeyNotFound, p.opaque, 0, {}, key, {});
    } else {
      append_error(out, p.opcode, kKeyNotFound, p.opaque);
    }
    return true;
  }
  if ((op == Op::kTouch && m.code != "HD") || (op != Op::kTouch && m.code != "VA")) return false;
  char extras[4];
  put_be32(extras, static_cast<uint32_t>(m.flags));
  append_response(out, p.opcode, kNoError, p.opaque, m.cas, std::string_view(extras, 4),
                  returns_key(p.opcode) ? key : std::string_view(), data);
  return true;
}

// set / add / replace / append / prepend / delete: HD, or the status memcached gives for NS,
// EX and NF.
bool translate_update(std::string& out, const Pending& p, Op op, const MetaLine& m) {
  if (m.code == "HD") {
    if (!is_quiet(p.opcode)) {
      append_response(out, p.opcode, kNoError, p.opaque, op == Op::kDelete ? 0 : m.cas, {}, {}, {});
    }
    return true;
  }
  uint16_t status = 0;
  if (m.code == "NS") {
    status = kItemNotStored;
    if (p.opcode == kAdd || p.opcode == kAddQ) status = kKeyExists;
    if (p.opcode == kReplace || p.opcode == kReplaceQ) status = kKeyNotFound;
  } else if (m.code == "EX") {
    status = kKeyExists;
  } else if (m.code == "NF") {
    status = kKeyNotFound;
  } else {
    return false;
  }
  append_error(out, p.opcode, status, p.opaque);
  return true;
}

// increment / decrement: the new value as 8 bytes, or the status for NF, EX and NS.
bool translate_arith(std::string& out, const Pending& p, const MetaLine& m, std::string_view data) {
  uint64_t value = 0;
  if (m.code == "VA" && parse_u64(data, value)) {
    if (is_quiet(p.opcode)) return true;
    char extras[8];
    put_be64(extras, value);
    append_response(out, p.opcode, kNoError, p.opaque, m.cas, {}, {}, std::string_view(extras, 8));
    return true;
  }
  uint16_t status = 0;
  if (m.code == "NF") {
    status = kKeyNotFound;
  } else if (m.code == "EX") {
    status = kKeyExists;
  } else if (m.code == "NS") {
    status = kItemNotStored;
  } else {
    return false;
  }
  append_error(out, p.opcode, status, p.opaque);
  return true;
}

}  // namespace

void append_translated_reply(std::string& out, const Pending& p, std::string_view key,
                             std::string_view reply) {
  const Op op = op_of(p.opcode);
  std::string_view rest;
  const std::string_view line = first_line(reply, rest);
  if (is_error_line(line)) {
    append_error_line(out, p, line);
    return;
  }
  if (op == Op::kStat) {
    append_stats(out, p, reply);
    return;
  }
  if (op == Op::kFlush) {
    if (line != "OK") {
      append_error_line(out, p, line);
    } else if (!is_quiet(p.opcode)) {
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
  bool done = false;
  switch (op) {
    case Op::kGet:
    case Op::kGat:
    case Op::kTouch:
      done = translate_retrieval(out, p, op, key, m, data);
      break;
    case Op::kStore:
    case Op::kConcat:
    case Op::kDelete:
      done = translate_update(out, p, op, m);
      break;
    case Op::kArith:
      done = translate_arith(out, p, m, data);
      break;
    default:
      break;
  }
  if (!done) append_text_error(out, p, kInternalError, "bad reply from backend");
}

}  // namespace dproxy::protocol::memcache::binary
