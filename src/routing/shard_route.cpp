#include "routing/shard_route.h"

namespace dproxy::routing {

ShardRoute::ShardRoute(DistributionKind kind, HashKind hash, std::string hash_tag,
                       std::vector<uint32_t> members, std::span<const ServerSpec> servers)
    : distribution_(kind),
      hash_(hash),
      hash_tag_(std::move(hash_tag)),
      members_(std::move(members)) {
  for (uint32_t m : members_) specs_.push_back(servers[m]);
  rebuild({});
}

void ShardRoute::rebuild(const std::vector<bool>& live) {
  std::vector<ServerSpec> live_specs;
  live_.clear();
  uint64_t weight = 0;
  for (size_t i = 0; i < members_.size(); ++i) {
    if (!live.empty() && !live[members_[i]]) continue;
    live_specs.push_back(specs_[i]);
    live_.push_back(members_[i]);
    weight += specs_[i].weight;
  }
  if (weight == 0) {
    // Nothing live (or only weight 0): keep the full distribution; requests fail fast upstream.
    live_specs = specs_;
    live_ = members_;
  }
  router_ = std::make_unique<ShardRouter>(distribution_, hash_, hash_tag_, live_specs);
}

}  // namespace dproxy::routing
