#include "protocol/merge_scratch.h"

#include <algorithm>
#include <memory>

namespace dproxy::protocol {

char* MergeScratch::bytes(size_t n) {
  thread_local std::unique_ptr<char[]> buf;
  thread_local size_t cap = 0;
  if (cap < n) {
    cap = std::max(n, cap * 2);
    buf.reset(new char[cap]);
  }
  return buf.get();
}

}  // namespace dproxy::protocol
