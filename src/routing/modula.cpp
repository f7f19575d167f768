#include "routing/modula.h"

#include <algorithm>

#include "routing/server_order.h"

namespace dproxy::routing {

ModulaDistribution::ModulaDistribution(std::span<const ServerSpec> servers) {
  for (const uint32_t index : twemproxy_server_order(servers)) {
    if (servers[index].weight == 0) continue;
    total_weight_ += servers[index].weight;
    slot_end_.push_back(total_weight_);
    server_index_.push_back(index);
  }
}

uint32_t ModulaDistribution::pick(uint32_t hash) const {
  if (total_weight_ == 0) return 0;
  const uint32_t slot = hash % total_weight_;
  // First server whose slot range ends after `slot`.
  const auto it = std::upper_bound(slot_end_.begin(), slot_end_.end(), slot);
  return server_index_[static_cast<size_t>(it - slot_end_.begin())];
}

}  // namespace dproxy::routing
