#pragma once
// A pool as seen by one worker thread: its routing and its backend connections.

#include <memory>
#include <vector>

#include "core/config.h"
#include "core/server_connection.h"
#include "routing/shard_router.h"

namespace dproxy::core {

class Worker;

class PoolRuntime {
 public:
  PoolRuntime(Worker& worker, const PoolConfig& config,
              const std::vector<asio::generic::stream_protocol::endpoint>& endpoints);

  const PoolConfig& config() const { return config_; }
  size_t server_count() const { return servers_.size(); }
  uint32_t server_for(std::string_view key) const { return router_.server_for(key); }
  // A connection to server `index`; spreads callers over server_connections connections.
  ServerConnection& connection(uint32_t index, uint64_t spread) {
    auto& conns = servers_[index];
    return *conns[spread % conns.size()];
  }

 private:
  const PoolConfig& config_;
  routing::ShardRouter router_;
  std::vector<std::vector<std::unique_ptr<ServerConnection>>> servers_;
};

}  // namespace dproxy::core
