#pragma once
// Health of a pool's servers, shared by every worker thread. Written only when a server's state
// changes or a failure is counted; read with one relaxed load per routed request.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string_view>

#include "core/backend/cluster_stats.h"
#include "core/config.h"

namespace dproxy::core {

struct ServerHealth {
  std::atomic<uint32_t> failures{0};  // consecutive failures (refused, reset, timeout)
  std::atomic<bool> down{false};
  std::atomic<int64_t> retry_at_ms{0};  // steady-clock ms when the next probe is due
  std::atomic<bool> probing{false};
  std::atomic<int64_t> ejected_at_us{0};  // unix time it was last marked down (stats)
  // Redis: the server's version (major << 16 | minor << 8 | patch) as its INFO said on the last
  // connect; 0 until known.
  std::atomic<uint32_t> redis_version{0};
};

// A pool's open client connections over every thread (client_connections limit). One per pool
// name for the life of the process: config reloads keep it.
struct PoolClients {
  std::atomic<uint32_t> count{0};
  // Dedicated backend connections clients hold now (blocking commands, WATCH), every thread.
  std::atomic<uint32_t> dedicated{0};
};

class PoolHealth {
 public:
  explicit PoolHealth(std::shared_ptr<const PoolConfig> config)
      : config_(std::move(config)),
        servers_(std::make_unique<ServerHealth[]>(config_->servers.size())) {}

  const PoolConfig& config() const { return *config_; }
  ServerHealth& server(size_t i) { return servers_[i]; }
  const ServerHealth& server(size_t i) const { return servers_[i]; }
  size_t size() const { return config_->servers.size(); }
  // Bumped whenever a server goes down or comes back; workers rebuild their routing on change.
  uint64_t generation() const { return generation_.load(std::memory_order_acquire); }
  bool is_down(size_t i) const { return servers_[i].down.load(std::memory_order_relaxed); }

  // One failure event of server i (a refused/reset connection, a timeout). Marks the server
  // down at server_failure_limit consecutive failures, and logs that.
  void record_failure(size_t i, std::string_view why);
  // A reply arrived from server i: the consecutive failure count starts again.
  void record_success(size_t i) {
    if (servers_[i].failures.load(std::memory_order_relaxed) != 0)
      servers_[i].failures.store(0, std::memory_order_relaxed);
  }
  // A probe of server i answered: it is up again.
  void mark_up(size_t i);
  // A probe of server i failed: try again after server_retry_timeout_ms.
  void probe_failed(size_t i, std::string_view why);

  // Redis: the lowest version any server reported (0: none known yet).
  uint32_t lowest_redis_version() const {
    uint32_t lowest = 0;
    for (size_t i = 0; i < size(); ++i) {
      const uint32_t v = servers_[i].redis_version.load(std::memory_order_relaxed);
      if (v != 0 && (lowest == 0 || v < lowest)) lowest = v;
    }
    return lowest;
  }
  // Times a server of this pool was marked down (stats: server_ejects).
  uint64_t ejects() const { return ejects_.load(std::memory_order_relaxed); }
  // TLS handshakes of the pool's short-lived connections (health probes on the main thread,
  // redis_cluster slot map queries on the workers): counted in server_tls_handshakes /
  // server_tls_handshake_failures.
  void count_oneshot_handshake(bool ok) {
    (ok ? oneshot_handshakes_ : oneshot_handshake_failures_)
        .fetch_add(1, std::memory_order_relaxed);
  }
  uint64_t oneshot_handshakes() const {
    return oneshot_handshakes_.load(std::memory_order_relaxed);
  }
  uint64_t oneshot_handshake_failures() const {
    return oneshot_handshake_failures_.load(std::memory_order_relaxed);
  }
  // redis_cluster pools: the cluster figures (INFO; see cluster_stats.h).
  ClusterStats cluster;

  static int64_t now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }

 private:
  std::shared_ptr<const PoolConfig> config_;
  std::unique_ptr<ServerHealth[]> servers_;
  std::atomic<uint64_t> ejects_{0};
  std::atomic<uint64_t> oneshot_handshakes_{0};
  std::atomic<uint64_t> oneshot_handshake_failures_{0};
  std::atomic<uint64_t> generation_{0};
};

}  // namespace dproxy::core
