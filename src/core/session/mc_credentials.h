#pragma once
// The credentials of a memcached pool ("sasl" in the config), checked the same way for SASL
// PLAIN over the binary protocol and for memcached's ASCII authentication.

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace dproxy::core {

// True when `user` is one of `users` and `password` is its password. The password comparison
// does not stop at the first difference (its time says nothing of the password).
inline bool mc_credentials_ok(const std::vector<std::pair<std::string, std::string>>& users,
                              std::string_view user, std::string_view password) {
  bool ok = false;
  for (const auto& [u, p] : users) {
    if (u != user) continue;
    unsigned diff = password.size() == p.size() ? 0u : 1u;
    for (size_t i = 0; i < password.size(); ++i) {
      const char c = p.empty() ? '\0' : p[i % p.size()];
      diff |= static_cast<unsigned>(static_cast<unsigned char>(password[i]) ^
                                    static_cast<unsigned char>(c));
    }
    ok = ok || diff == 0;
  }
  return ok;
}

}  // namespace dproxy::core
