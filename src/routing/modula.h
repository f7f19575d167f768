#pragma once
// twemproxy's modula distribution: hash % total_weight over one slot per weight unit.

#include <cstdint>
#include <span>
#include <vector>

#include "routing/distribution.h"
#include "routing/server_spec.h"

namespace dproxy::routing {

class ModulaDistribution final : public Distribution {
 public:
  // `weight` consecutive slots per server, servers taken in twemproxy's internal order (sorted
  // by ketama name, shorter first; see server_order.h), NOT list order. Weight 0 servers get
  // no slots.
  explicit ModulaDistribution(std::span<const ServerSpec> servers);

  // Owner of slot hash % total_weight. 0 when there are no slots.
  uint32_t pick(uint32_t hash) const override;

 private:
  std::vector<uint32_t> slot_end_;      // cumulative weight after each weighted server
  std::vector<uint32_t> server_index_;  // the server index for each entry of slot_end_
  uint32_t total_weight_ = 0;
};

}  // namespace dproxy::routing
