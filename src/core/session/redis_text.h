#pragma once
// Small text rules the Redis front end shares between its files.

#include <string>
#include <string_view>

namespace dproxy::core::redis_text {

// ASCII case-insensitive equality (command options, section names).
inline bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

// Appends client bytes to a one-line error as Redis does: CR and LF become spaces, so the
// error can never be mistaken for more than one reply.
inline void append_one_line(std::string& out, std::string_view bytes) {
  for (char c : bytes) out.push_back(c == '\r' || c == '\n' ? ' ' : c);
}

// Redis's rule for CLIENT SETNAME / HELLO SETNAME: printable ASCII without spaces.
inline bool valid_client_name(std::string_view name) {
  for (char c : name) {
    if (c < '!' || c > '~') return false;
  }
  return true;
}

}  // namespace dproxy::core::redis_text
