// Unit tests for read_hint and HandlerMemory on a real loopback socket pair: a read queued after
// mark_drained() still completes when bytes arrive, and operations take no heap memory.

#include "core/read_hint.h"

#include <doctest/doctest.h>

#include <asio.hpp>
#include <string>

#include "core/handler_memory.h"

namespace {

using asio::generic::stream_protocol;
using dproxy::core::HandlerMemory;
using dproxy::core::with_memory;
namespace read_hint = dproxy::core::read_hint;

struct Pair {
  asio::io_context io{1};
  stream_protocol::socket ours{io};
  asio::ip::tcp::socket peer{io};
  asio::executor_work_guard<asio::io_context::executor_type> work{io.get_executor()};

  Pair() {
    asio::ip::tcp::acceptor acceptor(
        io, asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    peer.connect(acceptor.local_endpoint());
    asio::ip::tcp::socket accepted(io);
    acceptor.accept(accepted);
    ours = stream_protocol::socket(io, stream_protocol(AF_INET, IPPROTO_TCP), accepted.release());
  }
  // Runs the loop until `done` or for at most `turns` turns of up to 5 ms.
  void run_until(const bool& done, int turns = 2000) {
    for (int i = 0; i < turns && !done; ++i) io.run_one_for(std::chrono::milliseconds(5));
  }
};

TEST_CASE("a read queued after mark_drained completes when bytes arrive") {
  Pair p;
  char buf[64];
  HandlerMemory memory;
  for (int round = 0; round < 3; ++round) {
    bool done = false;
    size_t got = 0;
    asio::error_code ec;
    p.ours.async_read_some(asio::buffer(buf),
                           with_memory(memory, [&](const asio::error_code& e, size_t n) {
                             ec = e;
                             got = n;
                             done = true;
                           }));
    // Nothing sent yet: the read waits in the reactor (after the first round, without a recv).
    CHECK(read_hint::read_queued(p.ours));
    p.run_until(done, 4);  // nothing to read yet
    CHECK_FALSE(done);
    std::string msg = "hello " + std::to_string(round);
    asio::write(p.peer, asio::buffer(msg));
    p.run_until(done);
    INFO("round " << round);
    REQUIRE(done);
    CHECK_FALSE(ec);
    CHECK(std::string(buf, got) == msg);
    read_hint::mark_drained(p.ours);  // short read from the reactor: drained
  }
  // A write that fits the socket buffer never waits.
  bool written = false;
  asio::async_write(p.ours, asio::buffer("x", 1),
                    with_memory(memory, [&](const asio::error_code&, size_t) { written = true; }));
  CHECK_FALSE(read_hint::write_may_wait(p.ours));
  p.run_until(written);
  CHECK(written);
}

TEST_CASE("HandlerMemory serves one operation at a time and falls back to the heap") {
  HandlerMemory memory;
  void* a = memory.allocate(100, 8);
  void* b = memory.allocate(100, 8);  // in use: heap
  CHECK(a != b);
  void* big = memory.allocate(HandlerMemory::kSize + 1, 8);  // too large: heap
  memory.deallocate(b, 100, 8);
  memory.deallocate(big, HandlerMemory::kSize + 1, 8);
  memory.deallocate(a, 100, 8);
  CHECK(memory.allocate(100, 8) == a);  // free again
  memory.deallocate(a, 100, 8);
}

}  // namespace
