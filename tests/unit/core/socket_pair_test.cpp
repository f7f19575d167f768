// Unit tests on a real loopback socket pair: a FIN right behind data is seen, and operations
// take no heap memory (HandlerMemory).

#include <doctest/doctest.h>

#include <asio.hpp>
#include <string>

#include "core/handler_memory.h"

namespace {

using asio::generic::stream_protocol;
using dproxy::core::HandlerMemory;
using dproxy::core::with_memory;

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

TEST_CASE("data followed at once by the peer's FIN: the read after the data sees EOF") {
  // The regression behind removing read_hint: bytes and a FIN that arrive in one reactor wakeup
  // leave no later wakeup for the FIN, so a read that waits for one (a "drained" socket) hung.
  Pair p;
  std::string buf(4096, '\0');
  size_t got = 0;
  bool done = false;
  p.ours.async_read_some(asio::buffer(buf), [&](const asio::error_code& ec, size_t n) {
    CHECK_FALSE(ec);
    got = n;
    done = true;
  });
  asio::write(p.peer, asio::buffer(std::string("hello")));
  p.peer.shutdown(asio::socket_base::shutdown_send);
  p.run_until(done);
  REQUIRE(done);
  CHECK(got == 5);
  bool eof = false;
  p.ours.async_read_some(asio::buffer(buf), [&](const asio::error_code& ec, size_t) {
    CHECK(ec == asio::error::eof);
    eof = true;
  });
  p.run_until(eof);
  CHECK(eof);
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
