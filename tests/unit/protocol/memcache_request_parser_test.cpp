// Unit tests for the memcached ASCII request parser.

#include <doctest/doctest.h>

#include <cstdint>
#include <ostream>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/memcache/meta.h"
#include "protocol/memcache/request_parser.h"

namespace {

using namespace std::string_literals;
using dproxy::protocol::kFlagNoreply;
using dproxy::protocol::ParseResult;
using dproxy::protocol::ParseStatus;
using dproxy::protocol::Request;
namespace mc = dproxy::protocol::memcache;
namespace errors = dproxy::protocol::memcache::errors;
using mc::Command;
using mc::RequestLimits;
using mc::RequestParser;

constexpr uint32_t kRead = dproxy::protocol::kFlagRead;
constexpr uint32_t kWrite = dproxy::protocol::kFlagWrite;
constexpr uint32_t kNoreply = dproxy::protocol::kFlagNoreply;
constexpr uint32_t kMulti = dproxy::protocol::kFlagMultiKey;
constexpr uint32_t kBroadcast = dproxy::protocol::kFlagBroadcast;
constexpr uint32_t kLocal = dproxy::protocol::kFlagLocal;
constexpr uint32_t kQuit = dproxy::protocol::kFlagQuit;
constexpr uint32_t kRejected = dproxy::protocol::kFlagRejected;
constexpr uint32_t kHasData = dproxy::protocol::kFlagHasData;

// A comparable snapshot of one parse step (owning copies of every view).
struct Event {
  ParseStatus status = ParseStatus::kNeedMore;
  // kOk
  std::string frame;
  std::string name;
  uint16_t command = 0;
  uint32_t flags = 0;
  std::vector<std::string> keys;
  std::string noreply;
  // kError
  std::string error;
  size_t consumed = 0;
  size_t skip = 0;
  bool close = false;

  bool operator==(const Event&) const = default;
};

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

std::ostream& operator<<(std::ostream& os, const Event& e) {
  switch (e.status) {
    case ParseStatus::kOk:
      os << "Ok{frame=\"" << escape(e.frame) << "\" name=" << e.name << " cmd=" << e.command
         << " flags=" << e.flags << " keys=[";
      for (const auto& k : e.keys) os << escape(k) << ",";
      return os << "] noreply=\"" << e.noreply << "\"}";
    case ParseStatus::kError:
      return os << "Error{\"" << escape(e.error) << "\" consumed=" << e.consumed
                << " skip=" << e.skip << " close=" << e.close << "}";
    default:
      return os << "NeedMore{leftover=" << e.consumed << "}";
  }
}

std::ostream& operator<<(std::ostream& os, const std::vector<Event>& events) {
  os << "[\n";
  for (const Event& e : events) os << "  " << e << "\n";
  return os << "]";
}

Event snapshot(const ParseResult& r, const Request& req) {
  Event e;
  e.status = r.status;
  if (r.status == ParseStatus::kOk) {
    e.frame = req.frame;
    e.name = req.name;
    e.command = req.command;
    e.flags = req.flags;
    for (auto k : req.keys) e.keys.emplace_back(k);
    e.noreply = req.noreply_token;
  } else if (r.status == ParseStatus::kError) {
    e.error = r.error;
    e.consumed = r.consumed;
    e.skip = r.skip;
    e.close = r.close;
  }
  return e;
}

Event ok(std::string frame, Command cmd, std::string name, uint32_t flags,
         std::vector<std::string> keys = {}, std::string noreply = {}) {
  Event e;
  e.status = ParseStatus::kOk;
  e.frame = std::move(frame);
  e.name = std::move(name);
  e.command = static_cast<uint16_t>(cmd);
  e.flags = flags;
  e.keys = std::move(keys);
  e.noreply = std::move(noreply);
  return e;
}

Event err(std::string_view error, size_t consumed, size_t skip = 0, bool close = false) {
  Event e;
  e.status = ParseStatus::kError;
  e.error = error;
  e.consumed = consumed;
  e.skip = skip;
  e.close = close;
  return e;
}

// The final event of drive(): the bytes still buffered (an incomplete frame).
Event leftover(size_t n) {
  Event e;
  e.consumed = n;
  return e;
}

bool within(std::string_view inner, std::string_view outer) {
  return inner.data() >= outer.data() && inner.data() + inner.size() <= outer.data() + outer.size();
}

// Invariants of every kOk result: the frame is the buffer's prefix, every view lies inside it,
// and removing the noreply token gives a frame that parses the same way without noreply.
void check_ok_invariants(const RequestParser& p, std::string_view buf, const ParseResult& r,
                         const Request& req) {
  REQUIRE(r.consumed > 0);
  REQUIRE(r.consumed <= buf.size());
  CHECK(req.frame.data() == buf.data());
  CHECK(req.frame.size() == r.consumed);
  CHECK(within(req.name, req.frame));
  // A meta base64 key (flag b) is its decoded bytes, kept by the request.
  for (auto k : req.keys) CHECK((within(k, req.frame) || k.data() == req.decoded_key.data()));
  CHECK(req.has(kNoreply) == !req.noreply_token.empty());
  if (req.noreply_token.empty()) return;
  REQUIRE(within(req.noreply_token, req.frame));
  CHECK(req.noreply_token.back() == 'y');
  const size_t at = static_cast<size_t>(req.noreply_token.data() - req.frame.data());
  std::string stripped(req.frame.substr(0, at));
  stripped += req.frame.substr(at + req.noreply_token.size());
  Request plain;
  ParseResult r2 = p.parse(stripped, plain);
  REQUIRE(r2.status == ParseStatus::kOk);
  CHECK(r2.consumed == stripped.size());
  CHECK(plain.command == req.command);
  CHECK(plain.flags == (req.flags & ~kNoreply));
  CHECK(plain.noreply_token.empty());
  REQUIRE(plain.keys.size() == req.keys.size());
  for (size_t i = 0; i < req.keys.size(); ++i) CHECK(plain.keys[i] == req.keys[i]);
}

// Feeds `chunks` one after the other into a buffer the way a client session does: parse every
// complete frame, drop consumed + skip bytes (skip may span later chunks), stop after a close.
// Ends with leftover(bytes still buffered) unless the connection was closed.
std::vector<Event> drive(const RequestParser& p, const std::vector<std::string_view>& chunks) {
  std::vector<Event> events;
  std::string buf;
  size_t pending_skip = 0;
  Request req;
  for (std::string_view chunk : chunks) {
    const size_t drop = pending_skip < chunk.size() ? pending_skip : chunk.size();
    pending_skip -= drop;
    buf.append(chunk.substr(drop));
    for (;;) {
      ParseResult r = p.parse(buf, req);
      if (r.status == ParseStatus::kNeedMore) break;
      Event e = snapshot(r, req);
      if (r.status == ParseStatus::kOk) {
        check_ok_invariants(p, buf, r, req);
        buf.erase(0, r.consumed);
        events.push_back(std::move(e));
        continue;
      }
      REQUIRE(r.consumed <= buf.size());
      // Every error is a reply line, except the silent close (an HTTP request line).
      if (r.error.empty()) {
        CHECK(r.close);
      } else {
        CHECK(r.error.ends_with("\r\n"));
      }
      // Line-too-long drops whatever happens to be buffered: not comparable across splits.
      if (r.error == errors::kLineTooLong) e.consumed = 0;
      events.push_back(std::move(e));
      if (r.close) return events;
      buf.erase(0, r.consumed);
      const size_t now = r.skip < buf.size() ? r.skip : buf.size();
      buf.erase(0, now);
      pending_skip = r.skip - now;
    }
  }
  events.push_back(leftover(buf.size()));
  return events;
}

std::vector<Event> drive_whole(const RequestParser& p, std::string_view stream) {
  return drive(p, {stream});
}

// Checks that `stream` gives `expected` when fed whole, byte at a time, and split in two at
// every offset (and in three at a sample of offset pairs).
void expect_stream(const RequestParser& p, std::string_view stream,
                   const std::vector<Event>& expected) {
  INFO("stream: ", escape(stream.substr(0, 200)));
  CHECK(drive_whole(p, stream) == expected);
  std::vector<std::string_view> bytes;
  for (size_t i = 0; i < stream.size(); ++i) bytes.push_back(stream.substr(i, 1));
  CHECK(drive(p, bytes) == expected);
  for (size_t i = 0; i <= stream.size(); ++i) {
    INFO("split at ", i);
    CHECK(drive(p, {stream.substr(0, i), stream.substr(i)}) == expected);
  }
  const size_t di = stream.size() / 16 > 3 ? stream.size() / 16 : 3;
  const size_t dj = stream.size() / 12 > 5 ? stream.size() / 12 : 5;
  for (size_t i = 1; i < stream.size(); i += di) {
    for (size_t j = i; j < stream.size(); j += dj) {
      CHECK(drive(p, {stream.substr(0, i), stream.substr(i, j - i), stream.substr(j)}) == expected);
    }
  }
}

void expect_stream(std::string_view stream, const std::vector<Event>& expected) {
  expect_stream(RequestParser(), stream, expected);
}

// One frame that is exactly `input`: every prefix is NeedMore until the result is known (an
// error may be known before the data block arrives), from then on every prefix gives `e`.
void expect_frame(const RequestParser& p, std::string_view input, const Event& e) {
  INFO("input: ", escape(input));
  Request req;
  bool known = false;
  for (size_t n = 0; n <= input.size(); ++n) {
    INFO("prefix ", n);
    ParseResult r = p.parse(input.substr(0, n), req);
    if (!known && r.status == ParseStatus::kNeedMore) {
      CHECK(req.frame.empty());
      CHECK(req.keys.empty());
      CHECK(n < input.size());
      continue;
    }
    known = true;
    REQUIRE(snapshot(r, req) == e);
    if (r.status == ParseStatus::kOk) check_ok_invariants(p, input.substr(0, n), r, req);
  }
  // An Ok frame must need every byte of the input.
  if (e.status == ParseStatus::kOk) CHECK(e.frame.size() == input.size());
  if (e.close) {
    expect_stream(p, input, {e});
  } else {
    expect_stream(p, input, {e, leftover(0)});
  }
}

void expect_frame(std::string_view input, const Event& e) {
  expect_frame(RequestParser(), input, e);
}

Event parse_once(std::string_view input, RequestLimits limits = {}) {
  Request req;
  ParseResult r = RequestParser(limits).parse(input, req);
  return snapshot(r, req);
}

// ---------------------------------------------------------------------------------------------

TEST_CASE("memcache request: get and gets") {
  expect_frame("get foo\r\n", ok("get foo\r\n", Command::kGet, "get", kRead | kMulti, {"foo"}));
  expect_frame("gets foo\r\n", ok("gets foo\r\n", Command::kGets, "gets", kRead | kMulti, {"foo"}));
  expect_frame("get a bb ccc\r\n",
               ok("get a bb ccc\r\n", Command::kGet, "get", kRead | kMulti, {"a", "bb", "ccc"}));
  expect_frame("gets  a   b  \r\n",
               ok("gets  a   b  \r\n", Command::kGets, "gets", kRead | kMulti, {"a", "b"}));
  // Leading spaces, bare "\n", bytes >= 0x80 in keys.
  expect_frame("  get k\n", ok("  get k\n", Command::kGet, "get", kRead | kMulti, {"k"}));
  expect_frame("get \xc3\xa9t\xc3\xa9\r\n", ok("get \xc3\xa9t\xc3\xa9\r\n", Command::kGet, "get",
                                               kRead | kMulti, {"\xc3\xa9t\xc3\xa9"}));
  // "noreply" is just a key for get.
  expect_frame("get noreply\r\n",
               ok("get noreply\r\n", Command::kGet, "get", kRead | kMulti, {"noreply"}));
  // A key of exactly 250 bytes is fine.
  const std::string k250(250, 'k');
  expect_frame("get " + k250 + "\r\n",
               ok("get " + k250 + "\r\n", Command::kGet, "get", kRead | kMulti, {k250}));
}

TEST_CASE("memcache request: many keys") {
  std::string line = "get";
  std::vector<std::string> keys;
  for (int i = 0; i < 100; ++i) {
    keys.push_back("key:" + std::to_string(i));
    line += " " + keys.back();
  }
  line += "\r\n";
  CHECK(parse_once(line) == ok(line, Command::kGet, "get", kRead | kMulti, keys));
}

TEST_CASE("memcache request: keys vector is reused without reallocation") {
  RequestParser p;
  Request req;
  req.keys.reserve(8);
  const auto* data = req.keys.data();
  for (int i = 0; i < 3; ++i) {
    ParseResult r = p.parse("get a b c d\r\n", req);
    REQUIRE(r.status == ParseStatus::kOk);
    CHECK(req.keys.size() == 4);
    CHECK(req.keys.data() == data);
    r = p.parse("set k 0 0 1\r\nx\r\n", req);
    REQUIRE(r.status == ParseStatus::kOk);
    CHECK(req.keys.size() == 1);
    CHECK(req.keys.data() == data);
  }
}

TEST_CASE("memcache request: gat and gats") {
  expect_frame("gat 100 a b\r\n",
               ok("gat 100 a b\r\n", Command::kGat, "gat", kRead | kMulti, {"a", "b"}));
  expect_frame("gats 0 k\r\n", ok("gats 0 k\r\n", Command::kGats, "gats", kRead | kMulti, {"k"}));
  expect_frame("gat -1 k\r\n", ok("gat -1 k\r\n", Command::kGat, "gat", kRead | kMulti, {"k"}));
}

TEST_CASE("memcache request: storage commands") {
  struct {
    const char* name;
    Command cmd;
  } const cases[] = {{"set", Command::kSet},
                     {"add", Command::kAdd},
                     {"replace", Command::kReplace},
                     {"append", Command::kAppend},
                     {"prepend", Command::kPrepend}};
  for (const auto& c : cases) {
    const std::string name = c.name;
    const std::string line = name + " key 5 100 3\r\n";
    expect_frame(line + "abc\r\n", ok(line + "abc\r\n", c.cmd, name, kWrite | kHasData, {"key"}));
    const std::string nr = name + " key 0 0 3 noreply\r\nabc\r\n";
    expect_frame(nr, ok(nr, c.cmd, name, kWrite | kHasData | kNoreply, {"key"}, " noreply"));
  }
  expect_frame("set k 4294967295 -1 0\r\n\r\n",
               ok("set k 4294967295 -1 0\r\n\r\n", Command::kSet, "set", kWrite | kHasData, {"k"}));
  expect_frame("set k 0 0 2\nab\r\n",
               ok("set k 0 0 2\nab\r\n", Command::kSet, "set", kWrite | kHasData, {"k"}));
  expect_frame("set  k  0  0  2  \r\nab\r\n",
               ok("set  k  0  0  2  \r\nab\r\n", Command::kSet, "set", kWrite | kHasData, {"k"}));
}

TEST_CASE("memcache request: cas") {
  expect_frame("cas k 1 2 3 12345\r\nabc\r\n",
               ok("cas k 1 2 3 12345\r\nabc\r\n", Command::kCas, "cas", kWrite | kHasData, {"k"}));
  const std::string nr = "cas k 0 0 1 18446744073709551615 noreply\r\nx\r\n";
  expect_frame(nr, ok(nr, Command::kCas, "cas", kWrite | kHasData | kNoreply, {"k"}, " noreply"));
}

TEST_CASE("memcache request: data blocks are binary") {
  const std::string data = "a\r\nEND\r\n\0\xff\nVALUE x 0 1\r\n"s;
  const std::string frame = "set bin 0 0 " + std::to_string(data.size()) + "\r\n" + data + "\r\n";
  expect_frame(frame, ok(frame, Command::kSet, "set", kWrite | kHasData, {"bin"}));
  // Data that itself looks like a complete command is not parsed as one.
  const std::string tricky = "set k 0 0 7\r\nget a\r\n\r\nget b\r\n";
  expect_stream(tricky,
                {ok("set k 0 0 7\r\nget a\r\n\r\n", Command::kSet, "set", kWrite | kHasData, {"k"}),
                 ok("get b\r\n", Command::kGet, "get", kRead | kMulti, {"b"}), leftover(0)});
}

TEST_CASE("memcache request: size hint of storage commands") {
  RequestParser p;
  Request req;
  ParseResult r = p.parse("set k 0 0 5", req);
  CHECK(r.status == ParseStatus::kNeedMore);
  CHECK(r.size_hint == 0);
  r = p.parse("set k 0 0 5\r\n", req);
  CHECK(r.status == ParseStatus::kNeedMore);
  CHECK(r.size_hint == 20);
  r = p.parse("set k 0 0 5\r\nhello\r", req);
  CHECK(r.status == ParseStatus::kNeedMore);
  CHECK(r.size_hint == 20);
  r = p.parse("set k 0 0 5\r\nhello\r\n", req);
  CHECK(r.status == ParseStatus::kOk);
  CHECK(r.consumed == 20);
  r = p.parse("get k", req);
  CHECK(r.status == ParseStatus::kNeedMore);
  CHECK(r.size_hint == 0);
  r = p.parse("ms k 2\r\n", req);
  CHECK(r.status == ParseStatus::kNeedMore);
  CHECK(r.size_hint == 12);
}

TEST_CASE("memcache request: delete") {
  expect_frame("delete k\r\n", ok("delete k\r\n", Command::kDelete, "delete", kWrite, {"k"}));
  expect_frame("delete k 0\r\n", ok("delete k 0\r\n", Command::kDelete, "delete", kWrite, {"k"}));
  expect_frame("delete k noreply\r\n", ok("delete k noreply\r\n", Command::kDelete, "delete",
                                          kWrite | kNoreply, {"k"}, " noreply"));
  expect_frame("delete k 0  noreply\r\n", ok("delete k 0  noreply\r\n", Command::kDelete, "delete",
                                             kWrite | kNoreply, {"k"}, "  noreply"));
}

TEST_CASE("memcache request: incr and decr") {
  expect_frame("incr k 5\r\n", ok("incr k 5\r\n", Command::kIncr, "incr", kWrite, {"k"}));
  expect_frame("decr k 18446744073709551615 noreply\r\n",
               ok("decr k 18446744073709551615 noreply\r\n", Command::kDecr, "decr",
                  kWrite | kNoreply, {"k"}, " noreply"));
}

TEST_CASE("memcache request: touch") {
  expect_frame("touch k 10\r\n", ok("touch k 10\r\n", Command::kTouch, "touch", kWrite, {"k"}));
  expect_frame("touch k -1 noreply\r\n", ok("touch k -1 noreply\r\n", Command::kTouch, "touch",
                                            kWrite | kNoreply, {"k"}, " noreply"));
}

TEST_CASE("memcache request: version, quit, verbosity") {
  expect_frame("version\r\n", ok("version\r\n", Command::kVersion, "version", kLocal));
  expect_frame("quit\r\n", ok("quit\r\n", Command::kQuit, "quit", kQuit | kLocal));
  expect_frame("quit\n", ok("quit\n", Command::kQuit, "quit", kQuit | kLocal));
  expect_frame("verbosity 1\r\n", ok("verbosity 1\r\n", Command::kVerbosity, "verbosity", kLocal));
  expect_frame("verbosity 0 noreply\r\n", ok("verbosity 0 noreply\r\n", Command::kVerbosity,
                                             "verbosity", kLocal | kNoreply, {}, " noreply"));
}

TEST_CASE("memcache request: flush_all") {
  const uint32_t f = kBroadcast | kWrite;
  expect_frame("flush_all\r\n", ok("flush_all\r\n", Command::kFlushAll, "flush_all", f));
  expect_frame("flush_all 10\r\n", ok("flush_all 10\r\n", Command::kFlushAll, "flush_all", f));
  expect_frame("flush_all noreply\r\n", ok("flush_all noreply\r\n", Command::kFlushAll, "flush_all",
                                           f | kNoreply, {}, " noreply"));
  expect_frame("flush_all 0 noreply \r\n", ok("flush_all 0 noreply \r\n", Command::kFlushAll,
                                              "flush_all", f | kNoreply, {}, " noreply"));
}

TEST_CASE("memcache request: noreply token spans the spaces before it") {
  const std::string frame = "set k 0 0 1   noreply  \r\nx\r\n";
  Request req;
  ParseResult r = RequestParser().parse(frame, req);
  REQUIRE(r.status == ParseStatus::kOk);
  CHECK(req.noreply_token == "   noreply");
  CHECK(req.noreply_token.data() == frame.data() + 11);
  check_ok_invariants(RequestParser(), frame, r, req);
}

TEST_CASE("memcache request: plain stats is local, stats groups go to every server") {
  expect_frame("stats\r\n", ok("stats\r\n", Command::kStats, "stats", kLocal));
  for (const char* line : {"stats items\r\n", "stats settings\r\n", "stats slabs\r\n",
                           "stats sizes\r\n", "stats conns\r\n", "stats cachedump 1 10\r\n",
                           "stats detail dump\r\n", "stats items a b c d e f g h i j k\r\n"}) {
    const std::string l = line;
    expect_frame(l, ok(l, Command::kStatsGroup, "stats", kBroadcast));
  }
  expect_frame("stats reset\r\n", ok("stats reset\r\n", Command::kStatsReset, "stats", kBroadcast));
  expect_frame("stats reset x\r\n",
               ok("stats reset x\r\n", Command::kStatsReset, "stats", kBroadcast));
  for (const char* line :
       {"stats detail on\r\n", "stats detail off\r\n", "stats detail off x\r\n"}) {
    const std::string l = line;
    expect_frame(l, ok(l, Command::kStatsDetail, "stats", kBroadcast));
  }
  for (const char* line : {"stats detail\r\n", "stats detail x\r\n", "stats detail ON\r\n"}) {
    expect_frame(line, err(errors::kStatsDetailUsage, std::string_view(line).size()));
  }
  for (const char* line : {"stats nonsense\r\n", "stats Items\r\n", "stats x noreply\r\n"}) {
    expect_frame(line, err(errors::kError, std::string_view(line).size()));
  }
}

TEST_CASE("memcache request: unsupported commands are framed and rejected") {
  for (const char* line :
       {"slabs reassign 1 2\r\n", "lru mode flat\r\n", "lru_crawler metadump all\r\n",
        "watch fetchers\r\n", "shutdown\r\n", "cache_memlimit 100\r\n", "misbehave\r\n",
        "extstore x\r\n", "debugtime 1\r\n"}) {
    const std::string l = line;
    const std::string name = l.substr(0, l.find_first_of(" \r"));
    expect_frame(l, ok(l, Command::kUnsupported, name, kRejected));
  }
}

constexpr uint32_t kMeta = dproxy::protocol::kFlagMeta;
constexpr uint32_t kQuiet = dproxy::protocol::kFlagQuiet;
constexpr uint32_t kCompareCas = dproxy::protocol::kFlagCompareCas;

TEST_CASE("memcache meta: mg, md, ma, me are one line, routed by their key") {
  expect_frame("mg foo v f t\r\n",
               ok("mg foo v f t\r\n", Command::kMetaGet, "mg", kMeta | kRead, {"foo"}));
  expect_frame("mg foo\r\n", ok("mg foo\r\n", Command::kMetaGet, "mg", kMeta | kRead, {"foo"}));
  // Spaces anywhere, a bare LF: as memcached.
  expect_frame("mg  foo   v  \n",
               ok("mg  foo   v  \n", Command::kMetaGet, "mg", kMeta | kRead, {"foo"}));
  // T (touch) and N (vivify) write.
  expect_frame("mg foo v T30\r\n",
               ok("mg foo v T30\r\n", Command::kMetaGet, "mg", kMeta | kWrite, {"foo"}));
  expect_frame("mg foo N30 v\r\n",
               ok("mg foo N30 v\r\n", Command::kMetaGet, "mg", kMeta | kWrite, {"foo"}));
  expect_frame("md foo q\r\n",
               ok("md foo q\r\n", Command::kMetaDelete, "md", kMeta | kWrite | kQuiet, {"foo"}));
  expect_frame("md foo C12\r\n", ok("md foo C12\r\n", Command::kMetaDelete, "md",
                                    kMeta | kWrite | kCompareCas, {"foo"}));
  expect_frame("ma n D5 MD v\r\n",
               ok("ma n D5 MD v\r\n", Command::kMetaArith, "ma", kMeta | kWrite, {"n"}));
  // me answers whatever its flags: never quiet.
  expect_frame("me foo q\r\n",
               ok("me foo q\r\n", Command::kMetaDebug, "me", kMeta | kRead, {"foo"}));
  // Invalid flags are the server's to refuse: forwarded as sent.
  expect_frame("mg foo zz v v\r\n",
               ok("mg foo zz v v\r\n", Command::kMetaGet, "mg", kMeta | kRead, {"foo"}));
  const std::string long_key(300, 'k');
  expect_frame("mg " + long_key + " v\r\n",
               ok("mg " + long_key + " v\r\n", Command::kMetaGet, "mg", kMeta | kRead, {long_key}));
  // A NUL byte ends the line as memcached reads it: flags after it are not seen.
  expect_frame(
      std::string("mg foo v\0 q\r\n", 13),
      ok(std::string("mg foo v\0 q\r\n", 13), Command::kMetaGet, "mg", kMeta | kRead, {"foo"}));
}

TEST_CASE("memcache meta: quiet mode") {
  expect_frame("mg foo v q k O1\r\n",
               ok("mg foo v q k O1\r\n", Command::kMetaGet, "mg", kMeta | kRead | kQuiet, {"foo"}));
  // The key itself is no flag.
  expect_frame("mg q v\r\n", ok("mg q v\r\n", Command::kMetaGet, "mg", kMeta | kRead, {"q"}));
  expect_frame("ms q 1 T0\r\nx\r\n",
               ok("ms q 1 T0\r\nx\r\n", Command::kMetaSet, "ms", kMeta | kWrite | kHasData, {"q"}));
  expect_frame("ms k 1 q\r\nx\r\n", ok("ms k 1 q\r\nx\r\n", Command::kMetaSet, "ms",
                                       kMeta | kWrite | kHasData | kQuiet, {"k"}));
}

TEST_CASE("memcache meta: mn is local, missing keys are memcached's errors") {
  expect_frame("mn\r\n", ok("mn\r\n", Command::kMetaNoop, "mn", kLocal));
  expect_frame("mn foo bar\r\n", ok("mn foo bar\r\n", Command::kMetaNoop, "mn", kLocal));
  expect_frame("mg\r\n", err(errors::kError, 4));
  expect_frame("md \r\n", err(errors::kError, 5));
  expect_frame("ma\r\n", err(errors::kError, 4));
  expect_frame("ms\r\n", err(errors::kError, 4));
  expect_frame("me\r\n", err(errors::kBadFormat, 4));
}

TEST_CASE("memcache meta: base64 keys route by their decoded bytes") {
  expect_frame("mg Zm9v b v\r\n",
               ok("mg Zm9v b v\r\n", Command::kMetaGet, "mg", kMeta | kRead, {"foo"}));
  expect_frame("ms Zm9vYg== 2 b\r\nhi\r\n", ok("ms Zm9vYg== 2 b\r\nhi\r\n", Command::kMetaSet, "ms",
                                               kMeta | kWrite | kHasData, {"foob"}));
  expect_frame("md AAEC b\r\n", ok("md AAEC b\r\n", Command::kMetaDelete, "md", kMeta | kWrite,
                                   {std::string("\0\1\2", 3)}));
  // Not base64: routed as sent (every server refuses it alike).
  expect_frame("mg Zm9 b v\r\n",
               ok("mg Zm9 b v\r\n", Command::kMetaGet, "mg", kMeta | kRead, {"Zm9"}));
  // Without b the key is the token.
  expect_frame("mg Zm9v v\r\n",
               ok("mg Zm9v v\r\n", Command::kMetaGet, "mg", kMeta | kRead, {"Zm9v"}));
}

TEST_CASE("memcache meta: ms frames its data block") {
  expect_frame("ms k 5 T0 F3\r\nhello\r\n", ok("ms k 5 T0 F3\r\nhello\r\n", Command::kMetaSet, "ms",
                                               kMeta | kWrite | kHasData, {"k"}));
  expect_frame("ms k 0\r\n\r\n",
               ok("ms k 0\r\n\r\n", Command::kMetaSet, "ms", kMeta | kWrite | kHasData, {"k"}));
  expect_frame("ms k +2\r\nhi\r\n",
               ok("ms k +2\r\nhi\r\n", Command::kMetaSet, "ms", kMeta | kWrite | kHasData, {"k"}));
  expect_frame("ms k -0\r\n\r\n",
               ok("ms k -0\r\n\r\n", Command::kMetaSet, "ms", kMeta | kWrite | kHasData, {"k"}));
  expect_frame("ms k 2 C5 MA\r\nhi\r\n", ok("ms k 2 C5 MA\r\nhi\r\n", Command::kMetaSet, "ms",
                                            kMeta | kWrite | kHasData | kCompareCas, {"k"}));
  // Invalid flags: the server refuses them and swallows the block; one frame.
  expect_frame("ms k 2 zz\r\nhi\r\n", ok("ms k 2 zz\r\nhi\r\n", Command::kMetaSet, "ms",
                                         kMeta | kWrite | kHasData, {"k"}));
  expect_stream("ms k 2\r\nhi\r\nmg k v\r\n",
                {ok("ms k 2\r\nhi\r\n", Command::kMetaSet, "ms", kMeta | kWrite | kHasData, {"k"}),
                 ok("mg k v\r\n", Command::kMetaGet, "mg", kMeta | kRead, {"k"}), leftover(0)});
}

TEST_CASE("memcache meta: ms errors before the data block") {
  // No data length, or a bad one: the line only (memcached reads the block as a command).
  expect_frame("ms k\r\n", err(errors::kBadFormat, 6));
  expect_frame("ms k x\r\n", err(errors::kBadFormat, 8));
  expect_frame("ms k -1\r\n", err(errors::kBadFormat, 9));
  expect_frame("ms k 2x\r\n", err(errors::kBadFormat, 9));
  expect_frame("ms k 2147483646\r\n", err(errors::kBadFormat, 17));
  // An over-long key or too many flags with a valid length: the block is swallowed too.
  const std::string long_key(251, 'k');
  expect_frame("ms " + long_key + " 2\r\n", err(errors::kBadFormat, 258, 4));
  expect_frame("ms " + long_key + " x\r\n", err(errors::kBadFormat, 258, 0));
  std::string flags;
  for (int i = 0; i < 16; ++i) flags += " O" + std::to_string(i);
  const std::string ok_line = "ms k 2" + flags + "\r\n";
  expect_frame(ok_line + "hi\r\n",
               ok(ok_line + "hi\r\n", Command::kMetaSet, "ms", kMeta | kWrite | kHasData, {"k"}));
  const std::string long_line = "ms k 2" + flags + " O16\r\n";
  expect_frame(long_line, err(errors::kMetaFlagsTooLong, long_line.size(), 4));
  // Too large: refused with its key (the old value is removed, as memcached does).
  RequestLimits limits;
  limits.max_value_bytes = 10;
  const RequestParser p(limits);
  Request req;
  const ParseResult r = p.parse("ms Zm9v 11 b\r\n", req);
  CHECK(snapshot(r, req) == err(errors::kTooLarge, 14, 13));
  REQUIRE(req.keys.size() == 1);
  CHECK(req.keys[0] == "foo");
  CHECK(req.command == static_cast<uint16_t>(Command::kMetaSet));
}

TEST_CASE("memcache meta: base64") {
  namespace meta = mc::meta;
  std::string out;
  CHECK(meta::base64_decode("Zm9v", out));
  CHECK(out == "foo");
  CHECK(meta::base64_decode("Zg==", out));
  CHECK(out == "f");
  CHECK(meta::base64_decode("Zm8=", out));
  CHECK(out == "fo");
  CHECK(meta::base64_decode("+/+/", out));
  CHECK(out == "\xfb\xff\xbf");
  for (const char* bad : {"", "Zm9", "Zm9v=", "Zg", "@@@@", "Z===", "=Zm9", "Zg==Zm9v", "Zm 9"}) {
    CAPTURE(bad);
    CHECK_FALSE(meta::base64_decode(bad, out));
  }
  std::mt19937 rng(7);
  for (int i = 0; i < 200; ++i) {
    std::string raw(rng() % 40 + 1, '\0');
    for (char& c : raw) c = static_cast<char>(rng() % 256);
    std::string enc;
    meta::append_base64(enc, raw);
    CHECK(enc.size() % 4 == 0);
    REQUIRE(meta::base64_decode(enc, out));
    CHECK(out == raw);
  }
}

TEST_CASE("memcache meta: flag summary") {
  namespace meta = mc::meta;
  const meta::FlagSummary f = meta::summarize_flags("  v q  b C1 T5 Oabc ");
  CHECK(f.quiet);
  CHECK(f.base64);
  CHECK(f.compare_cas);
  CHECK(f.writes);
  CHECK(f.count == 6);
  const meta::FlagSummary none = meta::summarize_flags("");
  CHECK_FALSE(none.quiet);
  CHECK(none.count == 0);
}

TEST_CASE("memcache request: pipelined frames") {
  const std::string stream =
      "get a b\r\nset k 1 2 5\r\nhello\r\ndelete k noreply\r\nincr n 1\r\nversion\r\n"
      "cas k 0 0 2 7\r\nhi\r\ngat 5 x\r\nquit\r\nget partial";
  expect_stream(
      stream,
      {ok("get a b\r\n", Command::kGet, "get", kRead | kMulti, {"a", "b"}),
       ok("set k 1 2 5\r\nhello\r\n", Command::kSet, "set", kWrite | kHasData, {"k"}),
       ok("delete k noreply\r\n", Command::kDelete, "delete", kWrite | kNoreply, {"k"}, " noreply"),
       ok("incr n 1\r\n", Command::kIncr, "incr", kWrite, {"n"}),
       ok("version\r\n", Command::kVersion, "version", kLocal),
       ok("cas k 0 0 2 7\r\nhi\r\n", Command::kCas, "cas", kWrite | kHasData, {"k"}),
       ok("gat 5 x\r\n", Command::kGat, "gat", kRead | kMulti, {"x"}),
       ok("quit\r\n", Command::kQuit, "quit", kQuit | kLocal), leftover(11)});
}

// --- errors -----------------------------------------------------------------------------------

const Event kNextGet = ok("get next\r\n", Command::kGet, "get", kRead | kMulti, {"next"});

// `bad` alone gives `e`; followed by "get next\r\n", the next frame still parses.
void expect_error(std::string_view bad, const Event& e, RequestLimits limits = {}) {
  const RequestParser p(limits);
  expect_frame(p, bad, e);
  expect_stream(p, std::string(bad) + "get next\r\n", {e, kNextGet, leftover(0)});
}

TEST_CASE("memcache request: unknown commands and empty lines") {
  for (const char* line : {"foo bar\r\n", "GET k\r\n", "Get k\r\n", "getx k\r\n", "bget k\r\n",
                           "\r\n", "\n", "   \r\n", "\t\r\n"}) {
    expect_error(line, err(errors::kError, std::string_view(line).size()));
  }
  // A NUL ends the line (memcached reads it as a C string).
  expect_error("get\0 k\r\n"s, err(errors::kError, 8));
}

TEST_CASE("memcache request: an HTTP request line closes, as memcached does") {
  for (const char* line :
       {"GET / HTTP/1.1\r\n", "POST /x HTTP/1.0\r\n", "foo HTTP/\r\n", "HTTP/1.1\r\n",
        "vx HTTP/1.1\r\n", "mxx HTTP/2\r\n", " foo  HTTP/1.1  \n", "Gx HTTP/1.1x\r\n",
        "fa b c d e f g h i j k l m n o p q r s t u v HTTP/1.1 z\r\n"}) {
    expect_frame(line, err(errors::kCloseHttp, std::string_view(line).size(), 0, true));
  }
  // memcached dispatches these first: ERROR.
  for (const char* line :
       {"gx HTTP/1.1\r\n", "sx HTTP/1.1\r\n", "ax HTTP/1.1\r\n", "cx HTTP/1.1\r\n",
        "ix HTTP/1.1\r\n", "dx HTTP/1.1\r\n", "tx HTTP/1.1\r\n", "mx HTTP/1.1\r\n",
        "x HTTP/1.1\r\n", "foo http/1.1\r\n", "foo bar HTTP/1.1 x\r\n", "set / HTTP/1.1\r\n",
        "stats HTTP/1.1\r\n", "fa b c d e f g h i j k l m n o p q r s t u v w HTTP/1.1\r\n"}) {
    expect_error(line, err(errors::kError, std::string_view(line).size()));
  }
  // A known command is a command: get k HTTP/1.0 asks for two keys.
  expect_frame("get k HTTP/1.0\r\n",
               ok("get k HTTP/1.0\r\n", Command::kGet, "get", kRead | kMulti, {"k", "HTTP/1.0"}));
}

TEST_CASE("memcache request: retrieval without keys") {
  for (const char* line : {"get\r\n", "gets  \r\n", "gat\r\n", "get\n"}) {
    expect_error(line, err(errors::kError, std::string_view(line).size()));
  }
  // gat <exptime> without keys: memcached answers an empty hit list.
  for (const char* line : {"gat 10\r\n", "gats 10 \r\n"}) {
    expect_error(line, err(errors::kEmptyGat, std::string_view(line).size()));
  }
  expect_error("gat x\r\n", err(errors::kBadExptime, 7));
}

TEST_CASE("memcache request: key too long") {
  const std::string k251(251, 'k');
  const std::string get = "get a " + k251 + "\r\n";
  expect_error(get, err(errors::kBadFormat, get.size()));
  const std::string del = "delete " + k251 + "\r\n";
  expect_error(del, err(errors::kBadFormat, del.size()));
  const std::string incr = "incr " + k251 + " 1\r\n";
  expect_error(incr, err(errors::kBadFormat, incr.size()));
  const std::string touch = "touch " + k251 + " 1\r\n";
  expect_error(touch, err(errors::kBadFormat, touch.size()));
  const std::string gat = "gat 1 " + k251 + "\r\n";
  expect_error(gat, err(errors::kBadFormat, gat.size()));
  // The arguments are checked before the key: delete's usage, gat's exptime.
  const std::string del1 = "delete " + k251 + " 1\r\n";
  expect_error(del1, err(errors::kDeleteUsage, del1.size()));
  const std::string gatx = "gat x " + k251 + "\r\n";
  expect_error(gatx, err(errors::kBadExptime, gatx.size()));
  // A storage command swallows its data block (unlike memcached, which reads it as a command:
  // dproxy never runs a value as a command, and keeps a noreply request silent).
  const std::string set_line = "set " + k251 + " 0 0 5\r\n";
  expect_error(set_line + "hello\r\n", err(errors::kBadFormat, set_line.size(), 7));
  const std::string cas_line = "cas " + k251 + " 0 0 5 1 noreply\r\n";
  expect_error(cas_line + "hello\r\n", err(errors::kBadFormat, cas_line.size(), 7));
  expect_error(set_line + "get x\r\n", err(errors::kBadFormat, set_line.size(), 7));
  // <bytes> unparseable: nothing to swallow.
  const std::string bad_bytes = "set " + k251 + " 0 0 x\r\n";
  expect_error(bad_bytes, err(errors::kBadFormat, bad_bytes.size()));

  // Another limit: the same text.
  RequestLimits small;
  small.max_key_bytes = 4;
  expect_error("get abcd\r\n", ok("get abcd\r\n", Command::kGet, "get", kRead | kMulti, {"abcd"}),
               small);
  expect_error("get abcde\r\n", err(errors::kBadFormat, 11), small);
}

TEST_CASE("memcache request: keys may hold control characters") {
  // Only ' ' separates tokens (memcached); a NUL ends the line.
  for (std::string key : {"a\x01z"s, "a\x7f"s, "a\tb"s, "a\rb"s, "k\r"s, "\x1f"s, "\x1b"s}) {
    const std::string line = "get " + key + " x\r\n";
    CAPTURE(line);
    expect_error(line, ok(line, Command::kGet, "get", kRead | kMulti, {key, "x"}));
    const std::string del = "delete " + key + "\r\n";
    expect_error(del, ok(del, Command::kDelete, "delete", kWrite, {key}));
    const std::string set = "set " + key + " 0 0 1\r\nz\r\n";
    expect_error(set, ok(set, Command::kSet, "set", kWrite | kHasData, {key}));
  }
  expect_error("get a\0b c\r\n"s,
               ok("get a\0b c\r\n"s, Command::kGet, "get", kRead | kMulti, {"a"}));
  expect_error("set a\0b 0 0 1\r\n"s, err(errors::kError, 15));
  // Too long with control characters.
  const std::string both = "get " + std::string(251, '\x01') + "\r\n";
  expect_error(both, err(errors::kBadFormat, both.size()));
  const std::string long_both =
      "get ok " + std::string(240, 'k') + "\x01" + std::string(20, 'k') + " next\r\n";
  expect_error(long_both, err(errors::kBadFormat, long_both.size()));
  // Keys read eight bytes at a time: the control character at every position of a long key.
  for (size_t at = 0; at < 20; ++at) {
    for (char bad : {'\x01', '\x7f', '\t', '\r', '\x1f'}) {
      std::string key(20, 'k');
      key[at] = bad;
      const std::string line = "get key:00000001 " + key + " key:00000002\r\n";
      CAPTURE(at);
      expect_error(line, ok(line, Command::kGet, "get", kRead | kMulti,
                            {"key:00000001", key, "key:00000002"}));
    }
  }
  // Bytes above 0x7f too.
  const std::string high =
      "get \x80\x81\xa0\xfe\xff"
      "abcdefgh\x80 x\r\n";
  expect_error(high, ok(high, Command::kGet, "get", kRead | kMulti,
                        {"\x80\x81\xa0\xfe\xff"
                         "abcdefgh\x80",
                         "x"}));
}

TEST_CASE("memcache request: wrong token counts are ERROR") {
  for (const char* line : {
           "set k 0 0\r\n",
           "set k 0 0 1 noreply extra\r\n",
           "set k 0 0 1 a b c d e f g h\r\n",
           "cas k 0 0 1\r\n",
           "cas k 0 0 1 \r\n",
           "cas k 0 0 1 1 noreply x\r\n",
           "delete\r\n",
           "delete k 0 noreply x\r\n",
           "incr k\r\n",
           "incr k 1 noreply x\r\n",
           "decr\r\n",
           "touch k\r\n",
           "touch k 1 noreply x\r\n",
           "flush_all 1 2 3\r\n",
           "verbosity\r\n",
           "verbosity 1 2 3\r\n",
       }) {
    expect_error(line, err(errors::kError, std::string_view(line).size()));
  }
}

TEST_CASE("memcache request: bad command line format") {
  for (const char* line : {
           "set k x 0 1\r\n",                       // flags
           "set k -1 0 1\r\n",                      // negative flags
           "set k 4294967296 0 1\r\n",              // flags above 32 bits
           "set k 0 x 1\r\n",                       // exptime
           "set k 0 2147483648 1\r\n",              // exptime above int32
           "set k 0 - 1\r\n",                       // exptime
           "set k 0 0 x\r\n",                       // bytes
           "set k 0 0 -1\r\n",                      // negative bytes
           "set k 0 0 2147483646\r\n",              // bytes above INT_MAX - 2
           "set k 0 0 99999999999999999999\r\n",    // bytes overflow
           "cas k 0 0 1 x\r\n",                     // cas unique
           "cas k 0 0 1 -1\r\n",                    // cas unique
           "cas k 0 0 1 18446744073709551616\r\n",  // cas unique above 64 bits
           "verbosity x\r\n",
           "verbosity -1\r\n",
       }) {
    expect_error(line, err(errors::kBadFormat, std::string_view(line).size()));
  }
  for (const char* line : {"delete k 1\r\n", "delete k 0 0\r\n", "delete k noreply 0\r\n",
                           "delete k noreply extra\r\n", "delete k 0 x\r\n"}) {
    expect_error(line, err(errors::kDeleteUsage, std::string_view(line).size()));
  }
  for (const char* line : {"touch k x\r\n", "gat x k\r\n", "gats 1.5 k\r\n", "flush_all x\r\n",
                           "flush_all noreply 1\r\n", "flush_all x 2\r\n"}) {
    expect_error(line, err(errors::kBadExptime, std::string_view(line).size()));
  }
}

TEST_CASE("memcache request: tokens memcached ignores") {
  // A last token that is not noreply, extra tokens of version / quit / flush_all / verbosity,
  // and a '+' sign on numbers are accepted (and forwarded as they are).
  for (const char* line :
       {"set k 0 0 1 norepl\r\nx\r\n", "set k +1 +0 +1\r\nx\r\n", "cas k 0 0 1 1 2\r\nx\r\n"}) {
    const std::string l = line;
    const Command c = l[0] == 'c' ? Command::kCas : Command::kSet;
    expect_frame(l, ok(l, c, l.substr(0, 3), kWrite | kHasData, {"k"}));
  }
  expect_frame("incr k 1 2\r\n", ok("incr k 1 2\r\n", Command::kIncr, "incr", kWrite, {"k"}));
  expect_frame("incr k +1\r\n", ok("incr k +1\r\n", Command::kIncr, "incr", kWrite, {"k"}));
  expect_frame("touch k 1 x\r\n", ok("touch k 1 x\r\n", Command::kTouch, "touch", kWrite, {"k"}));
  expect_frame("version 1\r\n", ok("version 1\r\n", Command::kVersion, "version", kLocal));
  expect_frame("version a b c d e f g h i j\r\n",
               ok("version a b c d e f g h i j\r\n", Command::kVersion, "version", kLocal));
  expect_frame("quit now\r\n", ok("quit now\r\n", Command::kQuit, "quit", kQuit | kLocal));
  const uint32_t f = kBroadcast | kWrite;
  expect_frame("flush_all 1 2\r\n", ok("flush_all 1 2\r\n", Command::kFlushAll, "flush_all", f));
  expect_frame("flush_all 1 x\r\n", ok("flush_all 1 x\r\n", Command::kFlushAll, "flush_all", f));
  expect_frame("verbosity 1 2\r\n",
               ok("verbosity 1 2\r\n", Command::kVerbosity, "verbosity", kLocal));
}

TEST_CASE("memcache request: a refused storage line does not swallow its data") {
  // As memcached: the data line is then read as a command of its own.
  expect_stream("set k 0 x 5\r\nhello\r\nget next\r\n",
                {err(errors::kBadFormat, 13), err(errors::kError, 7), kNextGet, leftover(0)});
}

TEST_CASE("memcache request: invalid delta") {
  for (const char* line :
       {"incr k x\r\n", "incr k -1\r\n", "decr k 1.5\r\n", "incr k 18446744073709551616\r\n"}) {
    expect_error(line, err(errors::kBadDelta, std::string_view(line).size()));
  }
}

TEST_CASE("memcache request: object too large") {
  RequestLimits limits;
  limits.max_value_bytes = 10;
  // At the limit: fine.
  expect_error("set k 0 0 10\r\n0123456789\r\n",
               ok("set k 0 0 10\r\n0123456789\r\n", Command::kSet, "set", kWrite | kHasData, {"k"}),
               limits);
  // Above: refused as soon as the line is complete, the data block is skipped.
  const RequestParser p(limits);
  Request req;
  CHECK(snapshot(p.parse("set k 0 0 11\r\n", req), req) == err(errors::kTooLarge, 14, 13));
  expect_error("set k 0 0 11\r\n01234567890\r\n", err(errors::kTooLarge, 14, 13), limits);
  expect_error("append k 0 0 11 noreply\r\n01234567890\r\n", err(errors::kTooLarge, 25, 13),
               limits);
  expect_error("ms k 11 T0\r\n01234567890\r\n", err(errors::kTooLarge, 12, 13), limits);
  // The default limit is 1 MiB.
  CHECK(parse_once("set k 0 0 1048577\r\n") == err(errors::kTooLarge, 19, 1048579));
  CHECK(parse_once("set k 0 0 1048576\r\n").status == ParseStatus::kNeedMore);
  const std::string big = "set k 0 0 1048576\r\n" + std::string(1048576, 'v') + "\r\n";
  CHECK(parse_once(big) == ok(big, Command::kSet, "set", kWrite | kHasData, {"k"}));
  // The skip outlives many small chunks.
  const std::string stream = "set k 0 0 11\r\n01234567890\r\nget next\r\n";
  std::vector<std::string_view> chunks;
  for (size_t i = 0; i < stream.size(); i += 2)
    chunks.push_back(std::string_view(stream).substr(i, 2));
  CHECK(drive(p, chunks) ==
        std::vector<Event>{err(errors::kTooLarge, 14, 13), kNextGet, leftover(0)});
}

TEST_CASE("memcache request: bad data chunk closes") {
  // consumed = line + <bytes> + 2; checked once that many bytes are buffered.
  expect_frame("set k 0 0 3\r\nabcd\r\n", err(errors::kBadDataChunk, 18, 0, true));
  expect_frame("set k 0 0 3\r\nabc\n\r", err(errors::kBadDataChunk, 18, 0, true));
  expect_frame("set k 0 0 3\r\nabc\r\r", err(errors::kBadDataChunk, 18, 0, true));
  expect_frame("cas k 0 0 0 1\r\nxy", err(errors::kBadDataChunk, 17, 0, true));
  expect_frame("ms k 1\r\nxyz", err(errors::kBadDataChunk, 11, 0, true));
  // Nothing after the close is parsed.
  expect_stream("get a\r\nset k 0 0 1\r\nxx\r\nget b\r\n",
                {ok("get a\r\n", Command::kGet, "get", kRead | kMulti, {"a"}),
                 err(errors::kBadDataChunk, 16, 0, true)});
}

TEST_CASE("memcache request: line too long closes") {
  RequestLimits limits;
  limits.max_line_bytes = 16;
  const RequestParser p(limits);
  Request req;
  // 16 bytes before the "\n" are allowed ("\r" included).
  CHECK(snapshot(p.parse("get 0123456789ab\n", req), req) ==
        ok("get 0123456789ab\n", Command::kGet, "get", kRead | kMulti, {"0123456789ab"}));
  CHECK(snapshot(p.parse("get 0123456789a\r\n", req), req) ==
        ok("get 0123456789a\r\n", Command::kGet, "get", kRead | kMulti, {"0123456789a"}));
  // 16 bytes without "\n": still waiting.
  CHECK(p.parse("get 0123456789ab", req).status == ParseStatus::kNeedMore);
  // 17: refused, everything buffered is consumed.
  CHECK(snapshot(p.parse("get 0123456789abc", req), req) == err(errors::kLineTooLong, 17, 0, true));
  CHECK(snapshot(p.parse("get 0123456789abcdefgh", req), req) ==
        err(errors::kLineTooLong, 22, 0, true));
  // Also when the "\n" is already there, so that any split gives the same result.
  CHECK(snapshot(p.parse("get 0123456789abc\r\nget x\r\n", req), req) ==
        err(errors::kLineTooLong, 26, 0, true));
  // drive() zeroes `consumed` for this error: it depends on what is buffered.
  expect_stream(p, "get a\r\nget 0123456789abcdef\r\nget b\r\n",
                {ok("get a\r\n", Command::kGet, "get", kRead | kMulti, {"a"}),
                 err(errors::kLineTooLong, 0, 0, true)});
  // The data block of a storage command is not a line: it may exceed the line limit.
  const std::string set = "set k 0 0 40\r\n" + std::string(40, 'd') + "\r\n";
  CHECK(snapshot(p.parse(set, req), req) ==
        ok(set, Command::kSet, "set", kWrite | kHasData, {"k"}));
}

TEST_CASE("memcache request: error results name the command when recognized") {
  RequestParser p;
  Request req;
  ParseResult r = p.parse("set k 0 0 x\r\n", req);
  CHECK(r.status == ParseStatus::kError);
  CHECK(req.name == "set");
  CHECK(req.command == static_cast<uint16_t>(Command::kSet));
  CHECK(req.keys.empty());
  CHECK(req.flags == 0);
  CHECK(req.frame.empty());
  r = p.parse("flush_all noreply noreply\r\n", req);
  CHECK(r.status == ParseStatus::kError);
  CHECK(req.noreply_token.empty());
  // The last token is noreply: the caller must not answer (memcached stays silent too).
  CHECK(req.flags == kFlagNoreply);
  r = p.parse("nope\r\n", req);
  CHECK(r.status == ParseStatus::kError);
  CHECK(req.name.empty());
  r = p.parse("get a b", req);
  CHECK(r.status == ParseStatus::kNeedMore);
  CHECK(req.name.empty());
  CHECK(req.keys.empty());
}

TEST_CASE("memcache request: errors and frames interleaved") {
  RequestLimits limits;
  limits.max_value_bytes = 4;
  const std::string k251(251, 'k');
  const std::string stream = "get a\r\nbogus\r\nset k 0 0 9\r\n123456789\r\nget " + k251 +
                             "\r\nincr k z\r\nset b 0 0 2\r\nxy\r\ndelete b noreply\r\n";
  expect_stream(
      RequestParser(limits), stream,
      {ok("get a\r\n", Command::kGet, "get", kRead | kMulti, {"a"}), err(errors::kError, 7),
       err(errors::kTooLarge, 13, 11), err(errors::kBadFormat, 257), err(errors::kBadDelta, 10),
       ok("set b 0 0 2\r\nxy\r\n", Command::kSet, "set", kWrite | kHasData, {"b"}),
       ok("delete b noreply\r\n", Command::kDelete, "delete", kWrite | kNoreply, {"b"}, " noreply"),
       leftover(0)});
}

// --- randomized -------------------------------------------------------------------------------

// Random streams of valid, invalid and mutated frames: whole-buffer and randomly chunked feeds
// must agree, and every result must satisfy the invariants checked in drive().
TEST_CASE("memcache request: randomized split invariance") {
  const std::vector<std::string> pieces = {
      "get a\r\n",
      "gets a b c\r\n",
      "gat 1 k\r\n",
      "set k 0 0 3\r\nabc\r\n",
      "set k 0 0 3 noreply\r\na\r\n\r\n",
      "cas k 0 0 1 5\r\nx\r\n",
      "set k 0 0 12\r\n0123456789ab\r\n",
      "set k 0 0 2\r\nabc\r\n",
      "delete k noreply\r\n",
      "incr k 1\r\n",
      "incr k x\r\n",
      "touch k 1\r\n",
      "flush_all 0 noreply\r\n",
      "version\r\n",
      "verbosity 1\r\n",
      "quit\r\n",
      "stats\r\n",
      "ms k 2 T1\r\nxy\r\n",
      "mg k v\r\n",
      "bogus\r\n",
      "\r\n",
      "get " + std::string(20, 'x') + "\r\n",
      "set \x01 0 0 1\r\nz\r\n",
      "get a\n",
      std::string(40, 'z'),
  };
  RequestLimits limits;
  limits.max_key_bytes = 16;
  limits.max_value_bytes = 8;
  limits.max_line_bytes = 32;
  const RequestParser p(limits);
  std::mt19937 rng(12345);
  for (int iter = 0; iter < 3000; ++iter) {
    std::string stream;
    const int n = 1 + static_cast<int>(rng() % 6);
    for (int i = 0; i < n; ++i) stream += pieces[rng() % pieces.size()];
    const int mutations = static_cast<int>(rng() % 3);
    for (int m = 0; m < mutations && !stream.empty(); ++m) {
      const size_t at = rng() % stream.size();
      switch (rng() % 4) {
        case 0:
          stream[at] = static_cast<char>(rng() % 256);
          break;
        case 1:
          stream[at] = " \r\n0"[rng() % 4];
          break;
        case 2:
          stream.erase(at, 1);
          break;
        default:
          stream.insert(at, 1, static_cast<char>(rng() % 256));
          break;
      }
    }
    INFO("stream: ", escape(stream));
    const std::vector<Event> expected = drive_whole(p, stream);
    std::vector<std::string_view> chunks;
    size_t pos = 0;
    while (pos < stream.size()) {
      const size_t len = 1 + rng() % 9;
      chunks.push_back(std::string_view(stream).substr(pos, len));
      pos += len;
    }
    REQUIRE(drive(p, chunks) == expected);
  }
}

}  // namespace

TEST_CASE("memcache request: a refused request that carried noreply says so") {
  RequestParser p(RequestLimits{250, 100, 1024});
  Request req;
  struct Case {
    std::string in;
    bool noreply;
  };
  const Case cases[] = {
      {"delete k 10 noreply\r\n", true},
      {"delete k 10\r\n", false},
      {"incr k noreply\r\n", true},  // ERROR from memcached; dproxy stays silent
      {"incr k abc noreply  \r\n", true},
      {"touch k noreply\r\n", true},
      {"verbosity noreply\r\n", true},
      {"set k 0 0 noreply\r\n", true},
      {"set k 0 0 101 noreply\r\n", true},
      {"set k 0 0 101\r\n", false},
      {"delete k 0 0 0 0 0 0 0 0 noreply\r\n", true},  // more tokens than any command takes
      {"set k 0 0 1 xnoreply\r\n", false},
      {"bogus k noreply\r\n", false},  // memcached answers ERROR to an unknown command
      {"stats x noreply\r\n", false},  // refused, but stats takes no noreply
      {"get k noreply\r\n", false},    // a key named noreply: not an error at all
  };
  for (const Case& c : cases) {
    CAPTURE(c.in);
    p.parse(c.in, req);
    CHECK(req.has(kFlagNoreply) == c.noreply);
  }
  // A set refused for its size keeps its key (the caller deletes the old value).
  ParseResult r = p.parse("set kk 0 0 101\r\n", req);
  CHECK(r.error == errors::kTooLarge);
  REQUIRE(req.keys.size() == 1);
  CHECK(req.keys[0] == "kk");
}
