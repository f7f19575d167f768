#include "core/pool_runtime.h"

#include "core/log.h"
#include "core/worker.h"
#include "protocol/resp/reply_writer.h"

namespace dproxy::core {

PoolRuntime::PoolRuntime(Worker& worker, const PoolConfig& config, PoolHealth& health,
                         const std::vector<asio::generic::stream_protocol::endpoint>& endpoints)
    : config_(config), health_(health) {
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
  for (uint32_t i = 0; i < config.servers.size(); ++i) {
    const std::string address = config.servers[i].address();
    down_errors_.push_back((redis ? "-ERR dproxy: backend " : "SERVER_ERROR backend ") + address +
                           " is down (marked after " + std::to_string(config.server_failure_limit) +
                           " consecutive failures; dproxy probes it every " +
                           std::to_string(config.server_retry_timeout_ms) + " ms)\r\n");
    for (uint32_t c = 0; c < config.server_connections; ++c) {
      servers_[i].push_back(std::make_unique<ServerConnection>(
          worker, endpoints[i], address, config, health, i, setup, setup_replies));
    }
  }
  rebuild();
}

void PoolRuntime::rebuild() {
  generation_ = health_.generation();
  std::vector<routing::ServerSpec> live_specs;
  live_.clear();
  uint64_t live_weight = 0;
  for (uint32_t i = 0; i < config_.servers.size(); ++i) {
    if (config_.auto_eject_hosts && health_.is_down(i)) continue;
    live_specs.push_back(config_.servers[i]);
    live_.push_back(i);
    live_weight += config_.servers[i].weight;
  }
  if (live_weight == 0) {
    live_specs.clear();
    live_.clear();
    // Every server is down: keep the full distribution; requests fail fast with down_error().
    for (uint32_t i = 0; i < config_.servers.size(); ++i) {
      live_specs.push_back(config_.servers[i]);
      live_.push_back(i);
    }
  }
  router_ = std::make_unique<routing::ShardRouter>(config_.policy, config_.hash, config_.hash_tag,
                                                   live_specs);
}

}  // namespace dproxy::core
