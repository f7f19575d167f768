#include "routing/md5.h"

#include <cstddef>
#include <cstring>

namespace dproxy::routing {

namespace {

// Per-step additive constants: floor(|sin(i + 1)| * 2^32).
constexpr std::array<uint32_t, 64> kSineTable = {
    0xd76aa478, 0xe8c7b756, 0x242070db, 0xc1bdceee, 0xf57c0faf, 0x4787c62a, 0xa8304613, 0xfd469501,
    0x698098d8, 0x8b44f7af, 0xffff5bb1, 0x895cd7be, 0x6b901122, 0xfd987193, 0xa679438e, 0x49b40821,
    0xf61e2562, 0xc040b340, 0x265e5a51, 0xe9b6c7aa, 0xd62f105d, 0x02441453, 0xd8a1e681, 0xe7d3fbc8,
    0x21e1cde6, 0xc33707d6, 0xf4d50d87, 0x455a14ed, 0xa9e3e905, 0xfcefa3f8, 0x676f02d9, 0x8d2a4c8a,
    0xfffa3942, 0x8771f681, 0x6d9d6122, 0xfde5380c, 0xa4beea44, 0x4bdecfa9, 0xf6bb4b60, 0xbebfbc70,
    0x289b7ec6, 0xeaa127fa, 0xd4ef3085, 0x04881d05, 0xd9d4d039, 0xe6db99e5, 0x1fa27cf8, 0xc4ac5665,
    0xf4292244, 0x432aff97, 0xab9423a7, 0xfc93a039, 0x655b59c3, 0x8f0ccc92, 0xffeff47d, 0x85845dd1,
    0x6fa87e4f, 0xfe2ce6e0, 0xa3014314, 0x4e0811a1, 0xf7537e82, 0xbd3af235, 0x2ad7d2bb, 0xeb86d391,
};

// Left-rotation amounts, four per round.
constexpr std::array<uint32_t, 16> kRotations = {7, 12, 17, 22, 5, 9,  14, 20,
                                                 4, 11, 16, 23, 6, 10, 15, 21};

constexpr uint32_t rotl(uint32_t x, uint32_t n) {
  return (x << n) | (x >> (32 - n));
}

struct Md5State {
  uint32_t a = 0x67452301;
  uint32_t b = 0xefcdab89;
  uint32_t c = 0x98badcfe;
  uint32_t d = 0x10325476;
};

// Mixes one 64-byte block into `state`.
void md5_block(Md5State& state, const uint8_t* block) {
  uint32_t words[16];
  for (size_t i = 0; i < 16; ++i) {
    words[i] = static_cast<uint32_t>(block[i * 4]) |
               (static_cast<uint32_t>(block[i * 4 + 1]) << 8) |
               (static_cast<uint32_t>(block[i * 4 + 2]) << 16) |
               (static_cast<uint32_t>(block[i * 4 + 3]) << 24);
  }
  uint32_t a = state.a;
  uint32_t b = state.b;
  uint32_t c = state.c;
  uint32_t d = state.d;
  for (uint32_t step = 0; step < 64; ++step) {
    uint32_t mixed = 0;
    uint32_t word_index = 0;
    const uint32_t round = step / 16;
    if (round == 0) {
      mixed = (b & c) | (~b & d);
      word_index = step;
    } else if (round == 1) {
      mixed = (d & b) | (~d & c);
      word_index = (5 * step + 1) % 16;
    } else if (round == 2) {
      mixed = b ^ c ^ d;
      word_index = (3 * step + 5) % 16;
    } else {
      mixed = c ^ (b | ~d);
      word_index = (7 * step) % 16;
    }
    const uint32_t sum = a + mixed + kSineTable[step] + words[word_index];
    a = d;
    d = c;
    c = b;
    b = b + rotl(sum, kRotations[round * 4 + step % 4]);
  }
  state.a += a;
  state.b += b;
  state.c += c;
  state.d += d;
}

void store_le32(uint8_t* out, uint32_t value) {
  out[0] = static_cast<uint8_t>(value);
  out[1] = static_cast<uint8_t>(value >> 8);
  out[2] = static_cast<uint8_t>(value >> 16);
  out[3] = static_cast<uint8_t>(value >> 24);
}

}  // namespace

Md5Digest md5_digest(std::string_view data) {
  Md5State state;
  const auto* bytes = reinterpret_cast<const uint8_t*>(data.data());
  const size_t size = data.size();

  size_t offset = 0;
  for (; size - offset >= 64; offset += 64) md5_block(state, bytes + offset);

  // Tail: remaining bytes, 0x80, zero padding, then the bit length (little endian) in the
  // last 8 bytes of the final block. Needs two blocks when fewer than 9 bytes are free.
  uint8_t tail[128] = {};
  const size_t remaining = size - offset;
  if (remaining > 0) std::memcpy(tail, bytes + offset, remaining);
  tail[remaining] = 0x80;
  const size_t tail_size = remaining < 56 ? 64 : 128;
  const uint64_t bit_length = static_cast<uint64_t>(size) * 8;
  for (size_t i = 0; i < 8; ++i) {
    tail[tail_size - 8 + i] = static_cast<uint8_t>(bit_length >> (8 * i));
  }
  md5_block(state, tail);
  if (tail_size == 128) md5_block(state, tail + 64);

  Md5Digest digest{};
  store_le32(digest.data(), state.a);
  store_le32(digest.data() + 4, state.b);
  store_le32(digest.data() + 8, state.c);
  store_le32(digest.data() + 12, state.d);
  return digest;
}

}  // namespace dproxy::routing
