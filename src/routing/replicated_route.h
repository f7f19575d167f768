#pragma once
// replicated: writes go to every child, reads to one child with failover to the next.

#include <memory>
#include <vector>

#include "routing/route.h"
#include "routing/shard_route.h"

namespace dproxy::routing {

class ReplicatedRoute : public Route {
 public:
  ReplicatedRoute(std::vector<std::unique_ptr<ShardRoute>> children, AckMode write_ack,
                  ReadMode read, bool failover_on_miss)
      : children_(std::move(children)),
        write_ack_(write_ack),
        read_(read),
        failover_on_miss_(failover_on_miss) {}
  Kind kind() const override { return Kind::kReplicated; }
  void rebuild(const std::vector<bool>& live) override {
    for (auto& c : children_) c->rebuild(live);
  }

  const std::vector<std::unique_ptr<ShardRoute>>& children() const { return children_; }
  AckMode write_ack() const { return write_ack_; }
  bool failover_on_miss() const { return failover_on_miss_; }
  // The child a read tries first. `turn` is a per-client counter for round_robin.
  uint32_t first_read_child(std::string_view key, uint64_t turn) const;

 private:
  std::vector<std::unique_ptr<ShardRoute>> children_;
  AckMode write_ack_;
  ReadMode read_;
  bool failover_on_miss_;
};

}  // namespace dproxy::routing
