#pragma once
// A pool as seen by one worker thread: its routing and its backend connections.

#include <memory>
#include <string>
#include <vector>

#include "core/config.h"
#include "core/server_connection.h"
#include "core/server_health.h"
#include "routing/shard_router.h"

namespace dproxy::core {

class Worker;

class PoolRuntime {
 public:
  PoolRuntime(Worker& worker, const PoolConfig& config, PoolHealth& health,
              const std::vector<asio::generic::stream_protocol::endpoint>& endpoints);

  const PoolConfig& config() const { return config_; }
  PoolHealth& health() { return health_; }
  size_t server_count() const { return servers_.size(); }

  // Index of the server that owns `key`. With auto_eject_hosts, servers marked down are left out
  // of the distribution (rebuilt over the live servers, as twemproxy does) until a probe
  // re-adds them. Allocates only when the set of live servers changed.
  uint32_t server_for(std::string_view key) {
    if (config_.auto_eject_hosts && health_.generation() != generation_) rebuild();
    return live_[router_->server_for(key)];
  }
  // True when server `index` is marked down: requests for it fail at once with down_error().
  bool is_down(uint32_t index) const { return health_.is_down(index); }
  // The complete error reply for a request to a down server (protocol-specific).
  std::string_view down_error(uint32_t index) const { return down_errors_[index]; }

  // Requests waiting for a backend reply, over all of this pool's connections on this thread.
  size_t pending() const {
    size_t n = 0;
    for (const auto& conns : servers_)
      for (const auto& c : conns) n += c->pending();
    return n;
  }

  // A connection to server `index`; spreads callers over server_connections connections.
  ServerConnection& connection(uint32_t index, uint64_t spread) {
    auto& conns = servers_[index];
    return *conns[spread % conns.size()];
  }

 private:
  void rebuild();

  const PoolConfig& config_;
  PoolHealth& health_;
  uint64_t generation_ = 0;
  std::unique_ptr<routing::ShardRouter> router_;
  std::vector<uint32_t> live_;  // router index -> server index
  std::vector<std::string> down_errors_;
  std::vector<std::vector<std::unique_ptr<ServerConnection>>> servers_;
};

}  // namespace dproxy::core
