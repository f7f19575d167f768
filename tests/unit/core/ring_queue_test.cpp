#include "core/ring_queue.h"

#include <doctest/doctest.h>

#include <string>

using dproxy::core::RingQueue;

TEST_CASE("RingQueue: FIFO order survives wrap-around, growth and reserve") {
  RingQueue<std::string> q;
  int next_in = 0, next_out = 0;
  // Interleave pushes and pops so the head wraps, then grow while wrapped.
  for (int round = 0; round < 50; ++round) {
    for (int i = 0; i < 7; ++i) q.push_back(std::to_string(next_in++));
    for (int i = 0; i < 5; ++i) CHECK(q.pop_front() == std::to_string(next_out++));
  }
  CHECK(q.size() == static_cast<size_t>(next_in - next_out));
  q.reserve(1000);  // regrows while holding elements that wrap around
  CHECK(q.size() == static_cast<size_t>(next_in - next_out));
  CHECK(q.front() == std::to_string(next_out));
  CHECK(q.back() == std::to_string(next_in - 1));
  for (size_t i = 0; i < q.size(); ++i)
    CHECK(q[i] == std::to_string(next_out + static_cast<int>(i)));
  while (!q.empty()) CHECK(q.pop_front() == std::to_string(next_out++));
  CHECK(next_out == next_in);
}
