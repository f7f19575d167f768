#pragma once
// Key -> server index for a sharded pool: hash tag, hash function, distribution.

#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "routing/distribution.h"
#include "routing/hash.h"
#include "routing/server_spec.h"

namespace dproxy::routing {

class ShardRouter {
 public:
  ShardRouter(DistributionKind kind, HashKind hash, std::string hash_tag,
              std::span<const ServerSpec> servers)
      : hash_(hash),
        hash_tag_(std::move(hash_tag)),
        distribution_(make_distribution(kind, servers)) {}

  // Index (into the server list given at construction) of the server that owns `key`.
  // Does not allocate.
  uint32_t server_for(std::string_view key) const {
    return distribution_->pick(placement_hash(hash_, apply_hash_tag(key, hash_tag_)));
  }

 private:
  HashKind hash_;
  std::string hash_tag_;
  std::unique_ptr<Distribution> distribution_;
};

}  // namespace dproxy::routing
