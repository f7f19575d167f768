#pragma once
// A worker thread: one io_context, the sessions accepted onto it and its own backend connections.

#include <algorithm>
#include <asio.hpp>
#include <atomic>
#include <functional>
#include <memory>
#include <thread>
#include <unordered_map>
#include <vector>

#include "core/backend/dedicated_idle.h"
#include "core/buffer_pool.h"
#include "core/config.h"
#include "core/stats.h"

namespace dproxy::core {

class ClientSession;
class PoolHealth;
class PoolRuntime;
class ServerConnection;
struct PoolTls;

// A pool as one worker sees it across config reloads: the pool id is stable for a pool name,
// the runtime (routing + backend connections) is replaced when the pool's config changes.
struct PoolSlot {
  std::string name;
  std::unique_ptr<PoolRuntime> runtime;  // null once a removed pool has drained
  PoolCounters counters;
  bool removed = false;
  // Dedicated backend connections (blocking commands, WATCH) no client holds now.
  DedicatedIdle dedicated_idle;
  // The pool's TLS contexts (null: no TLS on either side): replaced on every reload, read by
  // each new client connection and each backend (re)connection of this worker.
  std::shared_ptr<const PoolTls> tls;
};

using StatsCallback = std::function<void(const StatsSnapshot&, const ProcessInfo&)>;
// Gathers every worker's snapshot (each on its own thread) and calls back on `executor`.
using StatsCollector = std::function<void(asio::any_io_executor executor, StatsCallback done)>;

class Worker {
 public:
  explicit Worker(unsigned index);
  ~Worker();

  asio::io_context& io() { return io_; }
  unsigned index() const { return index_; }
  // The pool with id `id` (must exist on this worker: see install_pool).
  PoolSlot& slot(size_t id) { return *slots_[id]; }

  // Worker thread (or before start()): makes `config` the pool `id`'s configuration. A pool
  // seen before keeps its counters; its old runtime serves no new request and is destroyed
  // once its in-flight requests are answered.
  void install_pool(size_t id, std::shared_ptr<const PoolConfig> config,
                    std::shared_ptr<PoolHealth> health,
                    std::vector<asio::generic::stream_protocol::endpoint> endpoints,
                    std::shared_ptr<const PoolTls> tls);
  // Worker thread: the pool's certificates were reloaded (SIGHUP): new connections use `tls`,
  // established ones keep theirs.
  void set_pool_tls(size_t id, std::shared_ptr<const PoolTls> tls) {
    if (id < slots_.size()) slots_[id]->tls = std::move(tls);
  }
  // Worker thread: the pool is gone from the config: its sessions finish what they have read,
  // get their replies and are closed; the runtime goes once nothing uses it.
  void remove_pool(size_t id);
  // Worker thread: this worker's figures.
  void snapshot(StatsSnapshot& out) const;

  // Set once before start(): how sessions get process-wide figures (memcached stats, INFO).
  void set_stats_collector(StatsCollector collector) { collector_ = std::move(collector); }
  void collect_stats(asio::any_io_executor executor, StatsCallback done) {
    collector_(std::move(executor), std::move(done));
  }

  // The time of the current event-loop step (updated when a read completes): request latency
  // is measured with it, so that a read of many requests costs one clock call.
  std::chrono::steady_clock::time_point now() const { return now_; }
  void tick() { now_ = std::chrono::steady_clock::now(); }

  // Spare reply buffers shared by this worker's sessions (worker thread only).
  BufferPool& reply_buffers() { return reply_buffers_; }

  void start();
  void stop();
  void join();

  // Connections with bytes to send. They are flushed by one handler posted behind everything
  // the event loop has ready now, so the requests of every client served in this loop turn go
  // to each backend in one write.
  void mark_dirty(ServerConnection* c) {
    dirty_.push_back(c);
    if (!flush_posted_) {
      flush_posted_ = true;
      asio::post(io_, [this] {
        flush_posted_ = false;
        flush_dirty();
      });
    }
  }
  void flush_dirty();
  // Closes a backend connection soon (not now: this may run inside one of its callbacks).
  void drop_later(std::unique_ptr<ServerConnection> c);
  // A connection that is going away (with a flush scheduled) is not flushed.
  void forget_dirty(ServerConnection* c) {
    std::erase(dirty_, c);
    std::replace(flushing_.begin(), flushing_.end(), c, static_cast<ServerConnection*>(nullptr));
  }

  // Sessions with Redis subscriber connections (worker thread only) are checked every 500 ms
  // (ClientSession::check_subscriptions) until they have none.
  void watch_subscriber(std::weak_ptr<ClientSession> session);
  // Sessions register while their socket is open (worker thread only).
  void add_session(uint64_t id, std::weak_ptr<ClientSession> session, size_t pool);
  void remove_session(uint64_t id) { sessions_.erase(id); }
  // Graceful shutdown (worker thread): every session stops reading, finishes what it has in
  // flight, writes the replies and closes.
  void begin_drain();
  bool draining() const { return draining_; }
  // Worker thread: no open session and no request waiting for a backend.
  bool idle() const;
  // Worker thread: frees replaced runtimes whose requests are all answered (runs on a timer
  // while there are any).
  void collect_retired();
  // Written by the worker thread when asked, read by the main thread.
  std::atomic<bool> idle_report{false};

 private:
  struct SessionEntry {
    std::weak_ptr<ClientSession> session;
    size_t pool;
  };
  void schedule_collect();
  void check_subscribers();

  unsigned index_;
  // NOTE: declared before io_ so that it outlives it: sessions still referenced by handlers
  // in the io_context's queue update their pool's counters when they are destroyed.
  std::vector<std::unique_ptr<PoolSlot>> slots_;
  BufferPool reply_buffers_;  // outlives io_ too: see BufferPool
  // One thread runs it and only that thread touches its sockets and timers (other threads only
  // post to it): per-descriptor locking off (Listener hands over descriptors, not sockets).
  asio::io_context io_{ASIO_CONCURRENCY_HINT_UNSAFE_IO};
  asio::executor_work_guard<asio::io_context::executor_type> work_;
  std::vector<std::unique_ptr<PoolRuntime>> retired_;
  asio::steady_timer collect_timer_{io_};
  bool collect_scheduled_ = false;
  std::vector<std::weak_ptr<ClientSession>> subscribers_;  // see watch_subscriber()
  asio::steady_timer subscriber_timer_{io_};
  bool subscriber_timer_running_ = false;
  StatsCollector collector_;
  std::chrono::steady_clock::time_point now_ = std::chrono::steady_clock::now();
  std::vector<ServerConnection*> dirty_;
  std::vector<ServerConnection*> flushing_;
  bool flushing_now_ = false;
  bool flush_posted_ = false;
  bool draining_ = false;
  std::unordered_map<uint64_t, SessionEntry> sessions_;
  std::thread thread_;
  // See drop_later(); last, so destroyed first (while io_ and dirty_ still exist).
  std::vector<std::unique_ptr<ServerConnection>> dropped_;
  bool drop_posted_ = false;
};

}  // namespace dproxy::core
