#pragma once
// A pool as seen by one worker thread: its routing and its backend connections.

#include <memory>
#include <string>
#include <vector>

#include "core/backend/cluster_runtime.h"
#include "core/backend/server_connection.h"
#include "core/backend/server_health.h"
#include "core/config.h"
#include "routing/fanout_route.h"
#include "routing/replicated_route.h"
#include "routing/route.h"
#include "routing/shard_route.h"

namespace dproxy::core {

class Worker;
struct PoolCounters;
struct PoolSlot;
struct ServerStats;

class PoolRuntime {
 public:
  // `slot` (the worker's, for this pool: counters, TLS contexts) outlives the runtime.
  PoolRuntime(Worker& worker, std::shared_ptr<const PoolConfig> config,
              std::shared_ptr<PoolHealth> health,
              const std::vector<asio::generic::stream_protocol::endpoint>& endpoints,
              PoolSlot& slot);

  const PoolConfig& config() const { return config_; }
  const std::shared_ptr<const PoolConfig>& config_ptr() const { return config_ptr_; }
  // Changes whenever the servers keys and channels map to change without a reload (a server
  // ejected or back, with auto_eject_hosts).
  uint64_t placement_generation() const {
    return config_.auto_eject_hosts ? health_.generation() : 0;
  }
  PoolHealth& health() { return health_; }
  const PoolHealth& health() const { return health_; }
  uint64_t health_ejects() const { return health_.ejects(); }
  // Appends one entry per server (this worker's connections only).
  void server_stats(std::vector<ServerStats>& out) const;
  size_t server_count() const { return servers_.size(); }

  routing::Route::Kind route_kind() const { return route_->kind(); }

  // Sharded pools: index of the server that owns `key`. With auto_eject_hosts, servers marked
  // down are left out of the distribution (rebuilt over the live servers, as twemproxy does)
  // until a probe re-adds them. Allocates only when the set of live servers changed.
  uint32_t server_for(std::string_view key) {
    refresh();
    return shard_->pick(key);
  }
  // Replicated / fanout pools: the children, each a shard route over some of the servers.
  size_t child_count() const { return children_->size(); }
  uint32_t child_server(size_t child, std::string_view key) {
    refresh();
    return (*children_)[child]->pick(key);
  }
  // The servers holding one copy of the data: the first child's (replicated / fanout pools).
  const std::vector<uint32_t>& first_child_servers() const { return (*children_)[0]->members(); }
  const routing::ReplicatedRoute* replicated() const { return replicated_; }
  const routing::FanoutRoute* fanout() const { return fanout_; }
  // redis_cluster pools: the slot map and node connections of this worker; null otherwise.
  ClusterRuntime* cluster() { return cluster_.get(); }
  const ClusterRuntime* cluster() const { return cluster_.get(); }
  // True when server `index` is marked down: requests for it fail at once with down_error().
  bool is_down(uint32_t index) const { return health_.is_down(index); }
  // The complete error reply for a request to a down server (protocol-specific); counted as a
  // forward error.
  std::string_view down_error(uint32_t index);

  // Requests waiting for a backend reply, over all of this pool's connections on this thread.
  size_t pending() const {
    size_t n = cluster_ ? cluster_->pending() : 0;
    for (const auto& conns : servers_)
      for (const auto& c : conns) n += c->pending();
    for (const auto& set : db_sets_)
      for (const auto& conns : set.servers)
        for (const auto& c : conns) n += c->pending();
    return n;
  }

  // Requests in flight or bytes not yet written: the runtime must stay (config reload).
  bool busy() const {
    if (cluster_ && cluster_->busy()) return true;
    for (const auto& conns : servers_)
      for (const auto& c : conns)
        if (c->busy()) return true;
    for (const auto& set : db_sets_)
      for (const auto& conns : set.servers)
        for (const auto& c : conns)
          if (c->busy()) return true;
    return false;
  }

  // A connection to server `index`; spreads callers over server_connections connections.
  // `db` >= 0: a session that selected database `db` (Redis SELECT) other than the pool's.
  // `resp3`: a session that said HELLO 3; its connections said HELLO 3 too (a set of their own).
  ServerConnection& connection(uint32_t index, uint64_t spread, int32_t db = -1,
                               bool resp3 = false) {
    auto& conns = db < 0 && !resp3 ? servers_[index]
                                   : db_servers(db < 0 ? static_cast<uint32_t>(config_.db)
                                                       : static_cast<uint32_t>(db),
                                                resp3)[index];
    return *conns[spread % conns.size()];
  }
  // A new connection of a client's own to server `index` in database `db` (-1: the pool's),
  // speaking RESP3 when `resp3`, reporting to no health (it may outlive this runtime: see
  // session/dedicated.h).
  std::unique_ptr<ServerConnection> make_dedicated(uint32_t index, int32_t db, bool resp3 = false);
  // Sets of connections (one per selected database) made on first use.
  size_t db_sets() const { return db_sets_.size(); }

 private:
  using ServerConnections = std::vector<std::vector<std::unique_ptr<ServerConnection>>>;
  // The connections of every server whose setup selects database `db` (and says HELLO 3 when
  // `resp3`), made on first use.
  ServerConnections& db_servers(uint32_t db, bool resp3);
  // Connections to every server, each sending `setup` (`setup_replies` replies) first.
  ServerConnections make_connections(const std::string& setup, uint32_t setup_replies);
  std::string setup_for(int64_t db, uint32_t& replies, bool resp3 = false) const;

  void refresh() {
    if (config_.auto_eject_hosts && health_.generation() != generation_) rebuild();
  }
  void rebuild();

  std::shared_ptr<const PoolConfig> config_ptr_;
  std::shared_ptr<PoolHealth> health_ptr_;
  const PoolConfig& config_;
  PoolHealth& health_;
  PoolSlot& slot_;
  PoolCounters& counters_;
  uint64_t generation_ = 0;
  std::unique_ptr<routing::Route> route_;
  routing::ShardRoute* shard_ = nullptr;  // route_ when it is a shard route
  const routing::ReplicatedRoute* replicated_ = nullptr;
  const routing::FanoutRoute* fanout_ = nullptr;
  const std::vector<std::unique_ptr<routing::ShardRoute>>* children_ = nullptr;
  std::vector<std::string> down_errors_;
  Worker& worker_;
  std::vector<asio::generic::stream_protocol::endpoint> endpoints_;
  ServerConnections servers_;
  struct DbSet {
    uint32_t db;
    bool resp3;
    ServerConnections servers;
  };
  std::vector<DbSet> db_sets_;
  std::unique_ptr<ClusterRuntime> cluster_;
};

}  // namespace dproxy::core
