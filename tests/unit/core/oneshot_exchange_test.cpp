// Unit tests for OneshotExchange against a scripted peer on a real loopback socket.

#include "core/backend/oneshot_exchange.h"

#include <doctest/doctest.h>

#include <asio.hpp>
#include <string>
#include <thread>
#include <vector>

namespace {

using dproxy::core::OneshotExchange;
using dproxy::core::Protocol;
using Outcome = OneshotExchange::Outcome;
using namespace std::chrono_literals;

struct Result {
  int calls = 0;
  Outcome outcome = Outcome::kFailed;
  std::string text;
  std::string received;  // what the peer read: the request
  bool peer_saw_close = false;
};

// The peer: accepts one connection, reads the request, writes `chunks` 5 ms apart (none: it
// never answers), then closes when `close_after`.
struct Peer {
  explicit Peer(asio::io_context& io)
      : acceptor(io, {asio::ip::make_address("127.0.0.1"), 0}), socket(io), pause(io) {}

  asio::ip::tcp::acceptor acceptor;
  asio::ip::tcp::socket socket;
  asio::steady_timer pause;
  std::vector<std::string> chunks;
  bool close_after = false;
  std::string request;

  void start(size_t request_size) {
    request.resize(request_size);
    acceptor.async_accept(socket, [this](const asio::error_code& ec) {
      REQUIRE(!ec);
      asio::async_read(socket, asio::buffer(request), [this](const asio::error_code& err, size_t) {
        REQUIRE(!err);
        write(0);
      });
    });
  }
  void write(size_t i) {
    if (i == chunks.size()) {
      if (close_after) socket.close();
      return;
    }
    asio::async_write(socket, asio::buffer(chunks[i]),
                      [this, i](const asio::error_code& ec, size_t) {
                        REQUIRE(!ec);
                        pause.expires_after(5ms);
                        pause.async_wait([this, i](const asio::error_code&) { write(i + 1); });
                      });
  }
};

Result exchange(Protocol protocol, const std::string& request, uint32_t replies,
                std::vector<std::string> chunks, bool close_after = false,
                std::chrono::milliseconds limit = 5s, size_t max_bytes = 1 << 20) {
  asio::io_context io{1};
  Peer peer(io);
  peer.chunks = std::move(chunks);
  peer.close_after = close_after;
  peer.start(request.size());
  Result result;
  std::make_shared<OneshotExchange>(io, peer.acceptor.local_endpoint(), request, replies, protocol,
                                    limit, max_bytes, OneshotExchange::Tls{},
                                    [&result](Outcome outcome, std::string_view text) {
                                      ++result.calls;
                                      result.outcome = outcome;
                                      result.text = text;
                                    })
      ->run();
  CHECK(result.calls == 0);  // never within run()
  for (int i = 0; i < 2000 && result.calls == 0; ++i) io.run_one_for(5ms);
  REQUIRE(result.calls == 1);
  // The exchange has closed its end: the peer reads end of file.
  if (peer.socket.is_open()) {
    peer.socket.non_blocking(true);
    asio::error_code ec = asio::error::would_block;
    char sink[256];
    for (int i = 0; i < 1000 && (!ec || ec == asio::error::would_block); ++i) {
      if (ec) std::this_thread::sleep_for(1ms);
      ec = {};
      peer.socket.read_some(asio::buffer(sink), ec);
    }
    result.peer_saw_close = ec == asio::error::eof || ec == asio::error::connection_reset;
  }
  io.run_for(20ms);  // whatever is still pending (timer, peer) must not call `done` again
  CHECK(result.calls == 1);
  result.received = peer.request;
  return result;
}

const std::string kAuthPing = "*2\r\n$4\r\nAUTH\r\n$2\r\npw\r\n*1\r\n$4\r\nPING\r\n";

TEST_CASE("N replies: the last one is handed over whole, however it arrives") {
  const std::string request = kAuthPing + "*1\r\n$4\r\nPING\r\n";
  Result r = exchange(Protocol::kRedis, request, 3,
                      {"+OK\r\n+O", "K\r\n*2\r\n$3\r", "\nfoo\r\n:1", "\r\n"});
  CHECK(r.received == request);
  CHECK(r.outcome == Outcome::kReply);
  CHECK(r.text == "*2\r\n$3\r\nfoo\r\n:1\r\n");
  CHECK(r.peer_saw_close);

  r = exchange(Protocol::kMemcached, "version\r\n", 1, {"VERSION 1.6", ".21\r\n"});
  CHECK(r.received == "version\r\n");
  CHECK(r.outcome == Outcome::kReply);
  CHECK(r.text == "VERSION 1.6.21\r\n");
}

TEST_CASE("the last reply is handed over even when it is an error reply") {
  Result r = exchange(Protocol::kRedis, kAuthPing, 2, {"+OK\r\n-ERR nope\r\n"});
  CHECK(r.outcome == Outcome::kReply);
  CHECK(r.text == "-ERR nope\r\n");

  r = exchange(Protocol::kMemcached, "version\r\n", 1, {"SERVER_ERROR busy\r\n"});
  CHECK(r.outcome == Outcome::kReply);
  CHECK(r.text == "SERVER_ERROR busy\r\n");
}

TEST_CASE("an error reply before the last fails the exchange with that reply") {
  Result r = exchange(Protocol::kRedis, kAuthPing, 2, {"-WRONGPASS invalid\r\n+PONG\r\n"});
  CHECK(r.outcome == Outcome::kErrorReply);
  CHECK(r.text == "-WRONGPASS invalid\r\n");
  CHECK(r.peer_saw_close);
}

TEST_CASE("a malformed reply fails the exchange with up to 80 bytes from its start") {
  Result r = exchange(Protocol::kRedis, kAuthPing, 2, {"+OK\r\n?what\r\n"});
  CHECK(r.outcome == Outcome::kMalformed);
  CHECK(r.text == "?what\r\n");

  r = exchange(Protocol::kRedis, kAuthPing, 2, {"+OK\r\n" + std::string(300, '?')});
  CHECK(r.outcome == Outcome::kMalformed);
  CHECK(r.text == std::string(80, '?'));

  // memcached: only VERSION ... or an error line answers `version`.
  r = exchange(Protocol::kMemcached, "version\r\n", 1, {"STORED\r\n"});
  CHECK(r.outcome == Outcome::kMalformed);
  CHECK(r.text == "STORED\r\n");
}

TEST_CASE("a peer that never answers fails the exchange at the time limit") {
  Result r = exchange(Protocol::kRedis, kAuthPing, 2, {"+OK\r\n"}, false, 50ms);
  CHECK(r.outcome == Outcome::kFailed);
  CHECK(r.text == "no answer in time");
  CHECK(r.peer_saw_close);
}

TEST_CASE("a peer that closes early fails the exchange") {
  Result r = exchange(Protocol::kRedis, kAuthPing, 2, {"+OK\r\n+PO"}, true);
  CHECK(r.outcome == Outcome::kFailed);
  CHECK(r.text == "read failed: End of file");
}

TEST_CASE("connection refused fails the exchange") {
  asio::io_context io{1};
  asio::generic::stream_protocol::endpoint closed;
  {
    asio::ip::tcp::acceptor acceptor(io, {asio::ip::make_address("127.0.0.1"), 0});
    closed = acceptor.local_endpoint();
  }
  Result r;
  std::make_shared<OneshotExchange>(io, closed, kAuthPing, 2, Protocol::kRedis, 5s, 1 << 20,
                                    OneshotExchange::Tls{},
                                    [&r](Outcome outcome, std::string_view text) {
                                      ++r.calls;
                                      r.outcome = outcome;
                                      r.text = text;
                                    })
      ->run();
  io.run_for(5s);  // returns once nothing is pending: the timer is cancelled
  CHECK(r.calls == 1);
  CHECK(r.outcome == Outcome::kFailed);
  CHECK(r.text == "connect failed: Connection refused");
}

TEST_CASE("a reply larger than the maximum fails the exchange") {
  const std::string big = "$100000\r\n" + std::string(3000, 'x');
  Result r = exchange(Protocol::kRedis, kAuthPing, 2, {"+OK\r\n" + big}, false, 5s, 1000);
  CHECK(r.outcome == Outcome::kFailed);
  CHECK(r.text == "reply too large");
  CHECK(r.peer_saw_close);

  // The same reply within the maximum is read whole.
  r = exchange(Protocol::kRedis, kAuthPing, 2, {"+OK\r\n$4000\r\n", std::string(4000, 'x'), "\r\n"},
               false, 5s, 5000);
  CHECK(r.outcome == Outcome::kReply);
  CHECK(r.text == "$4000\r\n" + std::string(4000, 'x') + "\r\n");
}

}  // namespace
