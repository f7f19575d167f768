// Unit tests for the RESP2 request parser (multibulk, inline, errors, oversize discard).

#include <doctest/doctest.h>

#include <cstdint>
#include <ostream>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/resp/reply_writer.h"
#include "protocol/resp/request_parser.h"

namespace {

using namespace std::string_literals;
using dproxy::protocol::ParseResult;
using dproxy::protocol::ParseStatus;
using dproxy::protocol::Request;
namespace resp = dproxy::protocol::resp;
namespace errors = dproxy::protocol::resp::errors;
using resp::RequestLimits;
using resp::RequestParser;

// A comparable snapshot of one parse step (owning copies of every view).
struct Event {
  enum Kind : uint8_t { kOk, kEmpty, kDiscarded, kError, kLeftover };
  Kind kind = kLeftover;
  std::string frame;              // kOk, kEmpty
  std::vector<std::string> args;  // kOk
  std::string name;               // kOk, kError (kValueTooLarge)
  std::string error;              // kError
  size_t n = 0;                   // kError: consumed; kDiscarded: bytes; kLeftover: bytes
  size_t skip = 0;                // kError
  bool close = false;             // kError

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
  switch (e.kind) {
    case Event::kOk:
      os << "Ok{frame=\"" << escape(e.frame) << "\" args=[";
      for (const auto& a : e.args) os << "\"" << escape(a) << "\",";
      return os << "] name=\"" << escape(e.name) << "\"}";
    case Event::kEmpty:
      return os << "Empty{\"" << escape(e.frame) << "\"}";
    case Event::kDiscarded:
      return os << "Discarded{" << e.n << "}";
    case Event::kError:
      return os << "Error{\"" << escape(e.error) << "\" consumed=" << e.n << " skip=" << e.skip
                << " close=" << e.close << " name=\"" << escape(e.name) << "\"}";
    default:
      return os << "Leftover{" << e.n << "}";
  }
}

std::ostream& operator<<(std::ostream& os, const std::vector<Event>& events) {
  os << "[\n";
  for (const Event& e : events) os << "  " << e << "\n";
  return os << "]";
}

Event ok(std::string frame, std::vector<std::string> args) {
  Event e;
  e.kind = Event::kOk;
  e.frame = std::move(frame);
  e.name = args.empty() ? std::string() : args[0];
  e.args = std::move(args);
  return e;
}

Event empty(std::string frame) {
  Event e;
  e.kind = Event::kEmpty;
  e.frame = std::move(frame);
  return e;
}

Event discarded(size_t n) {
  Event e;
  e.kind = Event::kDiscarded;
  e.n = n;
  return e;
}

// A protocol error that closes the connection.
Event err(std::string_view error, size_t consumed) {
  Event e;
  e.kind = Event::kError;
  e.error = error;
  e.n = consumed;
  e.close = true;
  return e;
}

Event too_large(size_t consumed, size_t skip, std::string name = {}) {
  Event e;
  e.kind = Event::kError;
  e.error = errors::kValueTooLarge;
  e.n = consumed;
  e.skip = skip;
  e.name = std::move(name);
  return e;
}

// The final event of drive(): the bytes still buffered (an incomplete frame).
Event leftover(size_t n) {
  Event e;
  e.n = n;
  return e;
}

// The snapshot of a non-kNeedMore result (a kOk with no args is kEmpty here).
Event snapshot(const ParseResult& r, const Request& req) {
  Event e;
  if (r.status == ParseStatus::kError) {
    e.kind = Event::kError;
    e.error = r.error;
    e.n = r.consumed;
    e.skip = r.skip;
    e.close = r.close;
    e.name = req.name;
    return e;
  }
  e.kind = req.args.empty() ? Event::kEmpty : Event::kOk;
  e.frame = req.frame;
  e.name = req.name;
  for (auto a : req.args) e.args.emplace_back(a);
  return e;
}

bool within(std::string_view inner, std::string_view outer) {
  return inner.data() >= outer.data() && inner.data() + inner.size() <= outer.data() + outer.size();
}

// Invariants of every result over the buffer `buf`.
void check_invariants(std::string_view buf, const ParseResult& r, const Request& req) {
  CHECK(req.command == 0);
  CHECK(req.flags == 0);
  CHECK(req.keys.empty());
  CHECK(req.noreply_token.empty());
  if (r.status == ParseStatus::kNeedMore) {
    CHECK(req.frame.empty());
    CHECK(req.args.empty());
    CHECK(req.name.empty());
    CHECK((r.size_hint == 0 || r.size_hint > buf.size()));
    return;
  }
  REQUIRE(r.consumed <= buf.size());
  if (r.status == ParseStatus::kError) {
    CHECK(req.frame.empty());
    CHECK(req.args.empty());
    REQUIRE(r.error.size() >= 3);
    CHECK(r.error[0] == '-');
    CHECK(r.error.substr(r.error.size() - 2) == "\r\n");
    CHECK(r.error.find_first_of("\r\n") == r.error.size() - 2);
    CHECK(r.close == (r.error != errors::kValueTooLarge));
    if (r.close) CHECK(r.skip == 0);
    return;
  }
  REQUIRE(r.consumed > 0);
  CHECK(req.frame.data() == buf.data());
  CHECK(req.frame.size() == r.consumed);
  if (req.args.empty()) {
    CHECK(req.name.empty());
    return;
  }
  CHECK(req.name.data() == req.args[0].data());
  CHECK(req.name.size() == req.args[0].size());
  if (req.frame[0] == '*') {
    // A multibulk frame is canonical: re-encoding its args gives it back, and every arg is a
    // view into it.
    for (auto a : req.args) CHECK(within(a, req.frame));
    std::string encoded;
    resp::append_command(encoded, req.args);
    CHECK(encoded == req.frame);
  }
}

// Feeds `chunks` one after the other into a buffer the way a client session does: parse every
// complete command, drop consumed + skip bytes (skip may span later chunks), stop after a close.
// Consecutive kOk results while discarding are merged into one Discarded{bytes} event (their
// sizes depend on the reads). Ends with leftover(bytes still buffered) unless closed.
// `max_buffered` (optional) gets the largest buffer size seen.
std::vector<Event> drive(RequestParser& p, const std::vector<std::string_view>& chunks,
                         size_t* max_buffered = nullptr) {
  std::vector<Event> events;
  std::string buf;
  size_t pending_skip = 0;
  Request req;
  for (std::string_view chunk : chunks) {
    const size_t drop = pending_skip < chunk.size() ? pending_skip : chunk.size();
    pending_skip -= drop;
    buf.append(chunk.substr(drop));
    if (max_buffered != nullptr && buf.size() > *max_buffered) *max_buffered = buf.size();
    for (;;) {
      const bool was_discarding = p.discarding();
      ParseResult r = p.parse(buf, req);
      check_invariants(buf, r, req);
      if (r.status == ParseStatus::kNeedMore) break;
      Event e = snapshot(r, req);
      if (r.status == ParseStatus::kOk) {
        buf.erase(0, r.consumed);
        if (was_discarding) {
          CHECK(req.args.empty());
          if (!events.empty() && events.back().kind == Event::kDiscarded) {
            events.back().n += r.consumed;
          } else {
            events.push_back(discarded(r.consumed));
          }
          continue;
        }
        events.push_back(std::move(e));
        continue;
      }
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

std::vector<Event> drive_whole(const RequestLimits& limits, std::string_view stream) {
  RequestParser p(limits);
  return drive(p, {stream});
}

std::vector<Event> drive_chunks(const RequestLimits& limits,
                                const std::vector<std::string_view>& chunks,
                                size_t* max_buffered = nullptr) {
  RequestParser p(limits);
  return drive(p, chunks, max_buffered);
}

// Checks that `stream` gives `expected` when fed whole, byte at a time, and split in two at
// every offset (and in three at a sample of offset pairs).
void expect_stream(const RequestLimits& limits, std::string_view stream,
                   const std::vector<Event>& expected) {
  INFO("stream: ", escape(stream.substr(0, 300)));
  CHECK(drive_whole(limits, stream) == expected);
  std::vector<std::string_view> bytes;
  for (size_t i = 0; i < stream.size(); ++i) bytes.push_back(stream.substr(i, 1));
  CHECK(drive_chunks(limits, bytes) == expected);
  for (size_t i = 0; i <= stream.size(); ++i) {
    INFO("split at ", i);
    REQUIRE(drive_chunks(limits, {stream.substr(0, i), stream.substr(i)}) == expected);
  }
  const size_t di = stream.size() / 16 > 3 ? stream.size() / 16 : 3;
  const size_t dj = stream.size() / 12 > 5 ? stream.size() / 12 : 5;
  for (size_t i = 1; i < stream.size(); i += di) {
    for (size_t j = i; j < stream.size(); j += dj) {
      CHECK(drive_chunks(limits, {stream.substr(0, i), stream.substr(i, j - i),
                                  stream.substr(j)}) == expected);
    }
  }
}

void expect_stream(std::string_view stream, const std::vector<Event>& expected) {
  expect_stream(RequestLimits{}, stream, expected);
}

// One frame that is exactly `input`: every prefix is NeedMore until the result is known, from
// then on every prefix gives `e` (with a fresh parser; the incremental parser that saw the
// shorter prefixes gives it too). Then the frame as a stream, alone and followed by a command.
void expect_frame(const RequestLimits& limits, std::string_view input, const Event& e) {
  INFO("input: ", escape(input));
  RequestParser incremental(limits);
  Request inc_req;
  bool known = false;
  for (size_t n = 0; n <= input.size(); ++n) {
    INFO("prefix ", n);
    const std::string_view prefix = input.substr(0, n);
    RequestParser fresh(limits);
    Request req;
    ParseResult r = fresh.parse(prefix, req);
    check_invariants(prefix, r, req);
    if (!known) {
      ParseResult ri = incremental.parse(prefix, inc_req);
      check_invariants(prefix, ri, inc_req);
      CHECK(ri.status == r.status);
      if (ri.status != ParseStatus::kNeedMore) CHECK(snapshot(ri, inc_req) == e);
      CHECK(r.size_hint == ri.size_hint);
    }
    if (!known && r.status == ParseStatus::kNeedMore) {
      CHECK(n < input.size());
      CHECK(r.size_hint <= input.size());
      continue;
    }
    known = true;
    REQUIRE(snapshot(r, req) == e);
  }
  // An Ok frame must need every byte of the input.
  if (e.kind == Event::kOk || e.kind == Event::kEmpty) CHECK(e.frame.size() == input.size());
  if (e.close) {
    expect_stream(limits, input, {e});
  } else {
    expect_stream(limits, input, {e, leftover(0)});
    const Event next = ok("*1\r\n$4\r\nNEXT\r\n", {"NEXT"});
    expect_stream(limits, std::string(input) + next.frame, {e, next, leftover(0)});
  }
}

void expect_frame(std::string_view input, const Event& e) {
  expect_frame(RequestLimits{}, input, e);
}

// The multibulk encoding of `args` (written out by hand, independently of reply_writer).
std::string mb(const std::vector<std::string>& args) {
  std::string s = "*" + std::to_string(args.size()) + "\r\n";
  for (const auto& a : args) s += "$" + std::to_string(a.size()) + "\r\n" + a + "\r\n";
  return s;
}

Event ok_mb(const std::vector<std::string>& args) {
  return ok(mb(args), args);
}

Event parse_once(std::string_view input, RequestLimits limits = {}) {
  RequestParser p(limits);
  Request req;
  ParseResult r = p.parse(input, req);
  if (r.status == ParseStatus::kNeedMore) return leftover(input.size());
  return snapshot(r, req);
}

const Event kNext = ok_mb({"NEXT"});

// --- multibulk --------------------------------------------------------------------------------

TEST_CASE("resp request: multibulk commands") {
  expect_frame("*1\r\n$4\r\nPING\r\n", ok("*1\r\n$4\r\nPING\r\n", {"PING"}));
  expect_frame(mb({"SET", "key", "value"}), ok_mb({"SET", "key", "value"}));
  // The name is kept as sent.
  expect_frame(mb({"gEt", "k"}), ok_mb({"gEt", "k"}));
  // Empty bulks, also as the command name.
  expect_frame("*2\r\n$3\r\nGET\r\n$0\r\n\r\n", ok("*2\r\n$3\r\nGET\r\n$0\r\n\r\n", {"GET", ""}));
  expect_frame("*1\r\n$0\r\n\r\n", ok("*1\r\n$0\r\n\r\n", {""}));
  expect_frame(mb({"", "", ""}), ok_mb({"", "", ""}));
  // Many args, long args.
  std::vector<std::string> args = {"MSET"};
  for (int i = 0; i < 12; ++i) args.push_back("k" + std::to_string(i) + std::string(i * 3, 'x'));
  expect_frame(mb(args), ok_mb(args));
  expect_frame(mb({"SET", "k", std::string(1000, 'v')}),
               ok_mb({"SET", "k", std::string(1000, 'v')}));
}

TEST_CASE("resp request: bulks are binary safe") {
  const std::vector<std::string> args = {"SET", "a\r\nb", "\0\0\r\n\xff\x80"s,   "\r\n", "\n",
                                         "\r",  "$3\r\n", "*1\r\n$4\r\nPING\r\n"};
  expect_frame(mb(args), ok_mb(args));
  // A bulk whose data looks like a complete command is not parsed as one.
  expect_stream(mb({"SET", "k", "*1\r\n$4\r\nPING\r\n"}) + mb({"PING"}),
                {ok_mb({"SET", "k", "*1\r\n$4\r\nPING\r\n"}), ok_mb({"PING"}), leftover(0)});
}

TEST_CASE("resp request: empty multibulk is skipped") {
  expect_frame("*0\r\n", empty("*0\r\n"));
  expect_frame("*-1\r\n", empty("*-1\r\n"));
  expect_frame("*-7\r\n", empty("*-7\r\n"));
  expect_stream("*0\r\n*-1\r\n" + mb({"PING"}) + "*0\r\n",
                {empty("*0\r\n"), empty("*-1\r\n"), ok_mb({"PING"}), empty("*0\r\n"), leftover(0)});
}

TEST_CASE("resp request: size hint once a bulk header is read") {
  RequestParser p;
  Request req;
  const std::string frame = "*2\r\n$3\r\nGET\r\n$100\r\n" + std::string(100, 'k') + "\r\n";
  struct {
    size_t prefix;
    size_t hint;
  } const cases[] = {{0, 0},  {1, 0},  {4, 0},    {5, 0},    {7, 0},     {8, 13},   {12, 13},
                     {13, 0}, {18, 0}, {19, 121}, {20, 121}, {119, 121}, {120, 121}};
  for (const auto& c : cases) {
    INFO("prefix ", c.prefix);
    ParseResult r = RequestParser().parse(std::string_view(frame).substr(0, c.prefix), req);
    CHECK(r.status == ParseStatus::kNeedMore);
    CHECK(r.size_hint == c.hint);
    // The same from a parser resuming on growing prefixes.
    r = p.parse(std::string_view(frame).substr(0, c.prefix), req);
    CHECK(r.status == ParseStatus::kNeedMore);
    CHECK(r.size_hint == c.hint);
  }
  CHECK(p.parse(frame, req).status == ParseStatus::kOk);
  CHECK(frame.size() == 121);
  // A 512 MiB bulk (the default limit): the hint is the whole frame, known from its header.
  const std::string big = "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$536870912\r\n";
  ParseResult r = RequestParser().parse(big, req);
  CHECK(r.status == ParseStatus::kNeedMore);
  CHECK(r.size_hint == big.size() + 536870912 + 2);
}

TEST_CASE("resp request: pipelined commands") {
  const std::string stream = mb({"SET", "a", "1"}) + "PING\r\n" + mb({"GET", "a"}) + "\r\n" +
                             "*0\r\n" + "get  b\n" + mb({"DEL", "a", "b"}) + "*2\r\n$3\r\nGET\r";
  expect_stream(stream, {ok_mb({"SET", "a", "1"}), ok("PING\r\n", {"PING"}), ok_mb({"GET", "a"}),
                         empty("\r\n"), empty("*0\r\n"), ok("get  b\n", {"get", "b"}),
                         ok_mb({"DEL", "a", "b"}), leftover(12)});
}

TEST_CASE("resp request: args vector is reused without reallocation") {
  RequestParser p;
  Request req;
  req.args.reserve(8);
  const auto* data = req.args.data();
  for (int i = 0; i < 3; ++i) {
    ParseResult r = p.parse(mb({"MGET", "a", "b", "c"}), req);
    REQUIRE(r.status == ParseStatus::kOk);
    CHECK(req.args.size() == 4);
    CHECK(req.args.data() == data);
    r = p.parse("set k v\r\n", req);
    REQUIRE(r.status == ParseStatus::kOk);
    CHECK(req.args.size() == 3);
    CHECK(req.args.data() == data);
    r = p.parse("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$", req);
    REQUIRE(r.status == ParseStatus::kNeedMore);
    CHECK(req.args.empty());
    p.reset();
  }
}

TEST_CASE("resp request: a frame arriving over many reads") {
  // 20000 args in 1000-byte reads: the parser resumes where it stopped (each read costs only
  // its new bytes) and the final args are the same as from one read.
  std::vector<std::string> args = {"MSET"};
  for (int i = 0; i < 20000; ++i) args.push_back("key:" + std::to_string(i));
  const std::string frame = mb(args);
  std::vector<std::string_view> chunks;
  for (size_t i = 0; i < frame.size(); i += 1000) {
    chunks.push_back(std::string_view(frame).substr(i, 1000));
  }
  CHECK(drive_chunks({}, chunks) == std::vector<Event>{ok_mb(args), leftover(0)});
  // Same for an inline line.
  std::string line = "MGET";
  for (int i = 0; i < 5000; ++i) line += " k" + std::to_string(i);
  line += "\r\n";
  std::vector<std::string> words = {"MGET"};
  for (int i = 0; i < 5000; ++i) words.push_back("k" + std::to_string(i));
  chunks.clear();
  for (size_t i = 0; i < line.size(); i += 100) {
    chunks.push_back(std::string_view(line).substr(i, 100));
  }
  RequestLimits limits;
  limits.max_inline_bytes = 1 << 20;
  CHECK(drive_chunks(limits, chunks) == std::vector<Event>{ok(line, words), leftover(0)});
}

TEST_CASE("resp request: a caller that restarts on other bytes gets a fresh parse") {
  RequestParser p;
  Request req;
  CHECK(p.parse("*2\r\n$3\r\nGET\r\n$1", req).status == ParseStatus::kNeedMore);
  // Shorter than what was seen, or of the other kind: parsed from scratch.
  CHECK(snapshot(p.parse("PING\r\n", req), req) == ok("PING\r\n", {"PING"}));
  CHECK(p.parse("GET k", req).status == ParseStatus::kNeedMore);
  CHECK(snapshot(p.parse(mb({"PING"}), req), req) == ok_mb({"PING"}));
  // reset() forgets a frame in progress of the same kind and length.
  CHECK(p.parse("*2\r\n$3\r\nGET\r\n$1\r\nk", req).status == ParseStatus::kNeedMore);
  p.reset();
  CHECK(snapshot(p.parse("*2\r\n$3\r\nDEL\r\n$2\r\nkk\r\n", req), req) == ok_mb({"DEL", "kk"}));
}

// --- inline -----------------------------------------------------------------------------------

TEST_CASE("resp request: inline commands") {
  expect_frame("PING\r\n", ok("PING\r\n", {"PING"}));
  expect_frame("PING\n", ok("PING\n", {"PING"}));
  expect_frame("set k v\r\n", ok("set k v\r\n", {"set", "k", "v"}));
  expect_frame("  SET  k\tv \t\r\n", ok("  SET  k\tv \t\r\n", {"SET", "k", "v"}));
  // '\r' is a separator too; "\r\r\n" keeps one '\r' in the line.
  expect_frame("get k\r\r\n", ok("get k\r\r\n", {"get", "k"}));
  expect_frame("a\rb\n", ok("a\rb\n", {"a", "b"}));
  // \v and \f are skipped between arguments but do not end one (as sdssplitargs).
  expect_frame("\v\fa\vb c\r\n", ok("\v\fa\vb c\r\n", {"a\vb", "c"}));
  // Bytes >= 0x80 and other control bytes are plain argument bytes.
  expect_frame("GET \xc3\xa9\x01\x7f\r\n",
               ok("GET \xc3\xa9\x01\x7f\r\n", {"GET", "\xc3\xa9\x01\x7f"}));
  // A line starting with '$' or ':' is inline too.
  expect_frame("$3\r\n", ok("$3\r\n", {"$3"}));
}

TEST_CASE("resp request: inline quoting") {
  struct {
    std::string line;
    std::vector<std::string> args;
  } const cases[] = {
      {"SET k \"hello world\"\r\n", {"SET", "k", "hello world"}},
      {"SET k 'hello world'\r\n", {"SET", "k", "hello world"}},
      {"SET k \"\"\r\n", {"SET", "k", ""}},
      {"SET '' k\r\n", {"SET", "", "k"}},
      {"\"a\\nb\\r\\t\\b\\a\"\r\n", {"a\nb\r\t\b\a"}},
      {"\"\\x41\\x4a\\x4A\\x00\\xff\"\r\n", {"AJJ\0\xff"s}},
      {"\"\\\"\\\\\\q\"\r\n", {"\"\\q"}},
      // \x without two hex digits is the escape of 'x'.
      {"\"\\xZZ\" \"\\x4\"\r\n", {"xZZ", "x4"}},
      {"'a\\'b' 'a\\nb' 'a\"b' \"a'b\"\r\n", {"a'b", "a\\nb", "a\"b", "a'b"}},
      // A quote inside an argument starts a quoted part of it.
      {"foo\"bar baz\" x\r\n", {"foobar baz", "x"}},
      {"a'b c'\r\n", {"ab c"}},
      // The closing quote may be followed by any whitespace or the end of the line.
      {"\"a\"\tb\r\n", {"a", "b"}},
      {"\"a\"\r\n", {"a"}},
      {"'a'\n", {"a"}},
      {"\"a\"\v'b'\f\r\n", {"a", "b"}},
      // A quoted '\r' or '\n' escape, and a raw '\r' inside quotes.
      {"SET k \"l1\\r\\nl2\"\r\n", {"SET", "k", "l1\r\nl2"}},
      {"\"a\rb\"\r\n", {"a\rb"}},
  };
  for (const auto& c : cases) expect_frame(c.line, ok(c.line, c.args));
}

TEST_CASE("resp request: inline args point into the frame unless unescaped") {
  RequestParser p;
  Request req;
  const std::string line = "SET \"k 1\" 'v' \"a\\x41\" b\"c\"\r\n";
  ParseResult r = p.parse(line, req);
  REQUIRE(r.status == ParseStatus::kOk);
  REQUIRE(req.args.size() == 5);
  CHECK(req.args[0].data() == line.data());
  CHECK(req.args[1] == "k 1");
  CHECK(req.args[1].data() == line.data() + 5);
  CHECK(req.args[2] == "v");
  CHECK(req.args[2].data() == line.data() + 11);
  CHECK(req.args[3] == "aA");
  CHECK(!within(req.args[3], line));
  CHECK(req.args[4] == "bc");
  CHECK(!within(req.args[4], line));
  // An unescaped arg stays valid until the next call, even across a larger line.
  const std::string longer = "\"" + std::string(500, 'z') + "\\n\" \"x\\ty\"\r\n";
  r = p.parse(longer, req);
  REQUIRE(r.status == ParseStatus::kOk);
  REQUIRE(req.args.size() == 2);
  CHECK(req.args[0] == std::string(500, 'z') + "\n");
  CHECK(req.args[1] == "x\ty");
}

TEST_CASE("resp request: NUL ends an inline line") {
  // Redis splits the line as a C string.
  expect_frame("GET a\0b c\r\n"s, ok("GET a\0b c\r\n"s, {"GET", "a"}));
  expect_frame("\0PING\r\n"s, empty("\0PING\r\n"s));
  expect_frame("GET \"a\0b\"\r\n"s, err(errors::kUnbalancedQuotes, 11));
}

TEST_CASE("resp request: empty inline lines are skipped") {
  for (std::string line : {"\r\n"s, "\n"s, "   \r\n"s, "\t\n"s, "\r\r\n"s, " \v\f \r\n"s}) {
    expect_frame(line, empty(line));
  }
  expect_stream("\r\n\r\nPING\r\n\n",
                {empty("\r\n"), empty("\r\n"), ok("PING\r\n", {"PING"}), empty("\n"), leftover(0)});
}

TEST_CASE("resp request: unbalanced quotes") {
  for (std::string line :
       {"SET k \"abc\r\n"s, "SET k 'abc\r\n"s, "SET k \"abc\\\"\r\n"s, "SET k 'abc\\'\r\n"s,
        "\"a\"b\r\n"s, "'a'b\r\n"s, "\"a\"\"b\"\r\n"s, "\"\r\n"s, "'\n"s, "SET k \"a\\\r\n"s}) {
    expect_frame(line, err(errors::kUnbalancedQuotes, line.size()));
  }
}

TEST_CASE("resp request: too big inline request") {
  RequestLimits limits;
  limits.max_inline_bytes = 16;
  // 16 bytes before the "\n" are allowed ("\r" included).
  expect_frame(limits, "GET 0123456789ab\n", ok("GET 0123456789ab\n", {"GET", "0123456789ab"}));
  expect_frame(limits, "GET 0123456789a\r\n", ok("GET 0123456789a\r\n", {"GET", "0123456789a"}));
  // 17 without "\n": refused, whatever follows.
  expect_frame(limits, "GET 0123456789abc", err(errors::kTooBigInline, 17));
  expect_frame(limits, "GET 0123456789abc\r\n", err(errors::kTooBigInline, 17));
  expect_stream(limits, "PING\r\nGET 0123456789abcdef\r\nPING\r\n",
                {ok("PING\r\n", {"PING"}), err(errors::kTooBigInline, 17)});
  // The default is 64 KiB.
  const std::string big(64 * 1024, 'a');
  CHECK(parse_once(big + "\n") == ok(big + "\n", {big}));
  CHECK(parse_once(big + "a") == err(errors::kTooBigInline, 64 * 1024 + 1));
  // A multibulk frame is not limited by it.
  expect_frame(limits, mb({"SET", "k", std::string(40, 'v')}),
               ok_mb({"SET", "k", std::string(40, 'v')}));
}

// --- malformed multibulk ----------------------------------------------------------------------

TEST_CASE("resp request: invalid multibulk length") {
  struct {
    std::string input;
    size_t consumed;
  } const cases[] = {
      {"*x\r\n", 4},
      {"*\r\n", 3},
      {"*01\r\n", 5},
      {"*+1\r\n", 5},
      {"* 1\r\n", 5},
      {"*1 \r\n", 5},
      {"*-0\r\n", 5},
      {"*1.5\r\n", 6},
      {"*1\rx", 4},
      {"*1\r\r", 4},
      {"*1\n$4\r\n", 7},
      {"*9223372036854775808\r\n", 22},
      {"*99999999999999999999\r\n", 23},
      {"*" + std::string(21, '1'), 22},
      {"*" + std::string(21, '1') + "\r\n", 22},
      {"*-9223372036854775809\r\n", 23},
  };
  for (const auto& c : cases)
    expect_frame(c.input, err(errors::kInvalidMultibulkLength, c.consumed));
  // The longest valid count line is fine (a negative count is an empty command).
  expect_frame("*-9223372036854775808\r\n", empty("*-9223372036854775808\r\n"));
  // More args than max_args.
  RequestLimits limits;
  limits.max_args = 3;
  expect_frame(limits, mb({"A", "B", "C"}), ok_mb({"A", "B", "C"}));
  expect_frame(limits, "*4\r\n$1\r\nA\r\n", err(errors::kInvalidMultibulkLength, 4));
  CHECK(parse_once("*1048577\r\n") == err(errors::kInvalidMultibulkLength, 10));
  CHECK(parse_once("*1048576\r\n") == leftover(10));
}

TEST_CASE("resp request: expected '$'") {
  CHECK(errors::expected_dollar('+') == "-ERR Protocol error: expected '$', got '+'\r\n");
  CHECK(errors::expected_dollar('\r') == "-ERR Protocol error: expected '$', got ' '\r\n");
  CHECK(errors::expected_dollar('\n') == "-ERR Protocol error: expected '$', got ' '\r\n");
  CHECK(errors::expected_dollar('\0') == "-ERR Protocol error: expected '$', got '\0'\r\n"s);
  for (int b = 0; b < 256; ++b) {
    const char c = static_cast<char>(b);
    const std::string_view e = errors::expected_dollar(c);
    CHECK(e.data() == errors::expected_dollar(c).data());  // static storage
    REQUIRE(e.size() == 44);
    CHECK(e[40] == (c == '\r' || c == '\n' ? ' ' : c));
  }
  expect_frame("*1\r\n+PING\r\n", err(errors::expected_dollar('+'), 5));
  expect_frame("*2\r\n$3\r\nGET\r\n:1\r\n", err(errors::expected_dollar(':'), 14));
  expect_frame("*1\r\n\r\n", err(errors::expected_dollar('\r'), 5));
  expect_frame("*1\r\n*1\r\n", err(errors::expected_dollar('*'), 5));
  expect_frame("*2\r\nGET k\r\n", err(errors::expected_dollar('G'), 5));
}

TEST_CASE("resp request: invalid bulk length") {
  struct {
    std::string bulk;  // after "*2\r\n$3\r\nGET\r\n" (13 bytes)
    size_t consumed;
  } const cases[] = {
      {"$x\r\n", 4},    {"$\r\n", 3},
      {"$-1\r\n", 5},   {"$-5\r\n", 5},
      {"$01\r\n", 5},   {"$+1\r\n", 5},
      {"$ 1\r\n", 5},   {"$1 \r\n", 5},
      {"$1\rx", 4},     {"$1\n\r\n", 5},
      {"$1\na\r\n", 6}, {"$" + std::string(21, '9'), 22},
      {"$-0\r\n", 5},   {"$9223372036854775808\r\n", 22},
  };
  for (const auto& c : cases) {
    expect_frame("*2\r\n$3\r\nGET\r\n" + c.bulk, err(errors::kInvalidBulkLength, 13 + c.consumed));
  }
}

TEST_CASE("resp request: bulk data not followed by CRLF") {
  expect_frame("*1\r\n$4\r\nPINGxx", err(errors::kBadBulkEnd, 14));
  expect_frame("*1\r\n$4\r\nPING\rx", err(errors::kBadBulkEnd, 14));
  expect_frame("*1\r\n$4\r\nPING\n\r", err(errors::kBadBulkEnd, 14));
  expect_frame("*2\r\n$3\r\nGET\r\n$1\r\nab\r\n", err(errors::kBadBulkEnd, 20));
  expect_frame("*1\r\n$0\r\nab", err(errors::kBadBulkEnd, 10));
}

TEST_CASE("resp request: a protocol error stops the stream") {
  expect_stream(mb({"PING"}) + "*1\r\n$x\r\n" + mb({"PING"}),
                {ok_mb({"PING"}), err(errors::kInvalidBulkLength, 8)});
  expect_stream("PING\r\n'a\r\nPING\r\n",
                {ok("PING\r\n", {"PING"}), err(errors::kUnbalancedQuotes, 4)});
}

// --- oversize bulks ---------------------------------------------------------------------------

TEST_CASE("resp request: value too large, then the next command") {
  RequestLimits limits;
  limits.max_bulk_bytes = 8;
  // At the limit: fine.
  expect_frame(limits, mb({"SET", "k", "12345678"}), ok_mb({"SET", "k", "12345678"}));
  // The last arg: refused at its header, its data is the caller's skip; nothing to discard.
  const std::string set = mb({"SET", "k", "123456789"});
  expect_stream(limits, set + kNext.frame, {too_large(24, 11, "SET"), kNext, leftover(0)});
  // The first arg: the name is unknown; the remaining arg is discarded by the parser.
  const std::string first = mb({"123456789", "k"});
  expect_stream(limits, first + kNext.frame, {too_large(8, 11), discarded(7), kNext, leftover(0)});
  // A middle arg; the remaining args include empty ones and another oversize one.
  const std::string mset = mb({"MSET", std::string(20, 'x'), "k", "", std::string(30, 'y'), "vv"});
  expect_stream(limits, mset + kNext.frame,
                {too_large(4 + 10 + 5, 22, "MSET"), discarded(7 + 6 + 37 + 8), kNext, leftover(0)});
  // Followed by an inline command and an empty one.
  expect_stream(limits, mset + "\r\nPING\r\n",
                {too_large(19, 22, "MSET"), discarded(58), empty("\r\n"), ok("PING\r\n", {"PING"}),
                 leftover(0)});
  // The stream ends inside the discarded part: everything received so far is eaten.
  expect_stream(limits, mset.substr(0, mset.size() - 3),
                {too_large(19, 22, "MSET"), discarded(55), leftover(0)});
  expect_stream(limits, mset.substr(0, 45), {too_large(19, 22, "MSET"), discarded(4), leftover(0)});
  // Ends inside a discarded bulk header: that header stays buffered.
  expect_stream(limits, mset.substr(0, 43), {too_large(19, 22, "MSET"), leftover(2)});
}

TEST_CASE("resp request: discarding state") {
  RequestLimits limits;
  limits.max_bulk_bytes = 4;
  RequestParser p(limits);
  Request req;
  ParseResult r = p.parse("*3\r\n$3\r\nSET\r\n$5\r\n", req);
  CHECK(snapshot(r, req) == too_large(17, 7, "SET"));
  CHECK(p.discarding());
  // The caller drops 17 + 7 bytes; then the remaining bulk goes, in as many pieces as it comes.
  CHECK(p.parse("", req).status == ParseStatus::kNeedMore);
  CHECK(p.parse("$", req).status == ParseStatus::kNeedMore);
  r = p.parse("$6\r\nab", req);
  CHECK(r.status == ParseStatus::kOk);
  CHECK(r.consumed == 6);
  CHECK(req.args.empty());
  CHECK(req.frame == "$6\r\nab");
  CHECK(p.discarding());
  r = p.parse("cdef\r", req);
  CHECK(r.status == ParseStatus::kOk);
  CHECK(r.consumed == 5);
  CHECK(p.discarding());
  r = p.parse("\nPING\r\n", req);
  CHECK(r.status == ParseStatus::kOk);
  CHECK(r.consumed == 1);
  CHECK(!p.discarding());
  CHECK(snapshot(p.parse("PING\r\n", req), req) == ok("PING\r\n", {"PING"}));
  // reset() abandons a discard.
  CHECK(p.parse("*3\r\n$3\r\nSET\r\n$5\r\n", req).status == ParseStatus::kError);
  CHECK(p.discarding());
  p.reset();
  CHECK(!p.discarding());
  CHECK(snapshot(p.parse("PING\r\n", req), req) == ok("PING\r\n", {"PING"}));
}

TEST_CASE("resp request: the name of a refused command when the parser resumed") {
  RequestLimits limits;
  limits.max_bulk_bytes = 4;
  RequestParser p(limits);
  Request req;
  const std::string frame = "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\n";
  for (size_t n = 0; n < frame.size(); ++n) {
    CHECK(p.parse(std::string_view(frame).substr(0, n), req).status == ParseStatus::kNeedMore);
  }
  CHECK(snapshot(p.parse(frame, req), req) == too_large(frame.size(), 7, "SET"));
}

TEST_CASE("resp request: oversize bulks are discarded without buffering them") {
  RequestLimits limits;
  limits.max_bulk_bytes = 64;
  const std::string stream =
      mb({"MSET", "k1", std::string(100000, 'a'), "k2", std::string(70000, 'b'), "k3", "v"}) +
      kNext.frame;
  const std::vector<Event> expected = {too_large(4 + 10 + 8 + 9, 100002, "MSET"),
                                       discarded(8 + 8 + 70002 + 8 + 7), kNext, leftover(0)};
  CHECK(drive_whole(limits, stream) == expected);
  for (size_t chunk : {1, 7, 100, 4096, 65536}) {
    INFO("chunk ", chunk);
    std::vector<std::string_view> chunks;
    for (size_t i = 0; i < stream.size(); i += chunk) {
      chunks.push_back(std::string_view(stream).substr(i, chunk));
    }
    size_t max_buffered = 0;
    CHECK(drive_chunks(limits, chunks, &max_buffered) == expected);
    // Never more than one read plus a partial header.
    CHECK(max_buffered <= chunk + 32);
  }
}

TEST_CASE("resp request: malformed bulk while discarding") {
  RequestLimits limits;
  limits.max_bulk_bytes = 4;
  const std::string head = "*4\r\n$3\r\nSET\r\n$5\r\nhello\r\n";
  expect_stream(limits, head + "$1\r\nk\r\n$x\r\n" + kNext.frame,
                {too_large(17, 7, "SET"), discarded(7), err(errors::kInvalidBulkLength, 4)});
  expect_stream(limits, head + "$1\r\nk\r\n*1\r\n",
                {too_large(17, 7, "SET"), discarded(7), err(errors::expected_dollar('*'), 1)});
  expect_stream(limits, head + "$-1\r\n",
                {too_large(17, 7, "SET"), err(errors::kInvalidBulkLength, 5)});
  // The data of a discarded bulk is not checked.
  expect_stream(limits, head + "$1\r\nkxx$2\r\nab\r\n" + kNext.frame,
                {too_large(17, 7, "SET"), discarded(15), kNext, leftover(0)});
}

// --- randomized -------------------------------------------------------------------------------

// Random streams of valid, invalid and mutated commands: whole-buffer and randomly chunked
// feeds must agree, and every result must satisfy the invariants checked in drive().
TEST_CASE("resp request: randomized split invariance") {
  const std::vector<std::string> pieces = {
      mb({"GET", "a"}),
      mb({"SET", "k", "v\r\n"}),
      mb({"MSET", "a", "1", "b", "2"}),
      mb({"SET", "k", "123456789"}),
      mb({"MSET", "k", "0123456789abc", "k2", "0123456789abcdef", "x", "y"}),
      mb({""}),
      "*0\r\n",
      "*-1\r\n",
      "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$20\r\n",
      "PING\r\n",
      "set a \"b c\" 'd\\'e' \"\\x41\\n\"\r\n",
      "get \"unbalanced\r\n",
      "\r\n",
      "  \n",
      "*2\r\n$3\r\nGET\r\n:1\r\n",
      "*x\r\n",
      "*2\r\n$-1\r\n",
      "*1\r\n$4\r\nPINGxx",
      std::string(40, 'z'),
      "*7\r\n",
      "*2\r\n$2",
  };
  RequestLimits limits;
  limits.max_bulk_bytes = 8;
  limits.max_args = 6;
  limits.max_inline_bytes = 32;
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
          stream[at] = " \r\n0$*\"'"[rng() % 8];
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
    const std::vector<Event> expected = drive_whole(limits, stream);
    std::vector<std::string_view> chunks;
    size_t pos = 0;
    while (pos < stream.size()) {
      const size_t len = 1 + rng() % 9;
      chunks.push_back(std::string_view(stream).substr(pos, len));
      pos += len;
    }
    REQUIRE(drive_chunks(limits, chunks) == expected);
  }
}

}  // namespace
