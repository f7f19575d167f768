#include "routing/random_distribution.h"

#include <algorithm>
#include <chrono>
#include <functional>
#include <thread>

namespace dproxy::routing {

namespace {

// splitmix64: small, fast, and good enough for spreading load.
uint64_t next_random() {
  thread_local uint64_t state =
      static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count()) ^
      (static_cast<uint64_t>(std::hash<std::thread::id>{}(std::this_thread::get_id())) << 1);
  state += 0x9e3779b97f4a7c15ull;
  uint64_t z = state;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

}  // namespace

RandomDistribution::RandomDistribution(std::span<const ServerSpec> servers) {
  for (size_t index = 0; index < servers.size(); ++index) {
    if (servers[index].weight == 0) continue;
    total_weight_ += servers[index].weight;
    slot_end_.push_back(total_weight_);
    server_index_.push_back(static_cast<uint32_t>(index));
  }
}

uint32_t RandomDistribution::pick(uint32_t /*hash*/) const {
  if (total_weight_ == 0) return 0;
  // 64-bit random value reduced by multiply-shift: bias is below 2^-32.
  const auto slot = static_cast<uint32_t>(((next_random() >> 32) * total_weight_) >> 32);
  const auto it = std::upper_bound(slot_end_.begin(), slot_end_.end(), slot);
  return server_index_[static_cast<size_t>(it - slot_end_.begin())];
}

}  // namespace dproxy::routing
