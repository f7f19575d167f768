#pragma once
// The memcached binary protocol (memcached 1.6's "binary protocol" spec and proto_bin.c):
// request parsing, response encoding, and the translation dproxy uses to serve a binary client
// over the shared ASCII/meta backend connections: each binary request becomes one meta command
// (mg / ms / md / ma) or one classic command (flush_all, stats <group>), and the backend's
// reply is turned back into the binary response memcached itself would have sent.
// Pure functions of their input: no sockets, std only.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "protocol/parse_result.h"

namespace dproxy::protocol::memcache::binary {

inline constexpr uint8_t kRequestMagic = 0x80;
inline constexpr uint8_t kResponseMagic = 0x81;
inline constexpr size_t kHeaderBytes = 24;
inline constexpr size_t kMaxKeyBytes = 250;  // memcached's KEY_MAX_LENGTH

// Opcodes memcached 1.6 serves over the binary protocol (others get "Unknown command").
enum Opcode : uint8_t {
  kGet = 0x00,
  kSet = 0x01,
  kAdd = 0x02,
  kReplace = 0x03,
  kDelete = 0x04,
  kIncrement = 0x05,
  kDecrement = 0x06,
  kQuit = 0x07,
  kFlush = 0x08,
  kGetQ = 0x09,
  kNoop = 0x0a,
  kVersion = 0x0b,
  kGetK = 0x0c,
  kGetKQ = 0x0d,
  kAppend = 0x0e,
  kPrepend = 0x0f,
  kStat = 0x10,
  kSetQ = 0x11,
  kAddQ = 0x12,
  kReplaceQ = 0x13,
  kDeleteQ = 0x14,
  kIncrementQ = 0x15,
  kDecrementQ = 0x16,
  kQuitQ = 0x17,
  kFlushQ = 0x18,
  kAppendQ = 0x19,
  kPrependQ = 0x1a,
  kTouch = 0x1c,
  kGat = 0x1d,
  kGatQ = 0x1e,
  kGatK = 0x23,
  kGatKQ = 0x24,
  kSaslListMechs = 0x20,
  kSaslAuth = 0x21,
  kSaslStep = 0x22,
};

// Response status codes (and memcached's texts for them, the body of an error response).
enum Status : uint16_t {
  kNoError = 0x0000,
  kKeyNotFound = 0x0001,
  kKeyExists = 0x0002,
  kValueTooLarge = 0x0003,
  kInvalidArguments = 0x0004,
  kItemNotStored = 0x0005,
  kNonNumeric = 0x0006,
  kAuthError = 0x0020,
  kAuthContinue = 0x0021,
  kUnknownCommand = 0x0081,
  kOutOfMemory = 0x0082,
  kInternalError = 0x0084,
  kTemporaryFailure = 0x0086,
};
// memcached's error text for `status` ("" for one it has none for).
std::string_view status_text(uint16_t status);

// What a request is, once its quiet variant is folded in (memcached does the same).
enum class Op : uint8_t {
  kGet,      // get / getq / getk / getkq
  kGat,      // gat / gatq / gatk / gatkq
  kTouch,    // touch
  kStore,    // set / add / replace (+q)
  kConcat,   // append / prepend (+q)
  kDelete,   // delete(q)
  kArith,    // increment / decrement (+q)
  kFlush,    // flush(q)
  kNoop,     // noop
  kVersion,  // version
  kQuit,     // quit(q)
  kStat,     // stat [group]
  kSasl,     // sasl list mechs / auth / step (answered by the front end)
  kUnknown,  // any other opcode: "Unknown command"
};

// True for the quiet opcodes: no response on success (nor, for the gets, on a miss).
bool is_quiet(uint8_t opcode);
// True for the opcodes whose response carries the key (getk, getkq, gatk, gatkq).
bool returns_key(uint8_t opcode);
Op op_of(uint8_t opcode);

// One parsed binary request. NOTE: the string_views point into the parsed input.
struct Request {
  uint8_t opcode = 0;
  uint8_t extlen = 0;
  uint16_t keylen = 0;
  uint32_t bodylen = 0;
  uint32_t opaque = 0;  // as sent (network byte order), echoed unchanged
  uint64_t cas = 0;
  Op op = Op::kUnknown;
  std::string_view key;
  std::string_view value;
  // From the extras: set/add/replace flags and expiration; incr/decr delta, initial and
  // expiration; touch/gat and flush expiration (has_exptime: flush sent one).
  uint32_t flags = 0;
  uint32_t exptime = 0;
  bool has_exptime = false;
  uint64_t delta = 0;
  uint64_t initial = 0;
  // kError: the status to answer (0: none, the connection closes without a response).
  uint16_t error_status = 0;
};

// Parses the first binary request of `in`.
// kOk: consumed = 24 + bodylen; `out` describes it.
// kNeedMore: size_hint = the whole packet's size once the header is in.
// kError: out.error_status is the status to answer (with out.opcode and out.opaque), `error` a
//   static text naming the problem; drop `consumed` bytes then `skip` more:
//   - a first byte other than 0x80: no response, close (memcached closes too);
//   - key + extras longer than the body: Unknown command, close (memcached);
//   - a key over 250 bytes, or a header an opcode does not accept (extras, key or body of the
//     wrong length): Invalid arguments, close (memcached's "protocol error");
//   - an unknown opcode: Unknown command, the packet skipped (consumed 24, skip bodylen);
//   - set/add/replace/append/prepend whose value exceeds max_value_bytes: Value too large,
//     the value skipped (consumed = 24 + extras + key, skip = value length); out.key is set.
// Never allocates. The result is a pure function of the bytes: any split gives the same packets.
ParseResult parse_request(std::string_view in, size_t max_value_bytes, Request& out);

// Appends one response packet.
void append_response(std::string& out, uint8_t opcode, uint16_t status, uint32_t opaque,
                     uint64_t cas, std::string_view extras, std::string_view key,
                     std::string_view value);
// Appends an error response: memcached's text for `status`, cas 0.
void append_error(std::string& out, uint8_t opcode, uint16_t status, uint32_t opaque);

// SASL PLAIN: the message "[authzid] NUL authcid NUL password" split into its user (authcid)
// and password; false when it is not of that shape, or names another authzid than its user.
bool parse_sasl_plain(std::string_view message, std::string_view& user, std::string_view& password);

// memcached's meta commands take a base64 key of at most 250 characters: the longest key
// append_backend_request can send when it must encode it (a byte ASCII cannot carry).
inline constexpr size_t kMaxBase64KeyBytes = 186;
// True when `key` cannot be sent to a backend (it needs base64 and is longer than that).
bool key_unsendable(std::string_view key);

// Appends the backend command serving `req` (Op kGet, kGat, kTouch, kStore, kConcat, kDelete,
// kArith: a meta command; kFlush: flush_all), "\r\n"-terminated, with its data block. A key
// holding a byte the ASCII protocol cannot carry (control bytes, space, DEL) is sent base64
// encoded (meta flag b): memcached stores the decoded key, so placement and ASCII reads agree.
void append_backend_request(std::string& out, const Request& req);

// What a pending response needs of its request once the backend answered.
struct Pending {
  uint8_t opcode = 0;
  uint32_t opaque = 0;
};

// Appends the binary response memcached gives to `p`'s request, from the backend's reply to
// append_backend_request (a meta reply, or a classic one for flush / stats), or from an error
// line of dproxy's ("SERVER_ERROR backend ...", "CLIENT_ERROR ..."). `key`: the request's key
// (the getk / gatk variants echo it). Quiet requests append nothing on success (the gets: on a
// miss); every error is answered. Stats lines become one packet per STAT line and a terminator.
void append_translated_reply(std::string& out, const Pending& p, std::string_view key,
                             std::string_view reply);

}  // namespace dproxy::protocol::memcache::binary
