#pragma once
// A worker's spare reply buffers: strings whose capacity outlives the reply they carried.

#include <algorithm>
#include <cstddef>
#include <string>
#include <vector>

namespace dproxy::core {

// Client sessions borrow a buffer when a reply has to be stored (the output buffer, or a reply
// held back for ordering) and give it back once it is written. So an idle connection holds no
// reply buffer, and the capacity that replies need is shared by the connections of one worker
// instead of grown again by each of them.
// NOTE: when the pool runs dry it doubles the number of buffers it has handed out, the way a
// vector doubles its capacity: the buffers in use at the busiest moment so far are at most half
// of what exists, so a steady load stops allocating after a warm-up instead of at every new
// peak of concurrent writers. What it keeps is bounded (kMaxKeptBytes); buffers beyond that, and
// buffers grown past kMaxKeptCapacity by a rare huge reply, are freed when given back.
// One pool per worker thread; no locking.
class BufferPool {
 public:
  static constexpr size_t kInitialCapacity = 2048;  // of a new buffer: a pipelined burst fits
  static constexpr size_t kMaxKeptCapacity = 64 << 10;
  static constexpr size_t kMaxKeptBytes = 4 << 20;
  static constexpr size_t kMinGrowth = 8;

  // Makes `s` (empty, no memory of its own) a buffer with at least kInitialCapacity.
  void take(std::string& s) {
    if (free_.empty()) grow();
    s = std::move(free_.back());  // a move, not a swap: far cheaper for std::string
    kept_bytes_ -= s.capacity();
    free_.pop_back();
  }

  // Empties `s` and keeps its memory for the next take(); `s` ends with no memory of its own.
  void give(std::string& s) {
    const size_t cap = s.capacity();
    if (cap >= kInitialCapacity && cap <= kMaxKeptCapacity && kept_bytes_ + cap <= kMaxKeptBytes) {
      s.clear();
      free_.push_back(std::move(s));
      kept_bytes_ += cap;
      s.clear();  // moved-from: empty and without memory in practice; made sure of `empty`
    } else {
      if (cap >= kInitialCapacity && created_ > 0) --created_;
      std::string().swap(s);
    }
  }

  size_t kept() const { return free_.size(); }
  size_t kept_bytes() const { return kept_bytes_; }

 private:
  void grow() {
    size_t n = std::max(kMinGrowth, created_);
    if (n * kInitialCapacity > kMaxKeptBytes) n = 1;  // at the bound: one at a time
    free_.reserve(free_.size() + n);
    for (size_t i = 0; i < n; ++i) {
      free_.emplace_back();
      free_.back().reserve(kInitialCapacity);
      kept_bytes_ += free_.back().capacity();
    }
    created_ += n;
  }

  std::vector<std::string> free_;
  size_t created_ = 0;  // buffers made by grow() and not freed (in use or kept)
  size_t kept_bytes_ = 0;
};

}  // namespace dproxy::core
