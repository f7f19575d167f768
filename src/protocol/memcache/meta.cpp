// The memcached meta protocol: flag summary and base64 keys. See meta.h.

#include "protocol/memcache/meta.h"

#include <cstdint>

namespace dproxy::protocol::memcache::meta {
namespace {

constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

// The 6-bit value of a base64 character, or -1.
int sextet(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

}  // namespace

FlagSummary summarize_flags(std::string_view flags) {
  FlagSummary s;
  size_t i = 0;
  while (i < flags.size()) {
    if (flags[i] == ' ') {
      ++i;
      continue;
    }
    const char flag = flags[i];
    ++s.count;
    switch (flag) {
      case 'q':
        s.quiet = true;
        break;
      case 'b':
        s.base64 = true;
        break;
      case 'C':
        s.compare_cas = true;
        break;
      case 'T':
      case 'N':
        s.writes = true;
        break;
      default:
        break;
    }
    while (i < flags.size() && flags[i] != ' ') ++i;
  }
  return s;
}

bool base64_decode(std::string_view in, std::string& out) {
  out.clear();
  if (in.empty() || in.size() % 4 != 0) return false;
  for (size_t i = 0; i < in.size(); i += 4) {
    const bool last = i + 4 == in.size();
    int v[4];
    size_t pad = 0;
    for (size_t j = 0; j < 4; ++j) {
      const char c = in[i + j];
      if (c == '=' && last && j >= 2) {
        v[j] = 0;
        ++pad;
        continue;
      }
      if (pad > 0) return false;  // data after padding
      v[j] = sextet(c);
      if (v[j] < 0) return false;
    }
    const uint32_t word = (static_cast<uint32_t>(v[0]) << 18) |
                          (static_cast<uint32_t>(v[1]) << 12) | (static_cast<uint32_t>(v[2]) << 6) |
                          static_cast<uint32_t>(v[3]);
    out.push_back(static_cast<char>(word >> 16));
    if (pad < 2) out.push_back(static_cast<char>(word >> 8));
    if (pad < 1) out.push_back(static_cast<char>(word));
  }
  return !out.empty();
}

void append_base64(std::string& out, std::string_view in) {
  size_t i = 0;
  for (; i + 3 <= in.size(); i += 3) {
    const uint32_t v = (uint32_t{static_cast<unsigned char>(in[i])} << 16) |
                       (uint32_t{static_cast<unsigned char>(in[i + 1])} << 8) |
                       static_cast<unsigned char>(in[i + 2]);
    out.push_back(kAlphabet[(v >> 18) & 63]);
    out.push_back(kAlphabet[(v >> 12) & 63]);
    out.push_back(kAlphabet[(v >> 6) & 63]);
    out.push_back(kAlphabet[v & 63]);
  }
  const size_t rest = in.size() - i;
  if (rest == 0) return;
  uint32_t v = uint32_t{static_cast<unsigned char>(in[i])} << 16;
  if (rest == 2) v |= uint32_t{static_cast<unsigned char>(in[i + 1])} << 8;
  out.push_back(kAlphabet[(v >> 18) & 63]);
  out.push_back(kAlphabet[(v >> 12) & 63]);
  out.push_back(rest == 2 ? kAlphabet[(v >> 6) & 63] : '=');
  out.push_back('=');
}

}  // namespace dproxy::protocol::memcache::meta
