#include "core/pool_runtime.h"

#include "core/worker.h"

namespace dproxy::core {

PoolRuntime::PoolRuntime(Worker& worker, const PoolConfig& config,
                         const std::vector<asio::generic::stream_protocol::endpoint>& endpoints)
    : config_(config), router_(config.policy, config.hash, config.hash_tag, config.servers) {
  servers_.resize(config.servers.size());
  for (size_t i = 0; i < config.servers.size(); ++i) {
    for (uint32_t c = 0; c < config.server_connections; ++c) {
      servers_[i].push_back(std::make_unique<ServerConnection>(
          worker, endpoints[i], config.servers[i].address(), config.timeout_ms));
    }
  }
}

}  // namespace dproxy::core
