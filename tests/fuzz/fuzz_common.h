#pragma once
// Shared helpers for the libFuzzer targets.

#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#define FUZZ_ASSERT(cond)                                                           \
  do {                                                                              \
    if (!(cond)) {                                                                  \
      std::fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                 \
    }                                                                               \
  } while (0)

namespace dproxy_fuzz {

// Delivers `input` to a parser the way a socket would: the first `first` bytes, then the rest in
// pieces of `step` bytes, keeping unconsumed bytes at the front of the buffer.
class Feeder {
 public:
  Feeder(std::string_view input, size_t first, size_t step)
      : input_(input), next_(first == 0 ? 1 : first), step_(step == 0 ? 1 : step) {}

  // Appends the next piece; false when the input is exhausted.
  bool feed() {
    if (pos_ >= input_.size()) return false;
    size_t n = next_ < input_.size() - pos_ ? next_ : input_.size() - pos_;
    next_ = step_;
    buf_.append(input_.substr(pos_, n));
    pos_ += n;
    return true;
  }
  // Drops owed bytes and makes sure the buffer is not empty; false when the input is exhausted.
  bool ready() {
    while (true) {
      if (skip_ > 0 && !buf_.empty()) {
        size_t n = skip_ < buf_.size() ? skip_ : buf_.size();
        buf_.erase(0, n);
        skip_ -= n;
      }
      if (skip_ == 0 && !buf_.empty()) return true;
      if (!feed()) return false;
    }
  }
  std::string_view buffer() const { return buf_; }
  void consume(size_t n, size_t skip) {
    buf_.erase(0, n < buf_.size() ? n : buf_.size());
    skip_ += skip;
  }

 private:
  std::string_view input_;
  size_t next_;
  size_t step_;
  size_t pos_ = 0;
  size_t skip_ = 0;
  std::string buf_;
};

// Runs `drive(input, first, step)` for the whole input, byte-at-a-time and a two-way split
// chosen by the input, and checks the transcripts are equal.
template <typename Drive>
void check_split_invariance(const uint8_t* data, size_t size, Drive drive) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  std::string whole = drive(input, size, size);
  size_t split = size == 0 ? 1 : 1 + data[0] % size;
  FUZZ_ASSERT(drive(input, split, size) == whole);
  if (size <= 4096) FUZZ_ASSERT(drive(input, 1, 1) == whole);
}

}  // namespace dproxy_fuzz
