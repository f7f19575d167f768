// Shared layout of the dpmalloc counter file: written by libdpmalloc.so (LD_PRELOADed into the
// process under test), read and controlled by dpmallocctl from another process through the same
// file mapped MAP_SHARED. Only lock-free atomics and plain data, so both sides agree on the bytes.
#pragma once

#include <atomic>
#include <cstdint>

namespace dpmalloc {

constexpr uint64_t kMagic = 0x6470'6d61'6c6c'6f63ull;  // "dpmalloc"
constexpr int kFrames = 24;
constexpr int kStacks = 4096;

struct Stack {
  std::atomic<uint64_t> count;
  uint64_t bytes;
  uint64_t hash;
  uint32_t depth;
  uint32_t pad;
  uint64_t frames[kFrames];
};

struct Control {
  uint64_t magic;
  uint64_t pid;
  std::atomic<uint64_t> mallocs;  // malloc (operator new lands here)
  std::atomic<uint64_t> callocs;
  std::atomic<uint64_t> reallocs;
  std::atomic<uint64_t> memaligns;  // posix_memalign, aligned_alloc, memalign, valloc, pvalloc
  std::atomic<uint64_t> frees;      // free of a non-null pointer
  std::atomic<uint64_t> bytes;      // requested bytes of all the allocations above
  // Backtrace sampling, switched on and off by dpmallocctl.
  std::atomic<uint32_t> bt_enabled;
  uint32_t bt_every;  // record one allocation out of this many (>= 1)
  std::atomic<uint64_t> bt_seen;
  std::atomic<uint64_t> bt_recorded;
  std::atomic<uint64_t> bt_dropped;  // table full
  std::atomic<uint32_t> lock;
  uint32_t nstacks;
  Stack stacks[kStacks];
};

static_assert(std::atomic<uint64_t>::is_always_lock_free);
static_assert(std::atomic<uint32_t>::is_always_lock_free);

}  // namespace dpmalloc
