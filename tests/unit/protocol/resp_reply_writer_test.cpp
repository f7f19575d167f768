// Unit tests for the RESP2 reply and command writers.

#include <doctest/doctest.h>

#include <array>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/resp/reply_parser.h"
#include "protocol/resp/reply_writer.h"
#include "protocol/resp/request_parser.h"

namespace {

using namespace std::string_literals;
using dproxy::protocol::ParseResult;
using dproxy::protocol::ParseStatus;
using dproxy::protocol::Request;
namespace resp = dproxy::protocol::resp;

// `s` is exactly one complete reply.
bool one_reply(std::string_view s) {
  ParseResult r = resp::scan_reply(s);
  return r.status == ParseStatus::kOk && r.consumed == s.size();
}

TEST_CASE("resp writer: simple strings and errors") {
  std::string out = "prefix";
  resp::append_simple(out, "OK");
  CHECK(out == "prefix+OK\r\n");
  out.clear();
  resp::append_simple(out, "");
  CHECK(out == "+\r\n");
  out.clear();
  resp::append_error(out, "ERR unknown command 'foo'");
  CHECK(out == "-ERR unknown command 'foo'\r\n");
  CHECK(one_reply(out));
  bool is_error = false;
  CHECK(resp::scan_reply(out, &is_error).status == ParseStatus::kOk);
  CHECK(is_error);
  // Line breaks would end the line early: they become spaces, as in Redis.
  out.clear();
  resp::append_error(out, "ERR a\r\nb\nc\rd");
  CHECK(out == "-ERR a  b c d\r\n");
  CHECK(one_reply(out));
  out = "x\r\n";
  resp::append_simple(out, "\r\n");
  CHECK(out == "x\r\n+  \r\n");
}

TEST_CASE("resp writer: integers") {
  struct {
    int64_t v;
    const char* text;
  } const cases[] = {{0, ":0\r\n"},
                     {1, ":1\r\n"},
                     {-1, ":-1\r\n"},
                     {1234567890, ":1234567890\r\n"},
                     {std::numeric_limits<int64_t>::max(), ":9223372036854775807\r\n"},
                     {std::numeric_limits<int64_t>::min(), ":-9223372036854775808\r\n"}};
  for (const auto& c : cases) {
    std::string out;
    resp::append_integer(out, c.v);
    CHECK(out == c.text);
    int64_t back = 0;
    CHECK(resp::parse_integer_reply(out, back));
    CHECK(back == c.v);
  }
}

TEST_CASE("resp writer: bulks, nulls and arrays") {
  std::string out;
  resp::append_bulk(out, "foo");
  CHECK(out == "$3\r\nfoo\r\n");
  out.clear();
  resp::append_bulk(out, "");
  CHECK(out == "$0\r\n\r\n");
  out.clear();
  resp::append_bulk(out, "\r\n\0\xff"s);
  CHECK(out == "$4\r\n\r\n\0\xff\r\n"s);
  CHECK(one_reply(out));
  out.clear();
  const std::string big(123456, 'b');
  resp::append_bulk(out, big);
  CHECK(out == "$123456\r\n" + big + "\r\n");
  out.clear();
  resp::append_null_bulk(out);
  CHECK(out == "$-1\r\n");
  out.clear();
  resp::append_null_array(out);
  CHECK(out == "*-1\r\n");
  out.clear();
  resp::append_array_header(out, 0);
  CHECK(out == "*0\r\n");
  out.clear();
  resp::append_array_header(out, 3);
  resp::append_bulk(out, "a");
  resp::append_null_bulk(out);
  resp::append_integer(out, 5);
  CHECK(out == "*3\r\n$1\r\na\r\n$-1\r\n:5\r\n");
  CHECK(one_reply(out));
  resp::ArrayReader a(out);
  CHECK(a.size() == 3);
  out.clear();
  resp::append_array_header(out, std::numeric_limits<size_t>::max());
  CHECK(out == "*18446744073709551615\r\n");
}

TEST_CASE("resp writer: commands") {
  std::string out;
  const std::array<std::string_view, 3> mget = {"MGET", "k1", "k3"};
  resp::append_command(out, mget);
  CHECK(out == "*3\r\n$4\r\nMGET\r\n$2\r\nk1\r\n$2\r\nk3\r\n");
  out.clear();
  const std::vector<std::string_view> mset = {"MSET", "k1", "v1"};
  resp::append_command(out, mset);
  CHECK(out == "*3\r\n$4\r\nMSET\r\n$2\r\nk1\r\n$2\r\nv1\r\n");
  out.clear();
  resp::append_command(out, std::span<const std::string_view>());
  CHECK(out == "*0\r\n");
  out.clear();
  const std::string bin = "\r\n\0*1\r\n"s;
  const std::array<std::string_view, 2> args = {"", bin};
  resp::append_command(out, args);
  CHECK(out == "*2\r\n$0\r\n\r\n$7\r\n" + bin + "\r\n");
}

TEST_CASE("resp writer: no allocation when the string has room") {
  std::string out;
  out.reserve(4096);
  const char* data = out.data();
  const std::array<std::string_view, 4> args = {"SET", "key", "value", std::string_view()};
  resp::append_command(out, args);
  resp::append_bulk(out, std::string(1000, 'x'));
  resp::append_simple(out, "OK");
  resp::append_error(out, "ERR x");
  resp::append_integer(out, std::numeric_limits<int64_t>::min());
  resp::append_null_bulk(out);
  resp::append_array_header(out, 7);
  CHECK(out.data() == data);
  // append_command reserves exactly what it needs at most once.
  std::string exact;
  resp::append_command(exact, args);
  std::string grown;
  grown.reserve(exact.size());
  data = grown.data();
  resp::append_command(grown, args);
  CHECK(grown == exact);
  CHECK(grown.data() == data);
}

TEST_CASE("resp writer: append_command round-trips through the request parser") {
  std::mt19937 rng(99);
  resp::RequestParser parser;
  Request req;
  for (int iter = 0; iter < 2000; ++iter) {
    std::vector<std::string> owned(1 + rng() % 8);
    for (auto& a : owned) {
      const size_t len = rng() % 3 == 0 ? rng() % 300 : rng() % 6;
      for (size_t i = 0; i < len; ++i) a += static_cast<char>(rng() % 256);
    }
    std::vector<std::string_view> args(owned.begin(), owned.end());
    std::string out;
    resp::append_command(out, args);
    ParseResult r = parser.parse(out, req);
    REQUIRE(r.status == ParseStatus::kOk);
    CHECK(r.consumed == out.size());
    REQUIRE(req.args.size() == args.size());
    for (size_t i = 0; i < args.size(); ++i) CHECK(req.args[i] == args[i]);
    // A command is also a well-formed array reply of bulks.
    CHECK(one_reply(out));
  }
}

}  // namespace
