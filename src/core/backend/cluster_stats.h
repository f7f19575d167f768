#pragma once
// Redis Cluster figures of one redis_cluster pool, shared by every worker thread (relaxed
// atomics: each is a counter or a high-water mark, written off the common path).
//
// NOTE for the stats export (JSON / Prometheus): every field is a monotonic counter except
// slot_map_version, a gauge (the highest slot-map version of any worker thread). Read them with
// load(std::memory_order_relaxed); they live in PoolHealth::cluster, one per pool.

#include <atomic>
#include <cstdint>

namespace dproxy::core {

struct ClusterStats {
  std::atomic<uint64_t> slot_map_version{0};  // changes of the slot map seen by a worker
  std::atomic<uint64_t> refreshes{0};         // CLUSTER SLOTS answers applied
  std::atomic<uint64_t> refresh_failures{0};  // refresh rounds where no node answered
  std::atomic<uint64_t> moved{0};             // -MOVED replies followed
  std::atomic<uint64_t> ask{0};               // -ASK replies followed (ASKING + request)
  std::atomic<uint64_t> retries{0};           // TRYAGAIN / CLUSTERDOWN / connect failures retried
  std::atomic<uint64_t> replica_fallbacks{
      0};                            // reads sent back to the master after a replica failed
  std::atomic<uint64_t> gave_up{0};  // requests that ran out of redirects or retries

  void raise_version(uint64_t v) {
    uint64_t cur = slot_map_version.load(std::memory_order_relaxed);
    while (cur < v && !slot_map_version.compare_exchange_weak(cur, v, std::memory_order_relaxed)) {
    }
  }
  static void bump(std::atomic<uint64_t>& counter) {
    counter.fetch_add(1, std::memory_order_relaxed);
  }
};

}  // namespace dproxy::core
