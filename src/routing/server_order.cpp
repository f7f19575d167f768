#include "routing/server_order.h"

#include <algorithm>
#include <string>

namespace dproxy::routing {

std::vector<uint32_t> twemproxy_server_order(std::span<const ServerSpec> servers) {
  std::vector<std::string> names;
  names.reserve(servers.size());
  for (const ServerSpec& server : servers) names.push_back(server.ketama_name());

  std::vector<uint32_t> order(servers.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<uint32_t>(i);
  std::stable_sort(order.begin(), order.end(), [&names](uint32_t a, uint32_t b) {
    const std::string& name_a = names[a];
    const std::string& name_b = names[b];
    if (name_a.size() != name_b.size()) return name_a.size() < name_b.size();
    return name_a < name_b;
  });
  return order;
}

}  // namespace dproxy::routing
