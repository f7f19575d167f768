#pragma once
// ketama / modula / random over a set of servers: the key's hash picks exactly one server.

#include <memory>
#include <span>
#include <string>
#include <vector>

#include "routing/route.h"
#include "routing/shard_router.h"

namespace dproxy::routing {

class ShardRoute : public Route {
 public:
  // `members`: indices into `servers` (the pool's server list) of this node's servers.
  ShardRoute(DistributionKind kind, HashKind hash, std::string hash_tag,
             std::vector<uint32_t> members, std::span<const ServerSpec> servers);
  Kind kind() const override { return Kind::kShard; }
  void rebuild(const std::vector<bool>& live) override;

  // The pool server index that owns `key`. Does not allocate.
  uint32_t pick(std::string_view key) const { return live_[router_->server_for(key)]; }
  const std::vector<uint32_t>& members() const { return members_; }

 private:
  DistributionKind distribution_;
  HashKind hash_;
  std::string hash_tag_;
  std::vector<uint32_t> members_;
  std::vector<ServerSpec> specs_;  // copies of the members' specs, in member order
  std::vector<uint32_t> live_;     // router index -> pool server index
  std::unique_ptr<ShardRouter> router_;
};

}  // namespace dproxy::routing
