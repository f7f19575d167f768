#include "core/worker.h"

#include "core/backend/pool_runtime.h"
#include "core/backend/server_connection.h"
#include "core/backend/server_health.h"
#include "core/client_session.h"
#include "core/log.h"
#include "protocol/memcache/command.h"
#include "protocol/resp/command_table.h"

namespace dproxy::core {

namespace {
constexpr std::chrono::milliseconds kCollectEvery{100};
}  // namespace

Worker::Worker(unsigned index) : index_(index), work_(asio::make_work_guard(io_)) {}

void Worker::install_pool(size_t id, std::shared_ptr<const PoolConfig> config,
                          std::shared_ptr<PoolHealth> health,
                          std::vector<asio::generic::stream_protocol::endpoint> endpoints,
                          std::shared_ptr<const PoolTls> tls) {
  while (slots_.size() <= id) slots_.push_back(std::make_unique<PoolSlot>());
  PoolSlot& slot = *slots_[id];
  slot.name = config->name;
  slot.removed = false;
  slot.tls = std::move(tls);
  auto runtime =
      std::make_unique<PoolRuntime>(*this, std::move(config), std::move(health), endpoints, slot);
  if (slot.runtime) {
    slot.dedicated_idle.renew();
    retired_.push_back(std::move(slot.runtime));
    schedule_collect();
  }
  slot.runtime = std::move(runtime);
}

void Worker::remove_pool(size_t id) {
  if (id >= slots_.size() || !slots_[id]->runtime) return;
  slots_[id]->removed = true;
  std::vector<std::shared_ptr<ClientSession>> live;
  for (auto& [sid, entry] : sessions_) {
    if (entry.pool != id) continue;
    if (auto s = entry.session.lock()) live.push_back(std::move(s));
  }
  for (auto& s : live) s->begin_drain();
  schedule_collect();
}

void Worker::watch_subscriber(std::weak_ptr<ClientSession> session) {
  subscribers_.push_back(std::move(session));
  if (subscriber_timer_running_) return;
  subscriber_timer_running_ = true;
  subscriber_timer_.expires_after(std::chrono::milliseconds(500));
  subscriber_timer_.async_wait([this](const asio::error_code& ec) {
    subscriber_timer_running_ = false;
    if (!ec) check_subscribers();
  });
}

void Worker::check_subscribers() {
  std::vector<std::weak_ptr<ClientSession>> list;
  list.swap(subscribers_);
  for (auto& weak : list) {
    std::shared_ptr<ClientSession> s = weak.lock();
    // Still listening where its channels live: checked again (which restarts the timer).
    if (s && s->check_subscriptions()) watch_subscriber(std::move(weak));
  }
}

void Worker::schedule_collect() {
  if (collect_scheduled_) return;
  collect_scheduled_ = true;
  collect_timer_.expires_after(kCollectEvery);
  collect_timer_.async_wait([this](const asio::error_code& ec) {
    collect_scheduled_ = false;
    if (!ec) collect_retired();
  });
}

void Worker::collect_retired() {
  bool waiting = false;
  for (auto it = retired_.begin(); it != retired_.end();) {
    if ((*it)->busy()) {
      waiting = true;
      ++it;
    } else {
      it = retired_.erase(it);
    }
  }
  for (size_t id = 0; id < slots_.size(); ++id) {
    PoolSlot& slot = *slots_[id];
    if (!slot.removed || !slot.runtime) continue;
    bool has_sessions = false;
    for (const auto& [sid, entry] : sessions_) has_sessions = has_sessions || entry.pool == id;
    if (has_sessions || slot.runtime->busy()) {
      waiting = true;
    } else {
      LOG_DEBUG("worker %u: pool %s drained", index_, slot.name.c_str());
      slot.runtime.reset();
    }
  }
  if (waiting) schedule_collect();
}

void Worker::snapshot(StatsSnapshot& out) const {
  out.memory.buffer_pool_bytes += reply_buffers_.kept_bytes();
  for (const auto& [sid, entry] : sessions_) {
    if (auto s = entry.session.lock()) s->add_memory(out.memory);
  }
  for (const auto& slot_ptr : slots_) {
    const PoolSlot& slot = *slot_ptr;
    if (slot.removed || !slot.runtime) continue;
    const PoolRuntime& rt = *slot.runtime;
    const PoolConfig& config = rt.config();
    PoolStats& p = out.pools.emplace_back();
    p.name = config.name;
    p.protocol = config.protocol == Protocol::kRedis ? "redis" : "memcached";
    p.listen = config.listen.to_string();
    const PoolCounters& c = slot.counters;
    p.client_eof = c.client_eof;
    p.client_err = c.client_err;
    p.client_connections = c.client_connections;
    p.total_client_connections = c.total_client_connections;
    p.forward_error = c.forward_error;
    p.fragments = c.fragments;
    p.requests = c.requests;
    p.dedicated_connections = c.dedicated_held;
    p.dedicated_idle = slot.dedicated_idle.size();
    p.dedicated_opened = c.dedicated_opened;
    p.tls = config.tls.enabled;
    p.server_tls = config.server_tls.enabled;
    p.tls_handshakes = c.tls_handshakes;
    p.tls_handshake_failures = c.tls_handshake_failures;
    p.tls_connections = c.tls_connections;
    p.server_tls_handshakes = c.server_tls_handshakes;
    p.server_tls_handshake_failures = c.server_tls_handshake_failures;
    p.server_tls_connections = c.server_tls_connections;
    if (index_ == 0) {
      // The pool's probes and slot map queries, counted once for the process (shared health).
      p.server_tls_handshakes += rt.health().oneshot_handshakes();
      p.server_tls_handshake_failures += rt.health().oneshot_handshake_failures();
    }
    p.server_ejects = rt.health_ejects();
    if (config.route.policy == "redis_cluster") {
      const ClusterStats& cs = slot.runtime->health().cluster;
      p.cluster = true;
      // In kClusterFigures order.
      const std::atomic<uint64_t>* figures[] = {
          &cs.slot_map_version, &cs.refreshes,         &cs.refresh_failures, &cs.moved, &cs.ask,
          &cs.retries,          &cs.replica_fallbacks, &cs.gave_up};
      static_assert(std::size(figures) == kClusterFigures.size());
      for (size_t i = 0; i < p.cluster_figures.size(); ++i)
        p.cluster_figures[i] = figures[i]->load(std::memory_order_relaxed);
    }
    rt.server_stats(p.servers);
    for (const auto& s : p.servers) {
      p.forward_error += s.counters.forward_errors;
      out.memory.backend_buffer_bytes += s.buffer_bytes;
    }
    // Connections outside the pool's shared sets: cluster nodes, idle dedicated connections
    // (held ones and subscriber connections are counted with their client sessions).
    if (const ClusterRuntime* cluster = rt.cluster()) {
      out.memory.backend_buffer_bytes += cluster->buffer_bytes();
    }
    out.memory.backend_buffer_bytes += slot.dedicated_idle.buffer_bytes();
    for (size_t cmd = 0; cmd < c.latency.size(); ++cmd) {
      if (!c.latency[cmd] || c.latency[cmd]->count == 0) continue;
      std::string name;
      if (config.protocol == Protocol::kRedis) {
        auto commands = protocol::resp::all_commands();
        if (cmd < commands.size()) name = commands[cmd].name;
      } else {
        name = protocol::memcache::command_name(static_cast<protocol::memcache::Command>(cmd));
      }
      if (name.empty()) continue;
      p.latency.push_back(CommandLatency{std::move(name), *c.latency[cmd]});
    }
    std::sort(
        p.latency.begin(), p.latency.end(),
        [](const CommandLatency& a, const CommandLatency& b) { return a.command < b.command; });
  }
}

void Worker::add_session(uint64_t id, std::weak_ptr<ClientSession> session, size_t pool) {
  sessions_.emplace(id, SessionEntry{std::move(session), pool});
  if (draining_ || slots_[pool]->removed) {
    if (auto s = sessions_[id].session.lock()) s->begin_drain();
  }
}

void Worker::begin_drain() {
  draining_ = true;
  // Copy first: draining a session may close it, which removes it from the map.
  std::vector<std::shared_ptr<ClientSession>> live;
  for (auto& [id, entry] : sessions_) {
    if (auto s = entry.session.lock()) live.push_back(std::move(s));
  }
  for (auto& s : live) s->begin_drain();
}

bool Worker::idle() const {
  if (!sessions_.empty()) return false;
  for (const auto& slot : slots_) {
    if (slot->runtime && slot->runtime->pending() > 0) return false;
  }
  for (const auto& rt : retired_) {
    if (rt->pending() > 0) return false;
  }
  return true;
}

Worker::~Worker() {
  stop();
  join();
  // Sessions still open give back the backend connections of their own (whose pending records
  // hold them), then backend connections go first: their pending records hold sessions.
  std::vector<std::shared_ptr<ClientSession>> open;
  for (auto& [id, entry] : sessions_) {
    if (auto s = entry.session.lock()) open.push_back(std::move(s));
  }
  for (auto& s : open) s->close_now();
  open.clear();
  dropped_.clear();
  for (auto& slot : slots_) slot->dedicated_idle.clear();
  retired_.clear();
  for (auto& slot : slots_) slot->runtime.reset();
}

void Worker::start() {
  thread_ = std::thread([this] {
    io_.run();
    LOG_DEBUG("worker %u stopped", index_);
  });
}

void Worker::stop() {
  work_.reset();
  io_.stop();
}

void Worker::join() {
  if (thread_.joinable()) thread_.join();
}

void Worker::drop_later(std::unique_ptr<ServerConnection> c) {
  dropped_.push_back(std::move(c));
  if (drop_posted_) return;
  drop_posted_ = true;
  asio::post(io_, [this] {
    drop_posted_ = false;
    // Destroying may release sessions that drop more: take the list first.
    auto dropped = std::move(dropped_);
    dropped_.clear();
  });
}

void Worker::flush_dirty() {
  // NOTE: flushing can fail requests, which can make sessions queue more work (and call back
  // in here): the outermost call loops until nothing is dirty; nested calls return at once.
  if (flushing_now_) return;
  flushing_now_ = true;
  while (!dirty_.empty()) {
    flushing_.swap(dirty_);
    for (ServerConnection* c : flushing_)
      if (c != nullptr) c->flush();
    flushing_.clear();
  }
  flushing_now_ = false;
}

}  // namespace dproxy::core
