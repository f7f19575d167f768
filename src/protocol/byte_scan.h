#pragma once
// Word-at-a-time byte searches for the hot tokenizing loops (keys in memcached request lines and
// VALUE lines), eight bytes per step instead of one.

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace dproxy::protocol::byte_scan {

inline constexpr uint64_t kOnes = 0x0101010101010101ull;
inline constexpr uint64_t kHighs = 0x8080808080808080ull;

// High bit set in each byte of `w` that is zero. Only the lowest flagged byte is exact (a borrow
// can flag bytes above it), which is all the searches below use.
inline uint64_t zero_bytes(uint64_t w) {
  return (w - kOnes) & ~w & kHighs;
}

// High bit set in each byte of `w` below `n` (n <= 128); the lowest flagged byte is exact.
inline uint64_t bytes_below(uint64_t w, uint8_t n) {
  return (w - kOnes * n) & ~w & kHighs;
}

inline uint64_t load8(const char* p) {
  uint64_t w;
  std::memcpy(&w, p, 8);
  return w;
}

// Offset (in bytes) of the lowest flagged byte of a non-zero mask. Little-endian only.
inline const char* first_flagged(const char* p, uint64_t mask) {
  return p + (__builtin_ctzll(mask) >> 3);
}

// The first byte in [p, end) that is ' ' or '\n', or `end`.
inline const char* find_space_or_lf(const char* p, const char* end) {
  static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "byte_scan assumes little-endian");
  while (end - p >= 8) {
    const uint64_t w = load8(p);
    const uint64_t m = zero_bytes(w ^ (kOnes * ' ')) | zero_bytes(w ^ (kOnes * '\n'));
    if (m != 0) return first_flagged(p, m);
    p += 8;
  }
  while (p < end && *p != ' ' && *p != '\n') ++p;
  return p;
}

// The first byte in [p, end) that is a space, a control character (below 0x20) or DEL (0x7f),
// or `end`.
inline const char* find_space_or_control(const char* p, const char* end) {
  while (end - p >= 8) {
    const uint64_t w = load8(p);
    const uint64_t m = bytes_below(w, 0x21) | zero_bytes(w ^ (kOnes * 0x7f));
    if (m != 0) return first_flagged(p, m);
    p += 8;
  }
  while (p < end) {
    const auto b = static_cast<unsigned char>(*p);
    if (b <= 0x20 || b == 0x7f) break;
    ++p;
  }
  return p;
}

// Whether the n bytes at a and b are equal: two overlapping word compares for 8 to 16 bytes
// (keys such as "key:00012345"), memcmp otherwise.
inline bool equal(const char* a, const char* b, size_t n) {
  if (n >= 8 && n <= 16) {
    return ((load8(a) ^ load8(b)) | (load8(a + n - 8) ^ load8(b + n - 8))) == 0;
  }
  return std::memcmp(a, b, n) == 0;
}

}  // namespace dproxy::protocol::byte_scan
