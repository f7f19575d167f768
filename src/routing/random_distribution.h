#pragma once
// Random distribution: each request goes to a server picked at random, proportionally to
// weight. Like twemproxy's, it ignores the key, so placement cannot be reproduced.

#include <cstdint>
#include <span>
#include <vector>

#include "routing/distribution.h"
#include "routing/server_spec.h"

namespace dproxy::routing {

class RandomDistribution final : public Distribution {
 public:
  explicit RandomDistribution(std::span<const ServerSpec> servers);

  // Ignores `hash`; uses a per-thread generator. 0 when no server has weight.
  uint32_t pick(uint32_t hash) const override;

 private:
  std::vector<uint32_t> slot_end_;
  std::vector<uint32_t> server_index_;
  uint32_t total_weight_ = 0;
};

}  // namespace dproxy::routing
