#pragma once
// A redis_cluster pool as seen by one worker thread: its slot map, the cluster nodes it has
// connections to (created on demand as the map names them), the slot map refresh, and the
// requests waiting to be retried (TRYAGAIN / CLUSTERDOWN backoff).
//
// Each worker keeps its own map and refreshes it itself (CLUSTER SLOTS on a short-lived
// connection of its own, so a refresh never waits behind, or delays, a data request). Nothing
// here is shared between threads except the counters in ClusterStats: no locks anywhere.

#include <asio.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/backend/cluster_stats.h"
#include "core/backend/server_connection.h"
#include "core/config.h"

namespace dproxy::core {

struct ReplySlot;
struct PoolSlot;
class Worker;

class ClusterRuntime {
 public:
  static constexpr uint32_t kNoNode = UINT32_MAX;

  // `seeds`: the resolved endpoints of the pool's `servers` (config order). `slot`: the worker's
  // view of the pool (its TLS contexts), which outlives the runtime.
  ClusterRuntime(Worker& worker, const PoolConfig& config, ClusterStats& stats,
                 const std::vector<asio::generic::stream_protocol::endpoint>& seeds,
                 PoolSlot& slot);
  ~ClusterRuntime();
  ClusterRuntime(const ClusterRuntime&) = delete;
  ClusterRuntime& operator=(const ClusterRuntime&) = delete;

  // The node to send a request for hash slot `slot` to: the slot's master, or for a read with
  // read_from replica/any one of its replicas (chosen by `spread`). Before the map knows the
  // slot, a seed node (it answers MOVED if the slot lives elsewhere). Never kNoNode.
  uint32_t node_for(uint16_t slot, bool read, uint64_t spread) const;
  // The slot's master (or a seed node while the slot is unknown).
  uint32_t master_for(uint16_t slot, uint64_t spread) const;
  // True when `node` is the master of `slot` in the current map.
  bool is_master_of(uint32_t node, uint16_t slot) const { return slot_master_[slot] == node; }
  // The node at "host:port" (":port" means the host of node `relative_to`), added (without
  // connecting) if new. kNoNode when the address is not an IP address and port.
  uint32_t node_at(std::string_view address, uint32_t relative_to);
  const std::string& address(uint32_t node) const { return nodes_[node]->address; }
  size_t node_count() const { return nodes_.size(); }
  // A connection to `node`, spreading callers over server_connections connections; `resp3`:
  // one of the node's connections for RESP3 clients (their setup says HELLO 3).
  ServerConnection& connection(uint32_t node, uint64_t spread, bool resp3 = false);
  // A new connection of a client's own to `node` (see session/dedicated.h).
  std::unique_ptr<ServerConnection> make_dedicated(uint32_t node, bool resp3 = false);
  // The masters of the current map, in address order (the seeds before a map is known).
  const std::vector<uint32_t>& masters() const { return masters_; }
  uint64_t version() const { return version_; }
  // Scratch for splitting multi-key requests by slot, shared by this worker's sessions (used
  // within one call): one entry per hash slot, every entry -1 between uses.
  std::vector<int32_t>& slot_scratch() { return slot_scratch_; }

  // A -MOVED: `slot` lives on `node` now. Updates the map at once and asks for a refresh.
  void moved(uint16_t slot, uint32_t node);
  // Refreshes the slot map soon (at most one refresh in flight; at most one every 100 ms).
  void request_refresh();
  // Calls session->cluster_retry(slot, frag) after `delay`.
  void retry_later(std::shared_ptr<ReplySink> session, ReplySlot* slot, uint16_t frag,
                   std::chrono::milliseconds delay);

  // Requests waiting for a reply on the node connections or for a retry.
  size_t pending() const;
  // Buffer memory of the node connections (memory stats).
  size_t buffer_bytes() const;
  // Requests in flight, bytes not yet written, or retries waiting (config reload: the runtime
  // must stay).
  bool busy() const;
  ClusterStats& stats() { return stats_; }

 private:
  struct Node {
    std::string address;  // "host:port"
    std::string host;
    asio::generic::stream_protocol::endpoint endpoint;
    std::vector<std::unique_ptr<ServerConnection>> conns;   // created on first use
    std::vector<std::unique_ptr<ServerConnection>> conns3;  // RESP3 clients': the same
    std::vector<uint32_t> replicas;                         // when this node is a master
  };
  struct Retry {
    std::shared_ptr<ReplySink> session;
    ReplySlot* slot;
    uint16_t frag;
    std::chrono::steady_clock::time_point due;
  };

  uint32_t add_node(std::string address, std::string host,
                    asio::generic::stream_protocol::endpoint endpoint);
  void start_refresh();
  // Asks candidate `i` of this refresh round; the next one when it fails.
  void query(size_t i);
  // Installs the ranges of a CLUSTER SLOTS reply from node `from`; false when it is unusable.
  bool apply(std::string_view reply, uint32_t from);
  void arm_periodic();
  void arm_retry_timer();
  void on_retry_timer();

  Worker& worker_;
  PoolSlot& slot_;
  const PoolConfig& config_;
  ClusterStats& stats_;
  std::string setup_;  // AUTH / READONLY on every node connection
  uint32_t setup_replies_ = 0;
  std::string setup3_;  // the same with HELLO 3 (connections of RESP3 clients)
  uint32_t setup3_replies_ = 0;
  std::string query_;  // AUTH + CLUSTER SLOTS
  uint32_t query_replies_ = 0;
  std::vector<std::unique_ptr<Node>> nodes_;
  std::vector<uint32_t> seeds_;
  std::vector<uint32_t> slot_master_;  // kClusterSlots entries: node index or kNoNode
  std::vector<uint32_t> masters_;
  std::vector<int32_t> slot_scratch_;
  uint64_t version_ = 0;
  // Refresh state.
  bool refreshing_ = false;
  bool refresh_again_ = false;
  uint64_t refresh_round_ = 0;
  std::vector<uint32_t> candidates_;
  std::vector<std::pair<uint16_t, uint32_t>> moves_during_refresh_;
  std::chrono::steady_clock::time_point next_refresh_allowed_{};
  asio::steady_timer periodic_timer_;
  asio::steady_timer delay_timer_;
  bool delay_armed_ = false;
  // Retries (TRYAGAIN / CLUSTERDOWN / connect failures), due in any order.
  std::vector<Retry> retries_;
  std::vector<Retry> due_scratch_;
  asio::steady_timer retry_timer_;
  std::chrono::steady_clock::time_point retry_timer_at_{};
  bool retry_armed_ = false;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace dproxy::core
