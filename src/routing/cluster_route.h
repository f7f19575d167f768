#pragma once
// The redis_cluster policy: keys go where the Redis Cluster's slot map says. The map is
// discovered at run time (core/cluster_runtime.h), so this route only marks the pool; slots are
// computed by key_slot() (routing/cluster_slots.h).

#include "routing/route.h"

namespace dproxy::routing {

class ClusterRoute : public Route {
 public:
  Kind kind() const override { return Kind::kCluster; }
  void rebuild(const std::vector<bool>&) override {}  // the cluster decides placement
};

}  // namespace dproxy::routing
