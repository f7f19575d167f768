// Unit tests for the RESP2 / RESP3 reply scanner, parse_int64, parse_integer_reply and
// ArrayReader.

#include <doctest/doctest.h>

#include <cstdint>
#include <limits>
#include <ostream>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/resp/reply_parser.h"

namespace {

using namespace std::string_literals;
using dproxy::protocol::ParseResult;
using dproxy::protocol::ParseStatus;
namespace resp = dproxy::protocol::resp;
using resp::ArrayReader;
using resp::ReplyScanState;

// A comparable snapshot of one scan_reply result.
struct Scan {
  ParseStatus status = ParseStatus::kNeedMore;
  size_t consumed = 0;
  bool is_error = false;
  size_t size_hint = 0;

  bool operator==(const Scan&) const = default;
};

std::ostream& operator<<(std::ostream& os, const Scan& s) {
  const char* names[] = {"Ok", "NeedMore", "Error"};
  return os << names[static_cast<int>(s.status)] << "{consumed=" << s.consumed
            << " is_error=" << s.is_error << " hint=" << s.size_hint << "}";
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

// Scans `in` statelessly and with a fresh state; both must agree and obey the contract.
Scan scan(std::string_view in) {
  bool is_error = true;  // must be overwritten
  ParseResult r = resp::scan_reply(in, &is_error);
  Scan s{r.status, r.consumed, is_error, r.size_hint};
  if (r.status == ParseStatus::kError) {
    CHECK(r.close);
    CHECK(r.consumed == in.size());
    CHECK(r.error == resp::kBadReplyError);
    CHECK(!is_error);
    s.consumed = 0;
  } else if (r.status == ParseStatus::kNeedMore) {
    CHECK(!is_error);
    CHECK(r.consumed == 0);
    CHECK((r.size_hint == 0 || r.size_hint > in.size()));
  } else {
    CHECK(r.consumed > 0);
    CHECK(r.consumed <= in.size());
  }
  ReplyScanState state;
  bool is_error2 = true;
  ParseResult r2 = resp::scan_reply(in, state, &is_error2);
  CHECK(r2.status == r.status);
  CHECK(r2.consumed == r.consumed);
  CHECK(r2.size_hint == r.size_hint);
  CHECK(is_error2 == is_error);
  if (r2.status != ParseStatus::kNeedMore) CHECK(state.pending == 0);
  return s;
}

Scan ok(size_t consumed, bool is_error = false) {
  return {ParseStatus::kOk, consumed, is_error, 0};
}
Scan need_more(size_t hint = 0) {
  return {ParseStatus::kNeedMore, 0, false, hint};
}
Scan bad() {
  return {ParseStatus::kError, 0, false, 0};
}

// `reply` is exactly one complete reply: every proper prefix is NeedMore (also when scanned
// incrementally with a state), the whole is Ok, and bytes after it do not change the result.
void expect_reply(std::string_view reply, bool is_error = false) {
  INFO("reply: ", escape(reply));
  ReplyScanState state;
  for (size_t n = 0; n < reply.size(); ++n) {
    INFO("prefix ", n);
    const Scan s = scan(reply.substr(0, n));
    REQUIRE(s.status == ParseStatus::kNeedMore);
    CHECK(s.size_hint <= reply.size());
    ParseResult r = resp::scan_reply(reply.substr(0, n), state);
    CHECK(r.status == ParseStatus::kNeedMore);
    CHECK(r.size_hint == s.size_hint);
  }
  CHECK(scan(reply) == ok(reply.size(), is_error));
  bool e = !is_error;
  ParseResult r = resp::scan_reply(reply, state, &e);
  CHECK(r.status == ParseStatus::kOk);
  CHECK(r.consumed == reply.size());
  CHECK(e == is_error);
  CHECK(state.pending == 0);
  CHECK(scan(std::string(reply) + "+OK\r\n") == ok(reply.size(), is_error));
  CHECK(scan(std::string(reply) + "garbage") == ok(reply.size(), is_error));
}

// `input` is malformed: its prefixes are NeedMore up to some point, then every longer prefix
// (and the whole) is kError.
void expect_bad(std::string_view input) {
  INFO("input: ", escape(input));
  bool known = false;
  for (size_t n = 0; n <= input.size(); ++n) {
    INFO("prefix ", n);
    const Scan s = scan(input.substr(0, n));
    if (!known && s.status == ParseStatus::kNeedMore) continue;
    known = true;
    CHECK(s == bad());
  }
  CHECK(known);
}

// --- well-formed replies ----------------------------------------------------------------------

TEST_CASE("resp reply: simple types") {
  expect_reply("+OK\r\n");
  expect_reply("+\r\n");
  expect_reply("+QUEUED\r\n");
  expect_reply("-ERR unknown command 'foo'\r\n", true);
  expect_reply("-\r\n", true);
  expect_reply("-WRONGTYPE Operation against a key holding the wrong kind of value\r\n", true);
  expect_reply(":0\r\n");
  expect_reply(":-1\r\n");
  expect_reply(":9223372036854775807\r\n");
  expect_reply(":-9223372036854775808\r\n");
  // A '\r' not followed by '\n' is part of a status line (as hiredis reads it).
  expect_reply("+a\rb\r\n");
}

TEST_CASE("resp reply: bulk strings") {
  expect_reply("$3\r\nfoo\r\n");
  expect_reply("$0\r\n\r\n");
  expect_reply("$-1\r\n");
  expect_reply("$8\r\n\r\n\0\xff\r\n+O\r\n"s);
  expect_reply("$5\r\n$3\r\nx\r\n");
  const std::string big(100000, 'v');
  expect_reply("$100000\r\n" + big + "\r\n");
}

TEST_CASE("resp reply: arrays") {
  expect_reply("*0\r\n");
  expect_reply("*-1\r\n");
  expect_reply("*1\r\n+OK\r\n");
  expect_reply("*3\r\n$3\r\nfoo\r\n$-1\r\n:7\r\n");
  expect_reply("*2\r\n*1\r\n:1\r\n$-1\r\n");
  expect_reply("*3\r\n*0\r\n*-1\r\n*2\r\n*1\r\n*0\r\n-ERR x\r\n");
  // EXEC with an error inside: not an error reply at the top level.
  expect_reply("*2\r\n+OK\r\n-ERR inner\r\n", false);
  // Arrays of arrays: SCAN, XRANGE-like shapes.
  expect_reply("*2\r\n$1\r\n0\r\n*2\r\n$1\r\na\r\n$1\r\nb\r\n");
  expect_reply("*1\r\n*2\r\n$3\r\n1-0\r\n*2\r\n$1\r\nf\r\n$1\r\nv\r\n");
}

TEST_CASE("resp reply: deep nesting does not use the stack") {
  for (size_t depth : {100, 100000, 1000000}) {
    std::string reply;
    for (size_t i = 0; i < depth; ++i) reply += "*1\r\n";
    reply += ":1\r\n";
    CHECK(scan(reply) == ok(reply.size()));
    CHECK(scan(reply.substr(0, reply.size() - 1)) == need_more());
    // Wide and deep: *2 at every level.
    std::string wide;
    for (size_t i = 0; i < depth; ++i) wide += "*2\r\n:1\r\n";
    wide += "+x\r\n";
    CHECK(scan(wide) == ok(wide.size()));
  }
}

TEST_CASE("resp reply: pipelined replies") {
  const std::vector<std::string> replies = {
      "+OK\r\n", "$3\r\nabc\r\n", "-ERR e\r\n", "*2\r\n:1\r\n:2\r\n",
      "$-1\r\n", "*-1\r\n",       ":5\r\n",     "*0\r\n"};
  std::string stream;
  for (const auto& r : replies) stream += r;
  std::string_view rest = stream;
  for (const auto& r : replies) {
    const Scan s = scan(rest);
    CHECK(s == ok(r.size(), r[0] == '-'));
    rest.remove_prefix(r.size());
  }
  CHECK(rest.empty());
  CHECK(scan(rest) == need_more());
}

TEST_CASE("resp reply: size hint") {
  CHECK(scan("$") == need_more());
  CHECK(scan("$100\r") == need_more());
  CHECK(scan("$100\r\n") == need_more(108));
  CHECK(scan("$100\r\n" + std::string(100, 'x')) == need_more(108));
  CHECK(scan("$100\r\n" + std::string(101, 'x')) == need_more(108));
  CHECK(scan("*2\r\n$1000\r\n") == need_more(1013));
  CHECK(scan("*2\r\n$1\r\na\r\n") == need_more());
  CHECK(scan("*2\r\n$1\r\na\r\n$10\r\n") == need_more(28));
  // 512 MiB is the largest bulk.
  CHECK(scan("$536870912\r\n") == need_more(12 + 536870912 + 2));
  CHECK(scan("$536870913\r\n") == bad());
}

TEST_CASE("resp reply: a scan state resumes where it stopped") {
  // A large array arriving over many reads: each read costs only its new bytes.
  std::string reply = "*100000\r\n";
  for (int i = 0; i < 100000; ++i)
    reply += "$5\r\nv" + std::to_string(100000 + i).substr(2) + "\r\n";
  ReplyScanState state;
  size_t n = 0;
  for (; n < reply.size(); n += 997) {
    ParseResult r = resp::scan_reply(std::string_view(reply).substr(0, n), state);
    REQUIRE(r.status == ParseStatus::kNeedMore);
    CHECK(state.pending > 0);
    CHECK(state.pos <= n);
  }
  ParseResult r = resp::scan_reply(reply, state);
  CHECK(r.status == ParseStatus::kOk);
  CHECK(r.consumed == reply.size());
  CHECK(state.pending == 0);
  // A cleared state scans the next reply from the start.
  r = resp::scan_reply("*1\r\n:1\r\n", state);
  CHECK(r.status == ParseStatus::kOk);
  CHECK(r.consumed == 8);
  // A state beyond the input (a caller that changed buffers) is ignored.
  CHECK(resp::scan_reply("*3\r\n:1\r\n", state).status == ParseStatus::kNeedMore);
  CHECK(state.pos == 8);
  r = resp::scan_reply("+OK\r\n", state);
  CHECK(r.status == ParseStatus::kOk);
  CHECK(r.consumed == 5);
  // An error clears it too.
  CHECK(resp::scan_reply("*3\r\n:1\r\n", state).status == ParseStatus::kNeedMore);
  CHECK(resp::scan_reply("*3\r\n:1\r\n?", state).status == ParseStatus::kError);
  CHECK(state.pending == 0);
}

// --- malformed replies ------------------------------------------------------------------------

TEST_CASE("resp reply: malformed") {
  for (std::string input : {
           "x\r\n"s,
           "\r\n"s,
           " +OK\r\n"s,
           "+OK\n"s,
           "+\n"s,
           "-ERR\n"s,
           ":\r\n"s,
           ":abc\r\n"s,
           ":01\r\n"s,
           ":+1\r\n"s,
           ":-0\r\n"s,
           ": 1\r\n"s,
           ":1 \r\n"s,
           ":1.5\r\n"s,
           ":1\rx"s,
           ":9223372036854775808\r\n"s,
           ":" + std::string(21, '1'),
           "$\r\n"s,
           "$-2\r\n"s,
           "$abc\r\n"s,
           "$01\r\n"s,
           "$3\r\nfooXY"s,
           "$3\r\nfoo\rX"s,
           "$3\r\nfoo\n\r"s,
           "$0\r\nab"s,
           "*\r\n"s,
           "*-2\r\n"s,
           "*x\r\n"s,
           "*4294967296\r\n"s,
           "*2\r\n:1\r\n?\r\n"s,
           "*1\r\n$2\r\nab\r\r"s,
           "*1\r\n*1\r\n*1\r\n:x\r\n"s,
       }) {
    expect_bad(input);
  }
  // The largest array header is fine (and needs its elements).
  CHECK(scan("*4294967295\r\n:1\r\n") == need_more());
}

TEST_CASE("resp reply: status lines are limited") {
  const std::string content(resp::kMaxReplyLineBytes, 'x');
  CHECK(scan("+" + content + "\r\n") == ok(content.size() + 3));
  CHECK(scan("-" + content + "\r\n") == ok(content.size() + 3, true));
  CHECK(scan("+" + content) == need_more());
  CHECK(scan("+" + content + "\r") == need_more());
  CHECK(scan("+" + content + "xx") == bad());
  CHECK(scan("*1\r\n-" + content + "x\r\n") == bad());
}

TEST_CASE("resp reply: random bytes never crash and agree with the resumed scan") {
  std::mt19937 rng(7);
  const char alphabet[] = "+-:$*\r\n0123456789-xab";
  for (int iter = 0; iter < 20000; ++iter) {
    std::string s;
    const size_t len = rng() % 40;
    for (size_t i = 0; i < len; ++i) s += alphabet[rng() % (sizeof(alphabet) - 1)];
    const Scan whole = scan(s);
    // Scanning growing prefixes with a state gives the same final answer.
    ReplyScanState state;
    ParseResult r;
    for (size_t n = 0; n <= s.size(); ++n) {
      r = resp::scan_reply(std::string_view(s).substr(0, n), state);
      if (r.status != ParseStatus::kNeedMore) break;
    }
    if (whole.status == ParseStatus::kOk) {
      CHECK(r.status == ParseStatus::kOk);
      CHECK(r.consumed == whole.consumed);
    } else {
      CHECK(r.status == whole.status);
    }
  }
}

// --- readers ----------------------------------------------------------------------------------

TEST_CASE("resp reply: parse_int64") {
  struct {
    std::string s;
    bool ok;
    int64_t v;
  } const cases[] = {
      {"0", true, 0},
      {"1", true, 1},
      {"-1", true, -1},
      {"42", true, 42},
      {"9223372036854775807", true, std::numeric_limits<int64_t>::max()},
      {"-9223372036854775808", true, std::numeric_limits<int64_t>::min()},
      {"9223372036854775808", false, 0},
      {"-9223372036854775809", false, 0},
      {"18446744073709551616", false, 0},
      {"99999999999999999999", false, 0},
      {"", false, 0},
      {"-", false, 0},
      {"-0", false, 0},
      {"00", false, 0},
      {"01", false, 0},
      {"+1", false, 0},
      {" 1", false, 0},
      {"1 ", false, 0},
      {"1x", false, 0},
      {"0x10", false, 0},
      {"--1", false, 0},
      {"1-", false, 0},
      {"000000000000000000001", false, 0},
  };
  for (const auto& c : cases) {
    INFO("\"", c.s, "\"");
    int64_t v = 12345;
    CHECK(resp::parse_int64(c.s, v) == c.ok);
    CHECK(v == (c.ok ? c.v : 12345));
  }
}

TEST_CASE("resp reply: the one-pass integer line reader agrees with the general one") {
  namespace detail = resp::detail;
  std::mt19937 rng(3);
  const char alphabet[] = "0123456789-\r\nx";
  std::vector<std::string> inputs = {"0\r\n",
                                     "-0\r\n",
                                     "00\r\n",
                                     "-\r\n",
                                     "\r\n",
                                     "123456789012345678\r\n",
                                     "-123456789012345678\r\n",
                                     "1234567890123456789\r\n",
                                     "9223372036854775807\r\n",
                                     "-9223372036854775808\r\n",
                                     "9223372036854775808\r\n"};
  for (int i = 0; i < 200000; ++i) {
    std::string s;
    const size_t len = rng() % 24;
    for (size_t j = 0; j < len; ++j) {
      s += rng() % 4 == 0 ? alphabet[rng() % (sizeof(alphabet) - 1)]
                          : static_cast<char>('0' + rng() % 10);
    }
    if (rng() % 2 == 0) s += "\r\n";
    inputs.push_back(std::move(s));
  }
  for (const auto& s : inputs) {
    for (size_t pos : {size_t{0}, size_t{1}}) {
      int64_t v1 = 11;
      int64_t v2 = 11;
      size_t n1 = 22;
      size_t n2 = 22;
      const auto s1 = detail::read_integer_line(s, pos, v1, n1);
      const auto s2 = detail::read_integer_line_slow(s, pos, v2, n2);
      INFO(escape(s), " at ", pos);
      REQUIRE(s1 == s2);
      if (s1 != detail::LineStatus::kNeedMore) CHECK(n1 == n2);
      if (s1 == detail::LineStatus::kOk) CHECK(v1 == v2);
    }
  }
}

TEST_CASE("resp reply: parse_integer_reply") {
  int64_t v = 0;
  CHECK(resp::parse_integer_reply(":0\r\n", v));
  CHECK(v == 0);
  CHECK(resp::parse_integer_reply(":-42\r\n", v));
  CHECK(v == -42);
  CHECK(resp::parse_integer_reply(":9223372036854775807\r\n", v));
  CHECK(v == std::numeric_limits<int64_t>::max());
  v = 7;
  for (const char* bad : {"", ":", ":\r\n", ":1", ":1\r", ":1\n", ":1\r\n\r\n", ":1\r\n:2\r\n",
                          "+1\r\n", "$1\r\n1\r\n", ":01\r\n", ":x\r\n", "-ERR\r\n"}) {
    INFO(escape(bad));
    CHECK(!resp::parse_integer_reply(bad, v));
  }
  CHECK(v == 7);
}

std::vector<std::string> elements(std::string_view reply) {
  ArrayReader a(reply);
  std::vector<std::string> out;
  std::string_view e;
  while (a.next(e)) out.emplace_back(e);
  return out;
}

TEST_CASE("resp reply: ArrayReader") {
  {
    ArrayReader a("*3\r\n$3\r\nfoo\r\n$-1\r\n*2\r\n:1\r\n-ERR x\r\n");
    CHECK(a.ok());
    CHECK(a.size() == 3);
    std::string_view e;
    REQUIRE(a.next(e));
    CHECK(e == "$3\r\nfoo\r\n");
    REQUIRE(a.next(e));
    CHECK(e == "$-1\r\n");
    REQUIRE(a.next(e));
    CHECK(e == "*2\r\n:1\r\n-ERR x\r\n");
    CHECK(!a.next(e));
    CHECK(!a.next(e));
    CHECK(a.ok());
  }
  {
    ArrayReader a("*0\r\n");
    CHECK(a.ok());
    CHECK(a.size() == 0);
    std::string_view e;
    CHECK(!a.next(e));
  }
  {
    ArrayReader a("*-1\r\n");
    CHECK(a.ok());
    CHECK(a.size() == -1);
    std::string_view e;
    CHECK(!a.next(e));
  }
  for (const char* not_array :
       {"", "+OK\r\n", "$-1\r\n", ":1\r\n", "*x\r\n", "*-2\r\n", "*1", "-ERR\r\n"}) {
    ArrayReader a(not_array);
    CHECK(!a.ok());
    CHECK(a.size() == -1);
    std::string_view e;
    CHECK(!a.next(e));
  }
  // A truncated or malformed element: next() fails and ok() turns false.
  {
    ArrayReader a("*2\r\n:1\r\n$5\r\nab");
    CHECK(a.ok());
    std::string_view e;
    CHECK(a.next(e));
    CHECK(e == ":1\r\n");
    CHECK(!a.next(e));
    CHECK(!a.ok());
  }
  {
    ArrayReader a("*2\r\n?\r\n:1\r\n");
    std::string_view e;
    CHECK(!a.next(e));
    CHECK(!a.ok());
  }
  // MGET-shaped reply, elements in order.
  CHECK(elements("*4\r\n$1\r\na\r\n$-1\r\n$0\r\n\r\n$2\r\n\r\n\r\n") ==
        std::vector<std::string>{"$1\r\na\r\n", "$-1\r\n", "$0\r\n\r\n", "$2\r\n\r\n\r\n"});
}

TEST_CASE("resp reply: marks are the element ends of a flat array") {
  const auto marks_of = [](std::string_view reply, size_t step) {
    ReplyScanState state;
    std::vector<size_t> marks = {99};  // cleared by the scan
    for (size_t n = step; n < reply.size(); n += step) {
      REQUIRE(resp::scan_reply(reply.substr(0, n), state, nullptr, &marks).status ==
              ParseStatus::kNeedMore);
    }
    ParseResult r = resp::scan_reply(reply, state, nullptr, &marks);
    REQUIRE(r.status == ParseStatus::kOk);
    CHECK(r.consumed == reply.size());
    return marks;
  };
  const std::string mget = "*4\r\n$3\r\nabc\r\n$-1\r\n$0\r\n\r\n$10\r\n0123456789\r\n";
  for (size_t step : {size_t{1}, size_t{3}, mget.size()}) {
    CAPTURE(step);
    CHECK(marks_of(mget, step) == std::vector<size_t>{13, 18, 24, mget.size()});
    // Any element type but arrays.
    CHECK(marks_of("*3\r\n:1\r\n+OK\r\n-ERR x\r\n", step) == std::vector<size_t>{8, 13, 21});
    // Not a flat array: no marks.
    CHECK(marks_of("*2\r\n$1\r\na\r\n*1\r\n:1\r\n", step).empty());
    CHECK(marks_of("*2\r\n*0\r\n:1\r\n", step).empty());
    CHECK(marks_of("$3\r\nabc\r\n", step).empty());
    CHECK(marks_of(":5\r\n", step).empty());
    CHECK(marks_of("*0\r\n", step).empty());
    CHECK(marks_of("*-1\r\n", step).empty());
  }
}

// --- RESP3 (backend connections that said HELLO 3) --------------------------------------------

// Every two-way split of `reply` scanned with a resumed state gives the same result as the
// whole, with the marks of a flat array (split invariance).
void expect_split_invariant(std::string_view reply, bool is_error = false) {
  INFO("reply: ", escape(reply));
  std::vector<size_t> whole_marks;
  ReplyScanState whole_state;
  bool whole_error = !is_error;
  const ParseResult whole = resp::scan_reply(reply, whole_state, &whole_error, &whole_marks);
  REQUIRE(whole.status == ParseStatus::kOk);
  CHECK(whole.consumed == reply.size());
  CHECK(whole_error == is_error);
  for (size_t cut = 0; cut < reply.size(); ++cut) {
    INFO("cut ", cut);
    ReplyScanState state;
    std::vector<size_t> marks;
    CHECK(resp::scan_reply(reply.substr(0, cut), state, nullptr, &marks).status ==
          ParseStatus::kNeedMore);
    bool e = !is_error;
    const ParseResult r = resp::scan_reply(reply, state, &e, &marks);
    CHECK(r.status == ParseStatus::kOk);
    CHECK(r.consumed == reply.size());
    CHECK(e == is_error);
    CHECK(marks == whole_marks);
  }
}

TEST_CASE("resp3 reply: scalar types") {
  for (const char* r : {"_\r\n", "#t\r\n", "#f\r\n", ",3.14\r\n", ",-inf\r\n", ",nan\r\n",
                        "(3492890328409238509324850943850943825024385\r\n", "(-1\r\n",
                        "=15\r\ntxt:Some string\r\n", "=4\r\ntxt:\r\n"}) {
    expect_reply(r);
    expect_split_invariant(r);
  }
  expect_reply("!21\r\nSYNTAX invalid syntax\r\n", true);
  expect_split_invariant("!21\r\nSYNTAX invalid syntax\r\n", true);
  expect_reply("!0\r\n\r\n", true);
  // A blob error's hint is its end, as a bulk string's.
  CHECK(scan("!10\r\nab") == need_more(17));
  CHECK(scan("=10\r\ntxt:") == need_more(17));
}

TEST_CASE("resp3 reply: aggregate types") {
  const std::string hello =
      "%7\r\n$6\r\nserver\r\n$5\r\nredis\r\n$7\r\nversion\r\n$6\r\n7.0.15\r\n$5\r\nproto\r\n:3\r\n"
      "$2\r\nid\r\n:3\r\n$4\r\nmode\r\n$10\r\nstandalone\r\n$4\r\nrole\r\n$6\r\nmaster\r\n"
      "$7\r\nmodules\r\n*0\r\n";
  for (const std::string& r : std::vector<std::string>{
           "%0\r\n", "~0\r\n", ">0\r\n", "%1\r\n+a\r\n:1\r\n", hello,
           "~3\r\n+readonly\r\n+fast\r\n_\r\n", ">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n",
           // nested: COMMAND INFO's shapes, maps inside sets inside arrays
           "*2\r\n~1\r\n%2\r\n$5\r\nflags\r\n~1\r\n+RO\r\n$4\r\nspec\r\n%0\r\n#t\r\n",
           // an attribute: its pairs, then the value it describes, one reply
           "|1\r\n+key-popularity\r\n%1\r\n$1\r\na\r\n,0.19\r\n*2\r\n:2\r\n:9\r\n",
           "*2\r\n|1\r\n+ttl\r\n:3\r\n$1\r\nv\r\n_\r\n"}) {
    expect_reply(r);
    expect_split_invariant(r);
  }
  // An EXEC of RESP3 replies, with an error inside: not an error at the top level.
  expect_reply("*3\r\n_\r\n!3\r\nERR\r\n%0\r\n", false);
  // A map counts its keys and values.
  CHECK(scan("%2\r\n+a\r\n:1\r\n+b\r\n") == need_more());
  CHECK(scan("%2\r\n+a\r\n:1\r\n+b\r\n:2\r\n+next\r\n") == ok(20));
}

TEST_CASE("resp3 reply: malformed") {
  for (std::string input : {"_x\r\n",         "_\rx",
                            "#x\r\n",         "#tt\r\n",
                            "#t\rx",          ",\r\n",
                            "(\r\n",          "!-1\r\n",
                            "=3\r\ntxt\r\n",  "=-1\r\n",
                            "!3\r\nabcd\r\n", "~-1\r\n",
                            "%-1\r\n",        ">-1\r\n",
                            "|-1\r\n",        "%4294967296\r\n",
                            "$?\r\n",         "*?\r\n",
                            ";3\r\nabc\r\n",  ".\r\n",
                            "~1\r\n_x\r\n",   "%1\r\n+a\r\n#q\r\n"}) {
    expect_bad(input);
  }
}

TEST_CASE("resp3 reply: marks of a flat array with RESP3 elements") {
  // MGET from a RESP3 connection: nulls are "_".
  const std::string mget = "*3\r\n$1\r\na\r\n_\r\n$1\r\nb\r\n";
  ReplyScanState state;
  std::vector<size_t> marks;
  REQUIRE(resp::scan_reply(mget, state, nullptr, &marks).status == ParseStatus::kOk);
  CHECK(marks == std::vector<size_t>{11, 14, mget.size()});
  // An aggregate element: no marks.
  marks.clear();
  REQUIRE(resp::scan_reply("*2\r\n~0\r\n:1\r\n", state, nullptr, &marks).status ==
          ParseStatus::kOk);
  CHECK(marks.empty());
  REQUIRE(resp::scan_reply("%1\r\n:1\r\n:2\r\n", state, nullptr, &marks).status ==
          ParseStatus::kOk);
  CHECK(marks.empty());
}

TEST_CASE("resp3 reply: ArrayReader reads sets, pushes, maps and null") {
  std::string_view e;
  ArrayReader set("~2\r\n$1\r\na\r\n_\r\n");
  CHECK(set.ok());
  CHECK(set.size() == 2);
  CHECK(set.next(e));
  CHECK(e == "$1\r\na\r\n");
  CHECK(set.next(e));
  CHECK(e == "_\r\n");
  CHECK(!set.next(e));
  ArrayReader map("%1\r\n$1\r\nk\r\n%1\r\n:1\r\n:2\r\n");
  CHECK(map.size() == 2);
  CHECK(map.next(e));
  CHECK(e == "$1\r\nk\r\n");
  CHECK(map.next(e));
  CHECK(e == "%1\r\n:1\r\n:2\r\n");
  ArrayReader push(">1\r\n+x\r\n");
  CHECK(push.size() == 1);
  ArrayReader null("_\r\n");
  CHECK(null.ok());
  CHECK(null.size() == -1);
  CHECK(!null.next(e));
  CHECK(!ArrayReader("~-1\r\n").ok());
  CHECK(!ArrayReader("#t\r\n").ok());
}

}  // namespace
