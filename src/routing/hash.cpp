#include "routing/hash.h"

#include <array>
#include <cstddef>

#include "routing/md5.h"

// Every function here reproduces twemproxy 0.5.0 (x86-64 build) bit for bit. Where twemproxy
// reads key bytes through a plain `char` (signed on x86-64), a byte >= 0x80 enters the
// computation sign-extended; `signed_byte` reproduces that.

namespace dproxy::routing {

namespace {

struct HashEntry {
  HashKind kind;
  std::string_view name;
};

// Same order as HashKind.
constexpr std::array<HashEntry, 12> kHashes = {{
    {HashKind::kOneAtATime, "one_at_a_time"},
    {HashKind::kMd5, "md5"},
    {HashKind::kCrc16, "crc16"},
    {HashKind::kCrc32, "crc32"},
    {HashKind::kCrc32a, "crc32a"},
    {HashKind::kFnv1_64, "fnv1_64"},
    {HashKind::kFnv1a_64, "fnv1a_64"},
    {HashKind::kFnv1_32, "fnv1_32"},
    {HashKind::kFnv1a_32, "fnv1a_32"},
    {HashKind::kHsieh, "hsieh"},
    {HashKind::kMurmur, "murmur"},
    {HashKind::kJenkins, "jenkins"},
}};

constexpr std::string_view kAllHashNames =
    "one_at_a_time, md5, crc16, crc32, crc32a, fnv1_64, fnv1a_64, fnv1_32, fnv1a_32, hsieh, "
    "murmur, jenkins";

inline uint8_t byte_at(std::string_view key, size_t i) {
  return static_cast<uint8_t>(key[i]);
}

// The byte as a sign-extended 32-bit value, like `(uint32_t)(char)b` on x86-64.
inline uint32_t signed_byte(std::string_view key, size_t i) {
  return static_cast<uint32_t>(static_cast<int32_t>(static_cast<int8_t>(byte_at(key, i))));
}

inline uint32_t load_le32(std::string_view key, size_t i) {
  return static_cast<uint32_t>(byte_at(key, i)) |
         (static_cast<uint32_t>(byte_at(key, i + 1)) << 8) |
         (static_cast<uint32_t>(byte_at(key, i + 2)) << 16) |
         (static_cast<uint32_t>(byte_at(key, i + 3)) << 24);
}

inline uint32_t load_le16(std::string_view key, size_t i) {
  return static_cast<uint32_t>(byte_at(key, i)) | (static_cast<uint32_t>(byte_at(key, i + 1)) << 8);
}

constexpr uint32_t rotl32(uint32_t x, int n) {
  return (x << n) | (x >> (32 - n));
}

// Table for the reflected CRC-32 (polynomial 0xEDB88320), built at compile time.
constexpr std::array<uint32_t, 256> make_crc32_table() {
  std::array<uint32_t, 256> table{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t crc = i;
    for (int bit = 0; bit < 8; ++bit) crc = (crc & 1) ? (crc >> 1) ^ 0xEDB88320u : crc >> 1;
    table[i] = crc;
  }
  return table;
}

// Table for the MSB-first CRC-16 with polynomial 0x1021 (the XMODEM / CCITT table).
constexpr std::array<uint16_t, 256> make_crc16_table() {
  std::array<uint16_t, 256> table{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t crc = i << 8;
    for (int bit = 0; bit < 8; ++bit) crc = (crc & 0x8000) ? (crc << 1) ^ 0x1021u : crc << 1;
    table[i] = static_cast<uint16_t>(crc);
  }
  return table;
}

constexpr std::array<uint32_t, 256> kCrc32Table = make_crc32_table();
constexpr std::array<uint16_t, 256> kCrc16Table = make_crc16_table();

// Bob Jenkins' one-at-a-time hash over sign-extended bytes.
uint32_t hash_one_at_a_time(std::string_view key) {
  uint32_t value = 0;
  for (size_t i = 0; i < key.size(); ++i) {
    value += signed_byte(key, i);
    value += value << 10;
    value ^= value >> 6;
  }
  value += value << 3;
  value ^= value >> 11;
  value += value << 15;
  return value;
}

// First four digest bytes, little endian.
uint32_t hash_md5(std::string_view key) {
  const Md5Digest digest = md5_digest(key);
  return static_cast<uint32_t>(digest[0]) | (static_cast<uint32_t>(digest[1]) << 8) |
         (static_cast<uint32_t>(digest[2]) << 16) | (static_cast<uint32_t>(digest[3]) << 24);
}

// CRC-16/XMODEM table driven, but the register is 32 bits wide and never masked, so the
// result is NOT a 16-bit CRC: bits shifted past bit 15 stay (until they leave bit 31).
uint32_t hash_crc16(std::string_view key) {
  uint32_t crc = 0;
  for (size_t i = 0; i < key.size(); ++i) {
    crc = (crc << 8) ^ kCrc16Table[((crc >> 8) ^ byte_at(key, i)) & 0xff];
  }
  return crc;
}

uint32_t crc32_register(std::string_view key) {
  uint32_t crc = 0xFFFFFFFFu;
  for (size_t i = 0; i < key.size(); ++i) {
    crc = (crc >> 8) ^ kCrc32Table[(crc ^ byte_at(key, i)) & 0xff];
  }
  return ~crc;
}

// libmemcached-compatible "crc32": bits 16..30 of the standard CRC-32 (a 15-bit value).
uint32_t hash_crc32(std::string_view key) {
  return (crc32_register(key) >> 16) & 0x7fff;
}

// The standard CRC-32.
uint32_t hash_crc32a(std::string_view key) {
  return crc32_register(key);
}

constexpr uint64_t kFnv64Offset = 0xcbf29ce484222325ull;
constexpr uint64_t kFnv64Prime = 0x100000001b3ull;
constexpr uint32_t kFnv32Offset = 2166136261u;
constexpr uint32_t kFnv32Prime = 16777619u;

// 64-bit FNV-1 truncated to its low 32 bits; bytes are sign-extended to 64 bits first.
uint32_t hash_fnv1_64(std::string_view key) {
  uint64_t hash = kFnv64Offset;
  for (size_t i = 0; i < key.size(); ++i) {
    hash *= kFnv64Prime;
    hash ^= static_cast<uint64_t>(static_cast<int64_t>(static_cast<int8_t>(byte_at(key, i))));
  }
  return static_cast<uint32_t>(hash);
}

// Not a 64-bit FNV at all: 32-bit FNV-1a arithmetic with the 64-bit constants truncated to
// 32 bits (offset 0x84222325, prime 0x1b3).
uint32_t hash_fnv1a_64(std::string_view key) {
  auto hash = static_cast<uint32_t>(kFnv64Offset);
  for (size_t i = 0; i < key.size(); ++i) {
    hash ^= signed_byte(key, i);
    hash *= static_cast<uint32_t>(kFnv64Prime);
  }
  return hash;
}

uint32_t hash_fnv1_32(std::string_view key) {
  uint32_t hash = kFnv32Offset;
  for (size_t i = 0; i < key.size(); ++i) {
    hash *= kFnv32Prime;
    hash ^= signed_byte(key, i);
  }
  return hash;
}

uint32_t hash_fnv1a_32(std::string_view key) {
  uint32_t hash = kFnv32Offset;
  for (size_t i = 0; i < key.size(); ++i) {
    hash ^= signed_byte(key, i);
    hash *= kFnv32Prime;
  }
  return hash;
}

// Paul Hsieh's SuperFastHash with zero initial value; 0 for the empty key. In the 3-byte
// tail the third byte is sign-extended.
uint32_t hash_hsieh(std::string_view key) {
  if (key.empty()) return 0;
  uint32_t hash = 0;
  size_t pos = 0;
  for (size_t blocks = key.size() / 4; blocks > 0; --blocks, pos += 4) {
    hash += load_le16(key, pos);
    const uint32_t tmp = (load_le16(key, pos + 2) << 11) ^ hash;
    hash = (hash << 16) ^ tmp;
    hash += hash >> 11;
  }
  switch (key.size() & 3) {
    case 3:
      hash += load_le16(key, pos);
      hash ^= hash << 16;
      hash ^= signed_byte(key, pos + 2) << 18;
      hash += hash >> 11;
      break;
    case 2:
      hash += load_le16(key, pos);
      hash ^= hash << 11;
      hash += hash >> 17;
      break;
    case 1:
      hash += byte_at(key, pos);
      hash ^= hash << 10;
      hash += hash >> 1;
      break;
    default:
      break;
  }
  hash ^= hash << 3;
  hash += hash >> 5;
  hash ^= hash << 4;
  hash += hash >> 17;
  hash ^= hash << 25;
  hash += hash >> 6;
  return hash;
}

// MurmurHash2 with seed 0xdeadbeef * length (so the initial value is seed ^ length).
uint32_t hash_murmur(std::string_view key) {
  constexpr uint32_t kM = 0x5bd1e995;
  constexpr int kR = 24;
  const auto length = static_cast<uint32_t>(key.size());
  uint32_t h = (0xdeadbeefu * length) ^ length;
  size_t pos = 0;
  size_t left = key.size();
  for (; left >= 4; left -= 4, pos += 4) {
    uint32_t k = load_le32(key, pos);
    k *= kM;
    k ^= k >> kR;
    k *= kM;
    h *= kM;
    h ^= k;
  }
  switch (left) {
    case 3:
      h ^= static_cast<uint32_t>(byte_at(key, pos + 2)) << 16;
      [[fallthrough]];
    case 2:
      h ^= static_cast<uint32_t>(byte_at(key, pos + 1)) << 8;
      [[fallthrough]];
    case 1:
      h ^= byte_at(key, pos);
      h *= kM;
      break;
    default:
      break;
  }
  h ^= h >> 13;
  h *= kM;
  h ^= h >> 15;
  return h;
}

// lookup3 mix(): x -= z; x ^= rotl(z, r); z += y, rotating through (a, b, c).
inline void jenkins_mix_step(uint32_t& x, uint32_t& y, uint32_t& z, int r) {
  x -= z;
  x ^= rotl32(z, r);
  z += y;
}

inline void jenkins_mix(uint32_t& a, uint32_t& b, uint32_t& c) {
  jenkins_mix_step(a, b, c, 4);
  jenkins_mix_step(b, c, a, 6);
  jenkins_mix_step(c, a, b, 8);
  jenkins_mix_step(a, b, c, 16);
  jenkins_mix_step(b, c, a, 19);
  jenkins_mix_step(c, a, b, 4);
}

// lookup3 final(): x ^= y; x -= rotl(y, r).
inline void jenkins_final_step(uint32_t& x, uint32_t y, int r) {
  x ^= y;
  x -= rotl32(y, r);
}

inline void jenkins_final(uint32_t& a, uint32_t& b, uint32_t& c) {
  jenkins_final_step(c, b, 14);
  jenkins_final_step(a, c, 11);
  jenkins_final_step(b, a, 25);
  jenkins_final_step(c, b, 16);
  jenkins_final_step(a, c, 4);
  jenkins_final_step(b, a, 14);
  jenkins_final_step(c, b, 24);
}

// Jenkins lookup3 "hashlittle" with initval 13: a = b = c = 0xdeadbeef + length + 13.
// Returns c unmixed for the empty key.
uint32_t hash_jenkins(std::string_view key) {
  uint32_t a = 0xdeadbeefu + static_cast<uint32_t>(key.size()) + 13u;
  uint32_t b = a;
  uint32_t c = a;
  size_t pos = 0;
  size_t left = key.size();
  while (left > 12) {
    a += load_le32(key, pos);
    b += load_le32(key, pos + 4);
    c += load_le32(key, pos + 8);
    jenkins_mix(a, b, c);
    left -= 12;
    pos += 12;
  }
  if (left == 0) return c;
  // Last block: up to 12 bytes, zero padded, added little endian into a, b, c.
  uint32_t words[3] = {0, 0, 0};
  for (size_t i = 0; i < left; ++i) {
    words[i / 4] |= static_cast<uint32_t>(byte_at(key, pos + i)) << (8 * (i % 4));
  }
  a += words[0];
  b += words[1];
  c += words[2];
  jenkins_final(a, b, c);
  return c;
}

}  // namespace

std::optional<HashKind> parse_hash_name(std::string_view name) {
  for (const HashEntry& entry : kHashes) {
    if (entry.name == name) return entry.kind;
  }
  return std::nullopt;
}

std::string_view hash_name(HashKind kind) {
  const auto index = static_cast<size_t>(kind);
  return index < kHashes.size() ? kHashes[index].name : std::string_view("unknown");
}

std::string_view all_hash_names() {
  return kAllHashNames;
}

uint32_t hash_key(HashKind kind, std::string_view key) {
  switch (kind) {
    case HashKind::kOneAtATime:
      return hash_one_at_a_time(key);
    case HashKind::kMd5:
      return hash_md5(key);
    case HashKind::kCrc16:
      return hash_crc16(key);
    case HashKind::kCrc32:
      return hash_crc32(key);
    case HashKind::kCrc32a:
      return hash_crc32a(key);
    case HashKind::kFnv1_64:
      return hash_fnv1_64(key);
    case HashKind::kFnv1a_64:
      return hash_fnv1a_64(key);
    case HashKind::kFnv1_32:
      return hash_fnv1_32(key);
    case HashKind::kFnv1a_32:
      return hash_fnv1a_32(key);
    case HashKind::kHsieh:
      return hash_hsieh(key);
    case HashKind::kMurmur:
      return hash_murmur(key);
    case HashKind::kJenkins:
      return hash_jenkins(key);
  }
  return 0;
}

uint32_t placement_hash(HashKind kind, std::string_view key) {
  return key.empty() ? 0 : hash_key(kind, key);
}

std::string_view apply_hash_tag(std::string_view key, std::string_view tag) {
  if (tag.size() < 2) return key;
  const size_t open = key.find(tag[0]);
  if (open == std::string_view::npos) return key;
  const size_t close = key.find(tag[1], open + 1);
  if (close == std::string_view::npos || close == open + 1) return key;
  return key.substr(open + 1, close - open - 1);
}

}  // namespace dproxy::routing
