#pragma once
// Memory the merge units reuse from one request to the next.

#include <cstddef>
#include <cstdint>
#include <vector>

#include "protocol/resp/reply_parser.h"

namespace dproxy::protocol {

// Owned by the caller (one per client session) and passed to every merge: the vectors only
// grow, so a steady-state merge allocates nothing. Their contents are meaningless between calls.
struct MergeScratch {
  std::vector<size_t> cursor;              // per fragment: where its next item starts
  std::vector<uint32_t> count;             // per fragment (or element): a tally
  std::vector<resp::ArrayReader> readers;  // per fragment: its array's elements

  // Uninitialized memory of at least `n` bytes, one buffer per thread (it only grows): where a
  // merge in key order copies its output before appending it to the destination in one go.
  // NOTE: valid until the next call on the same thread.
  static char* bytes(size_t n);
};

}  // namespace dproxy::protocol
