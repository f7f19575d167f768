#include "routing/server_spec.h"

#include <algorithm>
#include <vector>

namespace dproxy::routing {

namespace {

// libmemcached's default port: twemproxy leaves it out of the ketama name.
constexpr uint16_t kKetamaDefaultPort = 11211;

bool is_unix_socket(const std::string& host) {
  return !host.empty() && host.front() == '/';
}

}  // namespace

std::string ServerSpec::ketama_name() const {
  if (!name.empty()) return name;
  // twemproxy names an unnamed unix socket server "<path>:" (the port part is empty but the
  // separator is kept).
  if (is_unix_socket(host)) return host + ":";
  if (port == kKetamaDefaultPort) return host;
  return host + ":" + std::to_string(port);
}

std::string ServerSpec::address() const {
  if (is_unix_socket(host)) return host;
  if (host.find(':') != std::string::npos) return "[" + host + "]:" + std::to_string(port);
  return host + ":" + std::to_string(port);
}

std::optional<std::string> duplicate_ketama_name(std::span<const ServerSpec> servers) {
  std::vector<std::string> names;
  names.reserve(servers.size());
  for (const ServerSpec& server : servers) names.push_back(server.ketama_name());
  std::sort(names.begin(), names.end());
  const auto it = std::adjacent_find(names.begin(), names.end());
  if (it == names.end()) return std::nullopt;
  return *it;
}

}  // namespace dproxy::routing
