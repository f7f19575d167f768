// Unit tests for the memcached binary protocol: request parsing, the backend commands it is
// translated into, and the translation of backend replies into binary responses.

#include <doctest/doctest.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/memcache/binary.h"
#include "protocol/memcache/reply_parser.h"

namespace {

using namespace std::string_literals;
using dproxy::protocol::ParseResult;
using dproxy::protocol::ParseStatus;
namespace bin = dproxy::protocol::memcache::binary;
namespace mc = dproxy::protocol::memcache;

void put(std::string& s, uint64_t v, int bytes) {
  for (int i = bytes - 1; i >= 0; --i) s.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

std::string packet(uint8_t opcode, std::string_view key, std::string_view extras = {},
                   std::string_view value = {}, uint32_t opaque = 0, uint64_t cas = 0,
                   uint8_t magic = 0x80) {
  std::string s;
  put(s, magic, 1);
  put(s, opcode, 1);
  put(s, key.size(), 2);
  put(s, extras.size(), 1);
  put(s, 0, 1);
  put(s, 0, 2);
  put(s, extras.size() + key.size() + value.size(), 4);
  put(s, opaque, 4);
  put(s, cas, 8);
  return s + std::string(extras) + std::string(key) + std::string(value);
}

std::string be(uint64_t v, int bytes) {
  std::string s;
  put(s, v, bytes);
  return s;
}

uint64_t read_be(std::string_view s, size_t at, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v = (v << 8) | static_cast<unsigned char>(s[at + i]);
  return v;
}

struct Response {
  uint8_t opcode;
  uint16_t status;
  uint32_t opaque;
  uint64_t cas;
  std::string extras, key, value;
};

// Splits a response stream into packets.
std::vector<Response> responses(std::string_view s) {
  std::vector<Response> out;
  while (s.size() >= 24) {
    REQUIRE(static_cast<unsigned char>(s[0]) == 0x81);
    const auto keylen = read_be(s, 2, 2);
    const auto extlen = read_be(s, 4, 1);
    const auto bodylen = read_be(s, 8, 4);
    REQUIRE(s.size() >= 24 + bodylen);
    Response r{static_cast<uint8_t>(s[1]),
               static_cast<uint16_t>(read_be(s, 6, 2)),
               static_cast<uint32_t>(read_be(s, 12, 4)),
               read_be(s, 16, 8),
               std::string(s.substr(24, extlen)),
               std::string(s.substr(24 + extlen, keylen)),
               std::string(s.substr(24 + extlen + keylen, bodylen - extlen - keylen))};
    out.push_back(r);
    s.remove_prefix(24 + bodylen);
  }
  REQUIRE(s.empty());
  return out;
}

std::string backend(const std::string& p) {
  bin::Request r;
  REQUIRE(bin::parse_request(p, 1024, r).status == ParseStatus::kOk);
  std::string out;
  bin::append_backend_request(out, r);
  return out;
}

std::string translate(uint8_t opcode, std::string_view reply, std::string_view key = {}) {
  std::string out;
  uint32_t opaque = 0;  // kept in network byte order, as parsed
  std::memcpy(&opaque, "\x01\x02\x03\x04", 4);
  bin::append_translated_reply(out, bin::Pending{opcode, opaque}, key, reply);
  return out;
}

}  // namespace

TEST_CASE("binary request: a get, whole and split at every byte") {
  const std::string p = packet(bin::kGetK, "key", {}, {}, 0xa1b2c3d4, 7);
  for (size_t cut = 0; cut < p.size(); ++cut) {
    bin::Request r;
    ParseResult res = bin::parse_request(std::string_view(p).substr(0, cut), 1024, r);
    CHECK(res.status == ParseStatus::kNeedMore);
    if (cut >= 24) CHECK(res.size_hint == p.size());
  }
  bin::Request r;
  const std::string stream = p + "trailing";  // NOTE: r's views point into it
  ParseResult res = bin::parse_request(stream, 1024, r);
  REQUIRE(res.status == ParseStatus::kOk);
  CHECK(res.consumed == p.size());
  CHECK(r.op == bin::Op::kGet);
  CHECK(r.key == "key");
  CHECK(r.cas == 7);
  // The opaque is kept as sent and echoed unchanged.
  std::string out;
  bin::append_response(out, r.opcode, 0, r.opaque, 0, {}, {}, {});
  CHECK(out.substr(12, 4) == "\xa1\xb2\xc3\xd4"s);
}

TEST_CASE("binary request: extras are decoded") {
  bin::Request r;
  std::string p = packet(bin::kSet, "k", be(0xdeadbeef, 4) + be(300, 4), "value");
  REQUIRE(bin::parse_request(p, 1024, r).status == ParseStatus::kOk);
  CHECK(r.flags == 0xdeadbeef);
  CHECK(r.exptime == 300);
  CHECK(r.value == "value");
  p = packet(bin::kIncrement, "k", be(5, 8) + be(100, 8) + be(0xffffffff, 4));
  REQUIRE(bin::parse_request(p, 1024, r).status == ParseStatus::kOk);
  CHECK(r.delta == 5);
  CHECK(r.initial == 100);
  CHECK(r.exptime == 0xffffffff);
}

TEST_CASE("binary request: errors") {
  bin::Request r;
  SUBCASE("bad magic: close without a response") {
    ParseResult res = bin::parse_request(packet(bin::kGet, "k", {}, {}, 0, 0, 0x81), 1024, r);
    CHECK(res.status == ParseStatus::kError);
    CHECK(res.close);
    CHECK(r.error_status == 0);
  }
  SUBCASE("key over 250 bytes: invalid arguments, close") {
    ParseResult res = bin::parse_request(packet(bin::kGet, std::string(251, 'k')), 1024, r);
    CHECK(res.close);
    CHECK(r.error_status == bin::kInvalidArguments);
  }
  SUBCASE("a header the opcode refuses: invalid arguments, close") {
    for (const std::string& p :
         {packet(bin::kGet, "k", "ext!"), packet(bin::kSet, "k", {}, "v"),
          packet(bin::kNoop, {}, {}, "x"), packet(bin::kIncrement, "k", be(1, 8)),
          packet(bin::kTouch, "k"), packet(bin::kDelete, {}), packet(bin::kFlush, {}, "ab")}) {
      ParseResult res = bin::parse_request(p, 1024, r);
      CHECK(res.status == ParseStatus::kError);
      CHECK(res.close);
      CHECK(r.error_status == bin::kInvalidArguments);
    }
  }
  SUBCASE("key and extras longer than the body: unknown command, close") {
    std::string p = packet(bin::kGet, "abcd");
    p[11] = 2;  // body length 2 < key length 4
    ParseResult res = bin::parse_request(p, 1024, r);
    CHECK(res.close);
    CHECK(r.error_status == bin::kUnknownCommand);
  }
  SUBCASE("unknown opcode: the whole packet is skipped, nothing closes") {
    const std::string p = packet(0x1b, "key", "extr", "value", 9);
    ParseResult res = bin::parse_request(std::string_view(p).substr(0, 24), 1024, r);
    CHECK(res.status == ParseStatus::kError);
    CHECK_FALSE(res.close);
    CHECK(res.consumed + res.skip == p.size());
    CHECK(r.error_status == bin::kUnknownCommand);
    CHECK(r.opcode == 0x1b);
  }
  SUBCASE("a value over the limit: too large, the value skipped, the key kept") {
    const std::string p = packet(bin::kSet, "key", be(0, 8), std::string(2000, 'v'));
    ParseResult res = bin::parse_request(std::string_view(p).substr(0, 30), 1024, r);
    CHECK(res.status == ParseStatus::kNeedMore);  // the key is not in yet
    res = bin::parse_request(std::string_view(p).substr(0, 40), 1024, r);
    CHECK(res.status == ParseStatus::kError);
    CHECK_FALSE(res.close);
    CHECK(res.consumed == 24 + 8 + 3);
    CHECK(res.skip == 2000);
    CHECK(r.key == "key");
    CHECK(r.error_status == bin::kValueTooLarge);
  }
}

TEST_CASE("binary request: the backend commands") {
  CHECK(backend(packet(bin::kGet, "k")) == "mg k f c v\r\n");
  CHECK(backend(packet(bin::kGatK, "k", be(100, 4))) == "mg k f c v T100\r\n");
  CHECK(backend(packet(bin::kTouch, "k", be(0x80000000u, 4))) == "mg k f c T2147483647\r\n");
  CHECK(backend(packet(bin::kSet, "k", be(5, 4) + be(10, 4), "ab")) ==
        "ms k 2 c F5 T10 MS\r\nab\r\n");
  CHECK(backend(packet(bin::kAddQ, "k", be(0, 8), "ab")) == "ms k 2 c F0 T0 ME\r\nab\r\n");
  CHECK(backend(packet(bin::kReplace, "k", be(0, 8), "ab", 0, 42)) ==
        "ms k 2 c F0 T0 C42 MS\r\nab\r\n");
  CHECK(backend(packet(bin::kPrepend, "k", {}, "ab")) == "ms k 2 c MP\r\nab\r\n");
  CHECK(backend(packet(bin::kDeleteQ, "k", {}, {}, 0, 9)) == "md k C9\r\n");
  CHECK(backend(packet(bin::kDecrement, "k", be(3, 8) + be(7, 8) + be(60, 4))) ==
        "ma k v c D3 N60 J7 MD\r\n");
  CHECK(backend(packet(bin::kIncrement, "k", be(3, 8) + be(7, 8) + be(0xffffffff, 4))) ==
        "ma k v c D3\r\n");
  CHECK(backend(packet(bin::kFlush, {}, be(30, 4))) == "flush_all 30\r\n");
  CHECK(backend(packet(bin::kFlushQ, {})) == "flush_all\r\n");
  // Keys ASCII cannot carry go base64-encoded.
  CHECK(backend(packet(bin::kGet, "a b")) == "mg YSBi f c v b\r\n");
  CHECK(backend(packet(bin::kSet, "\r\n", be(0, 8), "v")) == "ms DQo= 1 c F0 T0 MS b\r\nv\r\n");
  // meta takes 250 base64 characters: 186 bytes of such a key, any printable key up to 250.
  CHECK_FALSE(bin::key_unsendable(std::string(186, ' ')));
  CHECK(bin::key_unsendable(std::string(187, ' ')));
  CHECK_FALSE(bin::key_unsendable(std::string(250, 'k')));
}

TEST_CASE("binary reply translation") {
  SUBCASE("get hit, getk hit, misses, quiet misses") {
    auto r = responses(translate(bin::kGetK, "VA 3 f7 c99\r\nabc\r\n", "key"));
    REQUIRE(r.size() == 1);
    CHECK(r[0].status == 0);
    CHECK(r[0].opaque == 0x01020304);
    CHECK(r[0].cas == 99);
    CHECK(r[0].extras == be(7, 4));
    CHECK(r[0].key == "key");
    CHECK(r[0].value == "abc");
    r = responses(translate(bin::kGet, "EN\r\n"));
    CHECK(r[0].status == bin::kKeyNotFound);
    CHECK(r[0].value == "Not found");
    r = responses(translate(bin::kGetK, "EN\r\n", "key"));
    CHECK(r[0].key == "key");
    CHECK(r[0].value.empty());
    CHECK(translate(bin::kGetQ, "EN\r\n").empty());
    CHECK(translate(bin::kGatKQ, "EN\r\n", "k").empty());
    CHECK(responses(translate(bin::kGetQ, "VA 1 f0 c1\r\nx\r\n")).size() == 1);
  }
  SUBCASE("touch") {
    auto r = responses(translate(bin::kTouch, "HD f3 c5\r\n"));
    CHECK(r[0].extras == be(3, 4));
    CHECK(r[0].cas == 5);
    CHECK(r[0].value.empty());
  }
  SUBCASE("stores") {
    CHECK(responses(translate(bin::kSet, "HD c12\r\n"))[0].cas == 12);
    CHECK(translate(bin::kSetQ, "HD c12\r\n").empty());
    CHECK(responses(translate(bin::kAdd, "NS\r\n"))[0].status == bin::kKeyExists);
    CHECK(responses(translate(bin::kReplaceQ, "NS\r\n"))[0].status == bin::kKeyNotFound);
    CHECK(responses(translate(bin::kAppend, "NS\r\n"))[0].status == bin::kItemNotStored);
    CHECK(responses(translate(bin::kSet, "EX\r\n"))[0].value == "Data exists for key.");
    CHECK(responses(translate(bin::kSet, "NF\r\n"))[0].status == bin::kKeyNotFound);
    CHECK(responses(translate(bin::kSet, "SERVER_ERROR object too large for cache\r\n"))[0].value ==
          "Too large.");
    CHECK(responses(translate(bin::kDelete, "HD\r\n"))[0].cas == 0);
    CHECK(translate(bin::kDeleteQ, "HD\r\n").empty());
    CHECK(responses(translate(bin::kDeleteQ, "NF\r\n"))[0].status == bin::kKeyNotFound);
  }
  SUBCASE("arithmetic") {
    auto r = responses(translate(bin::kIncrement, "VA 2 c8\r\n42\r\n"));
    CHECK(r[0].value == be(42, 8));
    CHECK(r[0].cas == 8);
    CHECK(translate(bin::kIncrementQ, "VA 2 c8\r\n42\r\n").empty());
    r = responses(translate(bin::kDecrement,
                            "CLIENT_ERROR cannot increment or decrement non-numeric value\r\n"));
    CHECK(r[0].status == bin::kNonNumeric);
    CHECK(r[0].value == "Non-numeric server-side value for incr or decr");
  }
  SUBCASE("dproxy's own errors keep their text") {
    auto r = responses(translate(bin::kGet, "SERVER_ERROR backend 127.0.0.1:1 is down\r\n"));
    CHECK(r[0].status == bin::kInternalError);
    CHECK(r[0].value == "backend 127.0.0.1:1 is down");
    r = responses(translate(bin::kSet, "CLIENT_ERROR cas is not supported\r\n"));
    CHECK(r[0].status == bin::kInvalidArguments);
  }
  SUBCASE("flush and stats") {
    CHECK(responses(translate(bin::kFlush, "OK\r\n"))[0].status == 0);
    CHECK(translate(bin::kFlushQ, "OK\r\n").empty());
    auto r = responses(translate(bin::kStat, "STAT pid 12\r\nSTAT version 1.6\r\nEND\r\n"));
    REQUIRE(r.size() == 3);
    CHECK(r[0].key == "pid");
    CHECK(r[0].value == "12");
    CHECK(r[2].key.empty());
    CHECK(r[2].value.empty());
    CHECK(responses(translate(bin::kStat, "RESET\r\n")).size() == 1);
  }
}

TEST_CASE("binary SASL: the opcodes' headers and PLAIN messages") {
  bin::Request r;
  const std::string list = packet(bin::kSaslListMechs, {});
  CHECK(bin::parse_request(list, 1024, r).status == ParseStatus::kOk);
  CHECK(r.op == bin::Op::kSasl);
  CHECK(bin::parse_request(packet(bin::kSaslListMechs, {}, {}, "x"), 1024, r).close);
  CHECK(bin::parse_request(packet(bin::kSaslAuth, {}, {}, "x"), 1024, r).close);
  const std::string auth = packet(bin::kSaslAuth, "PLAIN", {}, "\0u\0p"s);
  CHECK(bin::parse_request(auth, 1024, r).status == ParseStatus::kOk);
  std::string_view user;
  std::string_view password;
  REQUIRE(bin::parse_sasl_plain(r.value, user, password));
  CHECK(user == "u");
  CHECK(password == "p");
  const std::string same_authzid = "u\0u\0p w"s;  // NOTE: user and password point into it
  CHECK(bin::parse_sasl_plain(same_authzid, user, password));
  CHECK(password == "p w");
  CHECK_FALSE(bin::parse_sasl_plain("other\0u\0p"s, user, password));  // another authzid
  CHECK_FALSE(bin::parse_sasl_plain("\0\0p"s, user, password));        // no user
  CHECK_FALSE(bin::parse_sasl_plain("u p"s, user, password));
}

TEST_CASE("meta reply scanning (ReplyKind::kMeta)") {
  bool is_error = false;
  CHECK(mc::scan_reply("HD c5\r\nextra", mc::ReplyKind::kMeta, &is_error).consumed == 7);
  CHECK(mc::scan_reply("EN\r\n", mc::ReplyKind::kMeta).consumed == 4);
  CHECK(mc::scan_reply("VA 3 f1\r\nabc\r\nEN\r\n", mc::ReplyKind::kMeta).consumed == 14);
  CHECK(mc::scan_reply("VA 3 f1\r\nab", mc::ReplyKind::kMeta).status == ParseStatus::kNeedMore);
  CHECK(mc::scan_reply("VA 3 f1\r\nabcd\r\n", mc::ReplyKind::kMeta).status == ParseStatus::kError);
  CHECK(mc::scan_reply("STORED\r\n", mc::ReplyKind::kMeta).status == ParseStatus::kError);
  CHECK(mc::scan_reply("SERVER_ERROR x\r\n", mc::ReplyKind::kMeta, &is_error).status ==
        ParseStatus::kOk);
  CHECK(is_error);
}
