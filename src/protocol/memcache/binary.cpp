// The memcached binary protocol: parsing and encoding. See binary.h; the translation to and
// from meta/classic requests for the backends is in binary_translate.cpp.

#include "protocol/memcache/binary.h"

#include <cstring>

#include "protocol/memcache/binary_bytes.h"

namespace dproxy::protocol::memcache::binary {
namespace {

using detail::be16;
using detail::be32;
using detail::be64;
using detail::put_be16;
using detail::put_be32;
using detail::put_be64;

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

}  // namespace dproxy::protocol::memcache::binary
