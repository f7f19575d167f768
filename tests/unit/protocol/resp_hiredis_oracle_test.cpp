// hiredis as an oracle for the RESP2 codec: reply boundaries and structure (redisReader) and
// command encoding (redisFormatCommandArgv). Needs -lhiredis (Debian libhiredis-dev).

#include <doctest/doctest.h>
#include <hiredis/hiredis.h>

#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/resp/reply_parser.h"
#include "protocol/resp/reply_writer.h"
#include "protocol/resp/request_parser.h"

namespace {

using dproxy::protocol::ParseResult;
using dproxy::protocol::ParseStatus;
using dproxy::protocol::Request;
namespace resp = dproxy::protocol::resp;

// hiredis 0.14 refuses arrays nested deeper than this (its reader keeps a fixed task stack).
constexpr int kHiredisMaxArrayDepth = 7;

struct ReaderDeleter {
  void operator()(redisReader* r) const { redisReaderFree(r); }
};
using Reader = std::unique_ptr<redisReader, ReaderDeleter>;

struct ReplyDeleter {
  void operator()(redisReply* r) const { freeReplyObject(r); }
};
using Reply = std::unique_ptr<redisReply, ReplyDeleter>;

// Random well-formed replies of every RESP2 type, arrays nested up to `depth` more levels.
class ReplyGenerator {
 public:
  explicit ReplyGenerator(uint32_t seed) : rng_(seed) {}

  std::string reply(int depth) {
    std::string out;
    append(out, depth);
    return out;
  }

 private:
  void append(std::string& out, int depth) {
    switch (rng_() % (depth > 0 ? 9 : 6)) {
      case 0:
        resp::append_simple(out, text());
        break;
      case 1:
        resp::append_error(out, "ERR " + text());
        break;
      case 2:
        resp::append_integer(out, integer());
        break;
      case 3:
        resp::append_bulk(out, bytes());
        break;
      case 4:
        resp::append_null_bulk(out);
        break;
      case 5:
        if (rng_() % 2 == 0) {
          resp::append_null_array(out);
        } else {
          resp::append_array_header(out, 0);
        }
        break;
      default: {
        const size_t n = rng_() % 6;
        resp::append_array_header(out, n);
        for (size_t i = 0; i < n; ++i) append(out, depth - 1);
        break;
      }
    }
  }
  std::string text() {
    std::string s;
    const size_t len = rng_() % 20;
    for (size_t i = 0; i < len; ++i) s += static_cast<char>(' ' + rng_() % 95);
    return s;
  }
  std::string bytes() {
    std::string s;
    const size_t len = rng_() % 10 == 0 ? rng_() % 5000 : rng_() % 12;
    for (size_t i = 0; i < len; ++i) s += static_cast<char>(rng_() % 256);
    return s;
  }
  int64_t integer() {
    switch (rng_() % 4) {
      case 0:
        return static_cast<int64_t>(rng_() % 100);
      case 1:
        return -static_cast<int64_t>(rng_() % 100000);
      case 2:
        return rng_() % 2 == 0 ? INT64_MAX : INT64_MIN;
      default:
        return static_cast<int64_t>((static_cast<uint64_t>(rng_()) << 32) | rng_());
    }
  }

  std::mt19937 rng_;
};

// A canonical description of a hiredis reply (hiredis 0.14 reads $-1 and *-1 both as NIL).
std::string describe(const redisReply* r) {
  switch (r->type) {
    case REDIS_REPLY_STATUS:
      return "+" + std::string(r->str, r->len) + ";";
    case REDIS_REPLY_ERROR:
      return "-" + std::string(r->str, r->len) + ";";
    case REDIS_REPLY_INTEGER:
      return ":" + std::to_string(r->integer) + ";";
    case REDIS_REPLY_STRING:
      return "$" + std::to_string(r->len) + ":" + std::string(r->str, r->len) + ";";
    case REDIS_REPLY_NIL:
      return "nil;";
    case REDIS_REPLY_ARRAY: {
      std::string s = "[";
      for (size_t i = 0; i < r->elements; ++i) s += describe(r->element[i]);
      return s + "];";
    }
    default:
      return "?;";
  }
}

// The same description of one complete reply, read with dproxy's own readers.
std::string describe(std::string_view reply) {
  REQUIRE(!reply.empty());
  REQUIRE(reply.size() >= 3);
  const std::string_view line = reply.substr(1, reply.size() - 3);
  switch (reply[0]) {
    case '+':
      return "+" + std::string(line) + ";";
    case '-':
      return "-" + std::string(line) + ";";
    case ':': {
      int64_t v = 0;
      REQUIRE(resp::parse_integer_reply(reply, v));
      return ":" + std::to_string(v) + ";";
    }
    case '$': {
      const size_t cr = reply.find('\r');
      int64_t len = 0;
      REQUIRE(resp::parse_int64(reply.substr(1, cr - 1), len));
      if (len < 0) return "nil;";
      CHECK(reply.size() == cr + 2 + static_cast<size_t>(len) + 2);
      return "$" + std::to_string(len) + ":" + std::string(reply.substr(cr + 2, len)) + ";";
    }
    case '*': {
      resp::ArrayReader a(reply);
      REQUIRE(a.ok());
      if (a.size() < 0) return "nil;";
      std::string s = "[";
      std::string_view e;
      int64_t n = 0;
      while (a.next(e)) {
        s += describe(e);
        ++n;
      }
      CHECK(a.ok());
      CHECK(n == a.size());
      return s + "];";
    }
    default:
      FAIL("not a reply");
      return {};
  }
}

// Feeds bytes to hiredis and collects every complete reply.
std::vector<std::string> hiredis_replies(redisReader* reader, std::string_view bytes) {
  std::vector<std::string> out;
  REQUIRE(redisReaderFeed(reader, bytes.data(), bytes.size()) == REDIS_OK);
  for (;;) {
    void* raw = nullptr;
    REQUIRE(redisReaderGetReply(reader, &raw) == REDIS_OK);
    if (raw == nullptr) break;
    Reply reply(static_cast<redisReply*>(raw));
    out.push_back(describe(reply.get()));
  }
  return out;
}

TEST_CASE("resp hiredis: scan_reply finds the reply boundaries hiredis finds") {
  ReplyGenerator gen(2024);
  for (int iter = 0; iter < 3000; ++iter) {
    const std::string reply = gen.reply(kHiredisMaxArrayDepth);
    INFO("reply #", iter, " size ", reply.size());
    // dproxy: one reply of exactly this size, also with bytes after it.
    bool is_error = false;
    ParseResult r = resp::scan_reply(reply + ":1\r\n", &is_error);
    REQUIRE(r.status == ParseStatus::kOk);
    CHECK(r.consumed == reply.size());
    CHECK(is_error == (reply[0] == '-'));
    CHECK(resp::scan_reply(std::string_view(reply).substr(0, reply.size() - 1)).status ==
          ParseStatus::kNeedMore);
    // hiredis: nothing before the last byte, exactly one reply with it, nothing after.
    Reader reader(redisReaderCreate());
    CHECK(
        hiredis_replies(reader.get(), std::string_view(reply).substr(0, reply.size() - 1)).empty());
    const std::vector<std::string> got =
        hiredis_replies(reader.get(), std::string_view(reply).substr(reply.size() - 1));
    REQUIRE(got.size() == 1);
    // Same structure and values.
    CHECK(got[0] == describe(reply));
  }
}

TEST_CASE("resp hiredis: a stream of replies in random reads") {
  ReplyGenerator gen(77);
  std::mt19937 rng(5);
  for (int iter = 0; iter < 200; ++iter) {
    std::string stream;
    const size_t count = 1 + rng() % 30;
    for (size_t i = 0; i < count; ++i) stream += gen.reply(kHiredisMaxArrayDepth);
    // dproxy, in random reads with a resumed scan state, as a backend connection does.
    std::vector<std::string> ours;
    {
      std::string buf;
      resp::ReplyScanState state;
      size_t pos = 0;
      while (pos < stream.size()) {
        const size_t n = 1 + rng() % 64;
        buf.append(stream.substr(pos, n));
        pos += n;
        for (;;) {
          ParseResult r = resp::scan_reply(buf, state);
          REQUIRE(r.status != ParseStatus::kError);
          if (r.status == ParseStatus::kNeedMore) break;
          ours.push_back(describe(std::string_view(buf).substr(0, r.consumed)));
          buf.erase(0, r.consumed);
        }
      }
      CHECK(buf.empty());
    }
    // hiredis, in other random reads.
    std::vector<std::string> theirs;
    Reader reader(redisReaderCreate());
    size_t pos = 0;
    while (pos < stream.size()) {
      const size_t n = 1 + rng() % 64;
      for (auto& d : hiredis_replies(reader.get(), std::string_view(stream).substr(pos, n))) {
        theirs.push_back(std::move(d));
      }
      pos += n;
    }
    CHECK(ours.size() == count);
    CHECK(ours == theirs);
  }
}

TEST_CASE("resp hiredis: both refuse an unknown type byte") {
  for (const char* bad : {"x\r\n", "*1\r\n?\r\n", "*2\r\n:1\r\n;1\r\n"}) {
    INFO(bad);
    CHECK(resp::scan_reply(bad).status == ParseStatus::kError);
    Reader reader(redisReaderCreate());
    REQUIRE(redisReaderFeed(reader.get(), bad, std::string_view(bad).size()) == REDIS_OK);
    void* raw = nullptr;
    CHECK(redisReaderGetReply(reader.get(), &raw) == REDIS_ERR);
    CHECK(raw == nullptr);
  }
}

TEST_CASE("resp hiredis: append_command matches redisFormatCommandArgv byte for byte") {
  std::mt19937 rng(31337);
  resp::RequestParser parser;
  Request req;
  for (int iter = 0; iter < 3000; ++iter) {
    std::vector<std::string> owned(1 + rng() % 10);
    for (auto& a : owned) {
      const size_t len = rng() % 8 == 0 ? rng() % 2000 : rng() % 10;
      for (size_t i = 0; i < len; ++i) a += static_cast<char>(rng() % 256);
    }
    std::vector<std::string_view> args(owned.begin(), owned.end());
    std::vector<const char*> argv;
    std::vector<size_t> argvlen;
    for (const auto& a : owned) {
      argv.push_back(a.data());
      argvlen.push_back(a.size());
    }
    char* target = nullptr;
    const int len =
        redisFormatCommandArgv(&target, static_cast<int>(argv.size()), argv.data(), argvlen.data());
    REQUIRE(len > 0);
    const std::string expected(target, static_cast<size_t>(len));
    redisFreeCommand(target);

    std::string out = "prefix";
    resp::append_command(out, args);
    CHECK(out.substr(6) == expected);

    // And the request parser reads it back.
    ParseResult r = parser.parse(expected, req);
    REQUIRE(r.status == ParseStatus::kOk);
    CHECK(r.consumed == expected.size());
    REQUIRE(req.args.size() == args.size());
    for (size_t i = 0; i < args.size(); ++i) CHECK(req.args[i] == args[i]);
  }
}

}  // namespace
