// Unit tests for the memcached ASCII backend reply scanner and ValueIterator.

#include <doctest/doctest.h>

#include <cstdint>
#include <ostream>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/memcache/reply_parser.h"

namespace {

using namespace std::string_literals;
using dproxy::protocol::ParseResult;
using dproxy::protocol::ParseStatus;
namespace mc = dproxy::protocol::memcache;
using mc::ReplyKind;
using mc::ValueItem;
using mc::ValueIterator;

constexpr ReplyKind kLine = ReplyKind::kLine;
constexpr ReplyKind kRetrieval = ReplyKind::kRetrieval;

// A comparable snapshot of one scan_reply result.
struct Scan {
  ParseStatus status = ParseStatus::kNeedMore;
  size_t consumed = 0;
  bool is_error = false;

  bool operator==(const Scan&) const = default;
};

std::ostream& operator<<(std::ostream& os, const Scan& s) {
  const char* names[] = {"Ok", "NeedMore", "Error"};
  return os << names[static_cast<int>(s.status)] << "{consumed=" << s.consumed
            << " is_error=" << s.is_error << "}";
}

std::ostream& operator<<(std::ostream& os, const std::vector<Scan>& v) {
  os << "[";
  for (const Scan& s : v) os << s << " ";
  return os << "]";
}

std::string escape(std::string_view s) {
  std::string r;
  for (char ch : s) {
    auto b = static_cast<unsigned char>(ch);
    if (ch == '\r') {
      r += "\\r";
    } else if (ch == '\n') {
      r += "\\n";
    } else if (b < 0x20 || b >= 0x7f) {
      const char* hex = "0123456789abcdef";
      r += "\\x";
      r += hex[b >> 4];
      r += hex[b & 15];
    } else {
      r += ch;
    }
  }
  return r;
}

Scan scan(std::string_view in, ReplyKind kind) {
  bool is_error = true;  // must be overwritten
  ParseResult r = mc::scan_reply(in, kind, &is_error);
  Scan s{r.status, r.status == ParseStatus::kNeedMore ? 0 : r.consumed, is_error};
  if (r.status == ParseStatus::kError) {
    CHECK(r.close);
    CHECK(r.consumed == in.size());
    CHECK(r.error == mc::kBadReplyError);
    s.consumed = 0;
    s.is_error = false;
  }
  if (r.status == ParseStatus::kNeedMore) CHECK(!is_error);
  return s;
}

Scan ok(size_t consumed, bool is_error = false) {
  return {ParseStatus::kOk, consumed, is_error};
}
const Scan kBad{ParseStatus::kError, 0, false};

// `reply` is exactly one complete reply: every proper prefix is NeedMore, the whole is kOk, and
// bytes following it (the next reply) change nothing.
void expect_reply(std::string_view reply, ReplyKind kind, bool is_error = false) {
  INFO("reply: ", escape(reply.substr(0, 300)));
  const size_t step = reply.size() > 4096 ? 997 : 1;
  for (size_t n = 0; n < reply.size(); n += step) {
    INFO("prefix ", n);
    REQUIRE(scan(reply.substr(0, n), kind).status == ParseStatus::kNeedMore);
  }
  CHECK(scan(reply, kind) == ok(reply.size(), is_error));
  // Resumed over growing prefixes (as a backend connection reads), the scan agrees.
  mc::ReplyScanState state;
  for (size_t n = 0; n < reply.size(); n += step) {
    INFO("resumed prefix ", n);
    REQUIRE(mc::scan_reply(reply.substr(0, n), kind, state).status == ParseStatus::kNeedMore);
  }
  bool resumed_error = !is_error;
  ParseResult whole = mc::scan_reply(reply, kind, state, &resumed_error);
  CHECK(whole.status == ParseStatus::kOk);
  CHECK(whole.consumed == reply.size());
  CHECK(resumed_error == is_error);
  CHECK(state.pos == 0);
  for (const char* next : {"END\r\n", "STORED\r\n", "VALUE k 0 1\r\nx\r\nEND\r\n", "garbage"}) {
    CHECK(scan(std::string(reply) + next, kind) == ok(reply.size(), is_error));
  }
}

// `in` is malformed: prefixes are NeedMore until the scanner can tell, kError from then on.
void expect_malformed(std::string_view in, ReplyKind kind) {
  INFO("input: ", escape(in.substr(0, 300)));
  bool known = false;
  for (size_t n = 0; n <= in.size(); ++n) {
    Scan s = scan(in.substr(0, n), kind);
    if (!known && s.status == ParseStatus::kNeedMore) continue;
    known = true;
    INFO("prefix ", n);
    REQUIRE(s == kBad);
  }
  CHECK(known);
}

// Reads replies of the given kinds from a stream fed in `chunks`, like a backend connection:
// returns each reply's (status, size, is_error), stopping at the first kError or NeedMore.
std::vector<Scan> drive(const std::vector<std::string_view>& chunks,
                        const std::vector<ReplyKind>& kinds) {
  std::vector<Scan> out;
  std::string buf;
  size_t next_kind = 0;
  for (std::string_view chunk : chunks) {
    buf.append(chunk);
    while (next_kind < kinds.size()) {
      Scan s = scan(buf, kinds[next_kind]);
      if (s.status == ParseStatus::kNeedMore) break;
      out.push_back(s);
      if (s.status == ParseStatus::kError) return out;
      buf.erase(0, s.consumed);
      ++next_kind;
    }
  }
  out.push_back({ParseStatus::kNeedMore, buf.size(), false});
  return out;
}

void expect_stream(std::string_view stream, const std::vector<ReplyKind>& kinds,
                   const std::vector<Scan>& expected) {
  INFO("stream: ", escape(stream));
  CHECK(drive({stream}, kinds) == expected);
  std::vector<std::string_view> bytes;
  for (size_t i = 0; i < stream.size(); ++i) bytes.push_back(stream.substr(i, 1));
  CHECK(drive(bytes, kinds) == expected);
  for (size_t i = 0; i <= stream.size(); ++i) {
    INFO("split at ", i);
    CHECK(drive({stream.substr(0, i), stream.substr(i)}, kinds) == expected);
  }
}

// --- line replies -----------------------------------------------------------------------------

TEST_CASE("memcache reply: single lines") {
  for (const char* line :
       {"STORED\r\n", "NOT_STORED\r\n", "EXISTS\r\n", "NOT_FOUND\r\n", "DELETED\r\n", "TOUCHED\r\n",
        "OK\r\n", "12345\r\n", "7   \r\n", "VERSION 1.6.21\r\n", "END\r\n", "\r\n", "ERRORS\r\n",
        "SERVER_ERRORS\r\n", "CLIENT_ERROR_X\r\n", "error\r\n"}) {
    expect_reply(line, kLine, false);
  }
}

TEST_CASE("memcache reply: error lines") {
  for (const char* line : {"ERROR\r\n", "ERROR unknown command\r\n", "CLIENT_ERROR\r\n",
                           "CLIENT_ERROR bad data chunk\r\n", "SERVER_ERROR\r\n",
                           "SERVER_ERROR out of memory storing object\r\n"}) {
    expect_reply(line, kLine, true);
    expect_reply(line, kRetrieval, true);
  }
}

TEST_CASE("memcache reply: is_error is optional and reset") {
  ParseResult r = mc::scan_reply("STORED\r\n", kLine);
  CHECK(r.status == ParseStatus::kOk);
  CHECK(r.consumed == 8);
  bool is_error = true;
  r = mc::scan_reply("STORED\r\n", kLine, &is_error);
  CHECK(!is_error);
  r = mc::scan_reply("ERROR\r\n", kLine, &is_error);
  CHECK(is_error);
  r = mc::scan_reply("END\r\n", kRetrieval, &is_error);
  CHECK(!is_error);
}

TEST_CASE("memcache reply: malformed lines") {
  expect_malformed("STORED\n", kLine);
  expect_malformed("\n", kLine);
  expect_malformed("END\n", kRetrieval);
  expect_malformed("ERROR\n", kRetrieval);
  // No "\n" within kMaxReplyLineBytes.
  const std::string almost(mc::kMaxReplyLineBytes - 1, 'x');
  CHECK(scan(almost, kLine).status == ParseStatus::kNeedMore);
  CHECK(scan(almost + "x", kLine) == kBad);
  CHECK(scan(std::string(mc::kMaxReplyLineBytes + 10, 'x') + "\r\n", kLine) == kBad);
  CHECK(scan(std::string(mc::kMaxReplyLineBytes, 'x'), kRetrieval) == kBad);
  // The longest accepted line: "\n" is the last byte of the window.
  const std::string longest = std::string(mc::kMaxReplyLineBytes - 2, 'x') + "\r\n";
  CHECK(scan(longest, kLine) == ok(longest.size()));
}

TEST_CASE("memcache reply: pipelined lines") {
  expect_stream("STORED\r\nDELETED\r\nERROR\r\n42\r\n", {kLine, kLine, kLine, kLine},
                {ok(8), ok(9), ok(7, true), ok(4), {ParseStatus::kNeedMore, 0, false}});
}

// --- retrieval replies ------------------------------------------------------------------------

TEST_CASE("memcache reply: retrieval hits and misses") {
  expect_reply("END\r\n", kRetrieval);
  expect_reply("VALUE k 0 3\r\nabc\r\nEND\r\n", kRetrieval);
  expect_reply("VALUE k 4294967295 0\r\n\r\nEND\r\n", kRetrieval);
  expect_reply("VALUE a 1 1\r\nx\r\nVALUE bb 2 2\r\nyy\r\nVALUE ccc 3 3\r\nzzz\r\nEND\r\n",
               kRetrieval);
  // gets: with cas unique.
  expect_reply("VALUE k 5 3 18446744073709551615\r\nabc\r\nEND\r\n", kRetrieval);
  expect_reply("VALUE a 0 1 1\r\nx\r\nVALUE b 0 1 2\r\ny\r\nEND\r\n", kRetrieval);
}

TEST_CASE("memcache reply: retrieval data is binary") {
  const std::string data = "\r\nEND\r\n\0VALUE x 0 1\r\nSERVER_ERROR z\r\n\xff"s;
  const std::string reply =
      "VALUE bin 0 " + std::to_string(data.size()) + "\r\n" + data + "\r\nEND\r\n";
  expect_reply(reply, kRetrieval);
  const std::string only_crlf = "VALUE k 0 2\r\n\r\n\r\nEND\r\n";
  expect_reply(only_crlf, kRetrieval);
  const std::string big = "VALUE k 0 1048576\r\n" + std::string(1048576, '\n') + "\r\nEND\r\n";
  expect_reply(big, kRetrieval);
}

TEST_CASE("memcache reply: retrieval ended by an error line") {
  expect_reply("SERVER_ERROR out of memory writing get response\r\n", kRetrieval, true);
  expect_reply("ERROR\r\n", kRetrieval, true);
  expect_reply("VALUE k 0 1\r\nx\r\nSERVER_ERROR out of memory\r\n", kRetrieval, true);
  expect_reply("VALUE k 0 1\r\nx\r\nVALUE j 0 1\r\ny\r\nCLIENT_ERROR oops\r\n", kRetrieval, true);
}

TEST_CASE("memcache reply: retrieval size hint") {
  ParseResult r = mc::scan_reply("VALUE k 0 10\r\nab", kRetrieval);
  CHECK(r.status == ParseStatus::kNeedMore);
  CHECK(r.size_hint == 14 + 12 + 5);
  r = mc::scan_reply("VALUE k 0 1\r\na\r\nEN", kRetrieval);
  CHECK(r.status == ParseStatus::kNeedMore);
  CHECK(r.size_hint == 21);
  r = mc::scan_reply("VALUE k 0 1", kRetrieval);
  CHECK(r.status == ParseStatus::kNeedMore);
  CHECK(r.size_hint == 0);
}

TEST_CASE("memcache reply: malformed retrieval replies") {
  for (std::string in : {
           "STORED\r\n"s,                            // not a retrieval line
           "VALUE\r\n"s,                             // no fields
           "VALUE k\r\n"s,                           // missing flags and bytes
           "VALUE k 0\r\n"s,                         // missing bytes
           "VALUE k x 1\r\nx\r\nEND\r\n"s,           // bad flags
           "VALUE k 0 x\r\nx\r\nEND\r\n"s,           // bad bytes
           "VALUE k 0 -1\r\nEND\r\n"s,               // negative bytes
           "VALUE k 0 1 x\r\nx\r\nEND\r\n"s,         // bad cas
           "VALUE k 0 1 1 1\r\nx\r\nEND\r\n"s,       // too many fields
           "VALUE k 4294967296 1\r\nx\r\nEND\r\n"s,  // flags above 32 bits
           "VALUE k 0 99999999999\r\n"s,             // absurd length
           "VALUEk 0 1\r\nx\r\nEND\r\n"s,            // not a VALUE line
           "value k 0 1\r\nx\r\nEND\r\n"s,           // case-sensitive
           "VALUE k 0 1\r\nxy\r\nEND\r\n"s,          // data not followed by CRLF
           "VALUE k 0 1\r\nx\n\r\nEND\r\n"s,         // data not followed by CRLF
           "VALUE k 0 1\r\nx\r\nSTORED\r\n"s,        // unexpected line after an item
           "VALUE k 0 1\r\nx\r\nEND \r\n"s,          // not END
           "END\n"s,                                 // bare LF
           "VALUE k 0 1\nx\r\nEND\r\n"s,             // bare LF
           "\r\n"s,                                  // empty line
       }) {
    expect_malformed(in, kRetrieval);
  }
}

TEST_CASE("memcache reply: pipelined retrieval and line replies") {
  const std::string hit = "VALUE k 0 5\r\nEND\r\n\r\nEND\r\n";
  const std::string stream = hit + "STORED\r\n" + "END\r\n" + "SERVER_ERROR x\r\n" + hit + "NO";
  expect_stream(stream, {kRetrieval, kLine, kRetrieval, kRetrieval, kRetrieval, kLine},
                {ok(hit.size()),
                 ok(8),
                 ok(5),
                 ok(16, true),
                 ok(hit.size()),
                 {ParseStatus::kNeedMore, 2, false}});
  // A malformed reply stops the connection.
  expect_stream("END\r\nVALUE k 0 1\r\nxx\r\nEND\r\nSTORED\r\n", {kRetrieval, kRetrieval, kLine},
                {ok(5), kBad});
}

// --- ValueIterator ----------------------------------------------------------------------------

std::vector<ValueItem> items_of(std::string_view reply) {
  std::vector<ValueItem> items;
  ValueIterator it(reply);
  ValueItem item;
  while (it.next(item)) items.push_back(item);
  CHECK(!it.next(item));  // stays at the end
  return items;
}

TEST_CASE("memcache reply: VALUE line shapes (fast path and general path agree)") {
  // Accepted: the key, flags, bytes and cas as memcached may send them, and looser spacing.
  const std::string accepted[] = {
      "VALUE k 0 1\r\nx\r\n",
      "VALUE k 123456789 1\r\nx\r\n",
      "VALUE k 1234567890 1\r\nx\r\n",  // 10-digit flags
      "VALUE k 4294967295 1\r\nx\r\n",  // uint32 max
      "VALUE k 0 001\r\nx\r\n",         // leading zeros
      "VALUE k 0 0000000001\r\nx\r\n",  // 10-digit bytes
      "VALUE k 0 1 123456789012345678\r\nx\r\n",
      "VALUE k 0 1 18446744073709551615\r\nx\r\n",  // uint64 max cas
      "VALUE  k 0 1\r\nx\r\n",                      // extra spaces
      "VALUE k  0  1\r\nx\r\n",
      "VALUE k 0 1 \r\nx\r\n",
      "VALUE k 0 1 5 \r\nx\r\n",
      "VALUE a\rb 0 1\r\nx\r\n",  // a CR inside the key
      "VALUE key:0000000012345678 0 32\r\n0123456789abcdef0123456789abcdef\r\n",
  };
  for (const std::string& item : accepted) {
    const std::string reply = item + "END\r\n";
    expect_reply(reply, kRetrieval);
    std::vector<ValueItem> items = items_of(reply);
    REQUIRE(items.size() == 1);
    CHECK(items[0].bytes == item);
  }
  const std::string rejected[] = {
      "VALUE k 4294967296 1\r\nx\r\nEND\r\n",  // flags above uint32
      "VALUE k 0 1 18446744073709551616\r\nx\r\nEND\r\n",
      "VALUE k 0 1 2 3\r\nx\r\nEND\r\n",
      "VALUE k -1 1\r\nx\r\nEND\r\n",
      "VALUE k 0 +1\r\nx\r\nEND\r\n",
      "VALUE k 0\r\nEND\r\n",
      "VALUE k\r\nEND\r\n",
      "VALUE k 0 1\nx\r\nEND\r\n",
      "VALUE k 0 1\r\nxy\r\nEND\r\n",
      "VALUE k 0 1x\r\nx\r\nEND\r\n",
  };
  for (const std::string& in : rejected) expect_malformed(in, kRetrieval);
}

TEST_CASE("memcache reply: marks locate each item and its key") {
  const std::string a = "VALUE a 1 1\r\nx\r\n";
  const std::string b = "VALUE  bb 2 9 77 \r\n\r\nEND\r\n\0\xff\r\n"s;  // general path
  const std::string c = "VALUE key:00000001 0 3\r\nabc\r\n";
  const std::string reply = a + b + c + "END\r\n";
  const std::vector<size_t> want = {6,
                                    1,
                                    a.size(),
                                    a.size() + 7,
                                    2,
                                    a.size() + b.size(),
                                    a.size() + b.size() + 6,
                                    12,
                                    a.size() + b.size() + c.size()};
  for (size_t step : {size_t{1}, size_t{5}, reply.size()}) {
    CAPTURE(step);
    mc::ReplyScanState state;
    std::vector<size_t> marks = {1, 2, 3};  // cleared by the scan
    for (size_t n = step; n < reply.size(); n += step) {
      REQUIRE(
          mc::scan_reply(std::string_view(reply).substr(0, n), kRetrieval, state, nullptr, &marks)
              .status == ParseStatus::kNeedMore);
    }
    ParseResult r = mc::scan_reply(reply, kRetrieval, state, nullptr, &marks);
    REQUIRE(r.status == ParseStatus::kOk);
    CHECK(marks == want);
  }
  std::vector<size_t> marks = {1};
  mc::ReplyScanState state;
  CHECK(mc::scan_reply("END\r\n", kRetrieval, state, nullptr, &marks).status == ParseStatus::kOk);
  CHECK(marks.empty());
}

TEST_CASE("memcache reply: a resumed scan reads many items once each") {
  std::string reply;
  for (int i = 0; i < 1000; ++i) {
    reply += "VALUE key" + std::to_string(i) + " 0 5\r\nvalue\r\n";
  }
  reply += "END\r\n";
  mc::ReplyScanState state;
  // Fed 7 bytes at a time: every call but the last is NeedMore and the state moves forward.
  size_t last_pos = 0;
  for (size_t n = 7; n < reply.size(); n += 7) {
    ParseResult r = mc::scan_reply(std::string_view(reply).substr(0, n), kRetrieval, state);
    REQUIRE(r.status == ParseStatus::kNeedMore);
    CHECK(state.pos >= last_pos);
    CHECK(state.pos <= n);
    last_pos = state.pos;
  }
  ParseResult r = mc::scan_reply(reply, kRetrieval, state);
  CHECK(r.status == ParseStatus::kOk);
  CHECK(r.consumed == reply.size());
  CHECK(state.pos == 0);
}

TEST_CASE("memcache reply: ValueIterator") {
  CHECK(items_of("END\r\n").empty());
  CHECK(items_of("").empty());
  CHECK(items_of("SERVER_ERROR x\r\n").empty());

  const std::string a = "VALUE a 1 1\r\nx\r\n";
  const std::string b = "VALUE bb 2 9 77\r\n\r\nEND\r\n\0\xff\r\n"s;
  const std::string c = "VALUE ccc 0 0\r\n\r\n";
  const std::string reply = a + b + c + "END\r\n";
  REQUIRE(scan(reply, kRetrieval) == ok(reply.size()));
  std::vector<ValueItem> items = items_of(reply);
  REQUIRE(items.size() == 3);
  CHECK(items[0].key == "a");
  CHECK(items[0].bytes == a);
  CHECK(items[1].key == "bb");
  CHECK(items[1].bytes == b);
  CHECK(items[2].key == "ccc");
  CHECK(items[2].bytes == c);
  // Views point into the reply.
  CHECK(items[0].bytes.data() == reply.data());
  CHECK(items[1].key.data() == reply.data() + a.size() + 6);

  // An error line after items ends the iteration.
  const std::string with_error = a + "SERVER_ERROR out of memory\r\n";
  std::vector<ValueItem> partial = items_of(with_error);
  REQUIRE(partial.size() == 1);
  CHECK(partial[0].bytes == a);
  // Truncated or malformed items are not returned.
  CHECK(items_of("VALUE a 0 5\r\nabc").empty());
  CHECK(items_of("VALUE a 0 1\r\nxy\r\n").empty());
  CHECK(items_of("VALUE a x 1\r\nx\r\nEND\r\n").empty());
}

// --- randomized -------------------------------------------------------------------------------

TEST_CASE("memcache reply: randomized retrieval replies") {
  std::mt19937 rng(4242);
  for (int iter = 0; iter < 300; ++iter) {
    std::string reply;
    std::vector<std::string> keys;
    std::vector<std::string> items;
    const int n = static_cast<int>(rng() % 5);
    for (int i = 0; i < n; ++i) {
      std::string data;
      const size_t len = rng() % 40;
      for (size_t j = 0; j < len; ++j) data += "\r\nEND \0x"s[rng() % 8];
      keys.push_back("key" + std::to_string(rng() % 1000));
      const std::string flags = std::to_string(rng());
      const bool with_cas = rng() % 2 == 0;
      const std::string cas = with_cas ? " " + std::to_string(rng()) : "";
      const std::string item = "VALUE " + keys.back() + " " + flags + " " + std::to_string(len) +
                               cas + "\r\n" + data + "\r\n";
      items.push_back(item);
      reply += item;
    }
    const bool error = rng() % 4 == 0;
    reply += error ? "SERVER_ERROR busy\r\n" : "END\r\n";
    INFO("reply: ", escape(reply));
    expect_reply(reply, kRetrieval, error);
    std::vector<ValueItem> got = items_of(reply);
    REQUIRE(got.size() == items.size());
    for (size_t i = 0; i < items.size(); ++i) {
      CHECK(got[i].key == keys[i]);
      CHECK(got[i].bytes == items[i]);
    }
    // Random corruption never crashes and never reads past the input.
    std::string bad = reply;
    bad[rng() % bad.size()] = static_cast<char>(rng() % 256);
    for (size_t len = 0; len <= bad.size(); ++len) {
      std::string_view prefix(bad.data(), len);
      ParseResult r = mc::scan_reply(prefix, kRetrieval);
      if (r.status == ParseStatus::kOk) CHECK(r.consumed <= len);
      ValueIterator it(prefix);
      ValueItem item;
      while (it.next(item)) {
        CHECK(item.bytes.data() >= prefix.data());
        CHECK(item.bytes.data() + item.bytes.size() <= prefix.data() + prefix.size());
      }
    }
  }
}

}  // namespace

TEST_CASE("memcache reply: each command accepts only its own answers") {
  using K = ReplyKind;
  const std::pair<K, std::vector<std::string>> ok[] = {
      {K::kStorage, {"STORED\r\n", "NOT_STORED\r\n", "EXISTS\r\n", "NOT_FOUND\r\n"}},
      {K::kDelete, {"DELETED\r\n", "NOT_FOUND\r\n"}},
      {K::kArith, {"0\r\n", "18446744073709551615\r\n", "NOT_FOUND\r\n"}},
      {K::kTouch, {"TOUCHED\r\n", "NOT_FOUND\r\n"}},
      {K::kOk, {"OK\r\n"}},
      {K::kVersion, {"VERSION 1.6.18\r\n"}},
  };
  for (const auto& [kind, replies] : ok) {
    for (const auto& reply : replies) {
      CAPTURE(reply);
      expect_reply(reply, kind, false);
    }
    // Error lines are answers to every command.
    expect_reply("SERVER_ERROR out of memory\r\n", kind, true);
    expect_reply("CLIENT_ERROR bad data chunk\r\n", kind, true);
    expect_reply("ERROR\r\n", kind, true);
    // Anything else means the backend is out of sync (or is not memcached at all).
    expect_malformed("HTTP/1.1 400 Bad Request\r\n", kind);
    expect_malformed("END\r\n", kind);
  }
  expect_malformed("STORED\r\n", K::kDelete);
  expect_malformed("DELETED\r\n", K::kStorage);
  expect_malformed("4a\r\n", K::kArith);
  expect_malformed("-1\r\n", K::kArith);
  expect_malformed("123456789012345678901\r\n", K::kArith);
  expect_malformed("VERSION\r\n", K::kVersion);
  expect_malformed("TOUCHED\r\n", K::kOk);
}

TEST_CASE("memcache reply: stats groups and stats reset") {
  using mc::ReplyKind;
  for (const char* reply :
       {"END\r\n", "STAT items:1:number 3\r\nSTAT items:1:age 7\r\nEND\r\n",
        "ITEM k [1 b; 0 s]\r\nEND\r\n", "PREFIX a get 1 hit 0 set 1 del 0\r\nEND\r\n",
        "STAT x ERROR\r\nEND\r\n", "STAT a\r\nERROR\r\nEND\r\n"}) {
    expect_reply(reply, ReplyKind::kStats, false);
  }
  // An error line as the first line ends the reply.
  expect_reply("CLIENT_ERROR bad command line\r\n", ReplyKind::kStats, true);
  expect_reply("ERROR\r\n", ReplyKind::kStats, true);
  expect_malformed("STAT a\nEND\r\n", ReplyKind::kStats);
  // The scan resumes where it stopped.
  mc::ReplyScanState state;
  const std::string reply = "STAT a 1\r\nSTAT b 2\r\nEND\r\n";
  CHECK(mc::scan_reply(std::string_view(reply).substr(0, 14), ReplyKind::kStats, state).status ==
        ParseStatus::kNeedMore);
  CHECK(state.pos == 10);
  const ParseResult r = mc::scan_reply(reply, ReplyKind::kStats, state);
  CHECK(r.status == ParseStatus::kOk);
  CHECK(r.consumed == reply.size());
  expect_reply("RESET\r\n", ReplyKind::kReset, false);
  expect_reply("ERROR\r\n", ReplyKind::kReset, true);
  expect_malformed("OK\r\n", ReplyKind::kReset);
}
