#include "core/backend/pool_runtime.h"

#include <cstdlib>

#include "core/backend/backend_setup.h"
#include "core/log.h"
#include "core/stats.h"
#include "core/worker.h"

namespace dproxy::core {

PoolRuntime::PoolRuntime(Worker& worker, std::shared_ptr<const PoolConfig> config_ptr,
                         std::shared_ptr<PoolHealth> health_ptr,
                         const std::vector<asio::generic::stream_protocol::endpoint>& endpoints,
                         PoolSlot& slot)
    : config_ptr_(std::move(config_ptr)),
      health_ptr_(std::move(health_ptr)),
      config_(*config_ptr_),
      health_(*health_ptr_),
      slot_(slot),
      counters_(slot.counters),
      worker_(worker),
      endpoints_(endpoints) {
  const PoolConfig& config = config_;
  PoolHealth& health = health_;
  const bool redis = config.protocol == Protocol::kRedis;
  for (uint32_t i = 0; i < config.servers.size(); ++i) {
    const std::string address = config.servers[i].address();
    down_errors_.push_back((redis ? "-ERR dproxy: backend " : "SERVER_ERROR backend ") + address +
                           " is down (marked after " + std::to_string(config.server_failure_limit) +
                           " consecutive failures; dproxy probes it every " +
                           std::to_string(config.server_retry_timeout_ms) + " ms)\r\n");
  }
  uint32_t setup_replies = 0;
  const std::string setup = setup_for(config.db, setup_replies);
  servers_ = make_connections(setup, setup_replies);
  if (config.preconnect) {
    for (auto& conns : servers_)
      for (auto& c : conns) c->preconnect();
  }
  std::string error;
  route_ = routing::make_route(config.route, config.servers, error);
  if (!route_) {
    // The config loader validated the tree; this cannot happen with a loaded config.
    LOG_ERROR("pool %s: %s", config.name.c_str(), error.c_str());
    std::abort();
  }
  switch (route_->kind()) {
    case routing::Route::Kind::kShard:
      shard_ = static_cast<routing::ShardRoute*>(route_.get());
      break;
    case routing::Route::Kind::kReplicated:
      replicated_ = static_cast<const routing::ReplicatedRoute*>(route_.get());
      children_ = &replicated_->children();
      break;
    case routing::Route::Kind::kFanout:
      fanout_ = static_cast<const routing::FanoutRoute*>(route_.get());
      children_ = &fanout_->children();
      break;
    case routing::Route::Kind::kCluster:
      cluster_ = std::make_unique<ClusterRuntime>(worker, config, health.cluster, endpoints, slot);
      break;
  }
  rebuild();
}

std::string PoolRuntime::setup_for(int64_t db, uint32_t& replies, bool resp3) const {
  return backend_setup(config_, db, replies, resp3);
}

PoolRuntime::ServerConnections PoolRuntime::make_connections(const std::string& setup,
                                                             uint32_t setup_replies) {
  ServerConnections servers(config_.servers.size());
  for (uint32_t i = 0; i < config_.servers.size(); ++i) {
    const std::string address = config_.servers[i].address();
    for (uint32_t c = 0; c < config_.server_connections; ++c) {
      servers[i].push_back(std::make_unique<ServerConnection>(
          worker_, endpoints_[i], address, config_, &health_, i, setup, setup_replies, &slot_));
    }
  }
  return servers;
}

std::unique_ptr<ServerConnection> PoolRuntime::make_dedicated(uint32_t index, int32_t db,
                                                              bool resp3) {
  uint32_t setup_replies = 0;
  const std::string setup = setup_for(db < 0 ? config_.db : db, setup_replies, resp3);
  return std::make_unique<ServerConnection>(worker_, endpoints_[index],
                                            config_.servers[index].address(), config_, nullptr,
                                            index, setup, setup_replies, &slot_);
}

PoolRuntime::ServerConnections& PoolRuntime::db_servers(uint32_t db, bool resp3) {
  for (auto& set : db_sets_) {
    if (set.db == db && set.resp3 == resp3) return set.servers;
  }
  // A database selected by a client (SELECT was checked by a server first, so the setup's
  // SELECT succeeds like the pool's own), or the connections of RESP3 clients.
  uint32_t setup_replies = 0;
  const std::string setup = setup_for(db, setup_replies, resp3);
  db_sets_.push_back(DbSet{db, resp3, make_connections(setup, setup_replies)});
  return db_sets_.back().servers;
}

std::string_view PoolRuntime::down_error(uint32_t index) {
  ++counters_.forward_error;
  return down_errors_[index];
}

void PoolRuntime::server_stats(std::vector<ServerStats>& out) const {
  for (uint32_t i = 0; i < servers_.size(); ++i) {
    const auto& spec = config_.servers[i];
    ServerStats& s = out.emplace_back();
    s.name = spec.name.empty() ? spec.address() : spec.name;
    s.address = spec.address();
    s.up = !health_.is_down(i);
    s.ejected_at_us = health_.server(i).ejected_at_us.load(std::memory_order_relaxed);
    for (const auto& c : servers_[i]) c->add_stats(s);
    for (const auto& set : db_sets_)
      for (const auto& c : set.servers[i]) c->add_stats(s);
  }
}

void PoolRuntime::rebuild() {
  generation_ = health_.generation();
  std::vector<bool> live(config_.servers.size(), true);
  if (config_.auto_eject_hosts) {
    for (uint32_t i = 0; i < live.size(); ++i) live[i] = !health_.is_down(i);
  }
  route_->rebuild(live);
}

}  // namespace dproxy::core
