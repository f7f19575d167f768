#include "core/pool_runtime.h"

#include "core/worker.h"
#include "protocol/resp/reply_writer.h"

namespace dproxy::core {

PoolRuntime::PoolRuntime(Worker& worker, const PoolConfig& config,
                         const std::vector<asio::generic::stream_protocol::endpoint>& endpoints)
    : config_(config), router_(config.policy, config.hash, config.hash_tag, config.servers) {
  const bool redis = config.protocol == Protocol::kRedis;
  std::string setup;
  uint32_t setup_replies = 0;
  if (redis && !config.server_password.empty()) {
    std::string_view auth[] = {"AUTH", config.server_password};
    protocol::resp::append_command(setup, auth);
    ++setup_replies;
  }
  if (redis && config.db != 0) {
    std::string db = std::to_string(config.db);
    std::string_view select[] = {"SELECT", db};
    protocol::resp::append_command(setup, select);
    ++setup_replies;
  }
  servers_.resize(config.servers.size());
  for (size_t i = 0; i < config.servers.size(); ++i) {
    for (uint32_t c = 0; c < config.server_connections; ++c) {
      servers_[i].push_back(
          std::make_unique<ServerConnection>(worker, endpoints[i], config.servers[i].address(),
                                             config.timeout_ms, redis, setup, setup_replies));
    }
  }
}

}  // namespace dproxy::core
