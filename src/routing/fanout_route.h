#pragma once
// fanout: every request goes to every child; `reply` picks what the client gets.

#include <memory>
#include <vector>

#include "routing/route.h"
#include "routing/shard_route.h"

namespace dproxy::routing {

class FanoutRoute : public Route {
 public:
  FanoutRoute(std::vector<std::unique_ptr<ShardRoute>> children, AckMode reply)
      : children_(std::move(children)), reply_(reply) {}
  Kind kind() const override { return Kind::kFanout; }
  void rebuild(const std::vector<bool>& live) override {
    for (auto& c : children_) c->rebuild(live);
  }

  const std::vector<std::unique_ptr<ShardRoute>>& children() const { return children_; }
  AckMode reply() const { return reply_; }

 private:
  std::vector<std::unique_ptr<ShardRoute>> children_;
  AckMode reply_;
};

}  // namespace dproxy::routing
