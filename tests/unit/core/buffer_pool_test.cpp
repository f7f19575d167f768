#include "core/buffer_pool.h"

#include <doctest/doctest.h>

#include <string>
#include <vector>

using dproxy::core::BufferPool;

TEST_CASE("BufferPool: a taken buffer has room, a given one keeps its memory for the next take") {
  BufferPool pool;
  std::string s;
  pool.take(s);
  CHECK(s.empty());
  CHECK(s.capacity() >= BufferPool::kInitialCapacity);
  s.append(3000, 'x');  // grows past the initial capacity
  const char* memory = s.data();
  const size_t cap = s.capacity();
  const size_t kept_before = pool.kept();
  pool.give(s);
  CHECK(s.empty());
  CHECK(s.capacity() < BufferPool::kInitialCapacity);  // no memory of its own any more
  CHECK(pool.kept() == kept_before + 1);
  std::string t;
  pool.take(t);  // the most recently given buffer comes back first
  CHECK(t.data() == memory);
  CHECK(t.capacity() == cap);
  CHECK(t.empty());
}

TEST_CASE("BufferPool: growth doubles what exists, so a steady number of users stops growing") {
  BufferPool pool;
  std::vector<std::string> in_use(BufferPool::kMinGrowth + 1);
  for (auto& s : in_use) pool.take(s);
  // kMinGrowth made first, then as many again: the pool holds the rest.
  CHECK(pool.kept() == BufferPool::kMinGrowth - 1);
  for (auto& s : in_use) pool.give(s);
  CHECK(pool.kept() == 2 * BufferPool::kMinGrowth);
  // The same number of users again: every buffer comes from the pool.
  for (auto& s : in_use) pool.take(s);
  CHECK(pool.kept() == BufferPool::kMinGrowth - 1);
  for (auto& s : in_use) pool.give(s);
}

TEST_CASE("BufferPool: small, huge and excess buffers are freed, not kept") {
  BufferPool pool;
  std::string small(100, 'a');  // never came from the pool and too small to be worth keeping
  pool.give(small);
  CHECK(pool.kept() == 0);
  CHECK(small.empty());

  std::string huge;
  pool.take(huge);
  const size_t kept = pool.kept();
  huge.append(BufferPool::kMaxKeptCapacity + 1, 'h');
  pool.give(huge);
  CHECK(pool.kept() == kept);  // freed
  CHECK(huge.capacity() < BufferPool::kInitialCapacity);

  // More bytes than kMaxKeptBytes given back: the pool stops keeping at its bound.
  const size_t n = BufferPool::kMaxKeptBytes / BufferPool::kMaxKeptCapacity + 4;
  std::vector<std::string> big(n);
  for (auto& s : big) s.reserve(BufferPool::kMaxKeptCapacity);
  for (auto& s : big) pool.give(s);
  CHECK(pool.kept() < kept + n);
  CHECK(pool.kept() >= kept + n - 8);
}
