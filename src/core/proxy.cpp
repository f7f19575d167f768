#include "core/proxy.h"

#include <malloc.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <ctime>

#include "core/backend/prober.h"
#include "core/backend/server_health.h"
#include "core/listener.h"
#include "core/log.h"
#include "core/reachability.h"
#include "core/stats.h"
#include "core/stats_server.h"
#include "core/tls_context.h"
#include "core/tls_memory.h"

namespace dproxy::core {

namespace {

// Resident set size from /proc/self/statm (0 when unreadable).
uint64_t rss_bytes() {
  FILE* f = std::fopen("/proc/self/statm", "r");
  if (f == nullptr) return 0;
  unsigned long size = 0, resident = 0;
  const int n = std::fscanf(f, "%lu %lu", &size, &resident);
  std::fclose(f);
  return n == 2 ? static_cast<uint64_t>(resident) * static_cast<uint64_t>(sysconf(_SC_PAGESIZE))
                : 0;
}

std::string host_name() {
  char buf[256] = {};
  if (gethostname(buf, sizeof buf - 1) != 0) return "unknown";
  return buf;
}

}  // namespace

Proxy::Proxy(Config config, unsigned threads, std::string config_path, ConfigOverrides overrides)
    : config_(std::move(config)),
      threads_(threads),
      config_path_(std::move(config_path)),
      overrides_(std::move(overrides)) {
  overrides_.threads = threads_;
}

Proxy::~Proxy() {
  shutting_down_ = true;  // no handler run below starts new work
  resolve_timer_.cancel();
  resolver_.cancel();
  // NOTE: a pending accept holds a socket of a worker's io_context; let the aborted accepts
  // complete before any worker (and its socket service) is destroyed.
  for (auto& p : pools_) {
    if (p.listener) p.listener->close();
  }
  if (stats_) stats_->close();
  io_.restart();
  io_.poll();
  for (auto& p : pools_) p.listener.reset();
  closed_listeners_.clear();
  stats_.reset();
  closed_stats_.clear();
  for (auto& w : workers_) w->stop();
  for (auto& w : workers_) w->join();
  workers_.clear();
}

size_t Proxy::pool_id(const std::string& name) {
  auto it = ids_.find(name);
  if (it != ids_.end()) return it->second;
  size_t id = clients_.size();
  clients_.push_back(std::make_unique<PoolClients>());
  ids_.emplace(name, id);
  return id;
}

void Proxy::update_prober() {
  std::vector<Prober::Target> targets;
  for (const auto& p : pools_) targets.push_back({p.health, p.endpoints, p.tls});
  prober_->set_targets(std::move(targets));
}

bool Proxy::open_stats(std::string& error, bool log) {
  if (!config_.stats_enabled) return true;
  stats_ = std::make_unique<StatsServer>(io_, [this](asio::any_io_executor ex, StatsCallback done) {
    collect_stats(std::move(ex), std::move(done));
  });
  if (stats_->open(config_.stats_listen, error)) {
    if (log) stats_->log_listening();
    return true;
  }
  stats_.reset();
  if (config_.stats_configured) return false;
  // The default address is taken (another dproxy or nutcracker on this host): serve anyway.
  LOG_WARN("%s; the stats listener is off (set stats.listen to choose another address)",
           error.c_str());
  error.clear();
  return true;
}

bool Proxy::start(std::string& error) {
  std::signal(SIGPIPE, SIG_IGN);
  handle_signals();
  handle_control_signals();
  std::vector<PoolConfig> pools = std::move(config_.pools);
  config_.pools.clear();
  for (auto& pool : pools) {
    ActivePool active;
    if (!resolve(pool, active.endpoints, error)) return false;
    active.id = pool_id(pool.name);
    if (!load_pool_tls(pool, active.tls, error)) return false;
    active.config = std::make_shared<const PoolConfig>(std::move(pool));
    active.health = std::make_shared<PoolHealth>(active.config);
    pools_.push_back(std::move(active));
  }
  prober_ = std::make_unique<Prober>(io_);
  update_prober();
  for (unsigned t = 0; t < threads_; ++t) {
    auto worker = std::make_unique<Worker>(t);
    worker->set_stats_collector([this](asio::any_io_executor ex, StatsCallback done) {
      collect_stats(std::move(ex), std::move(done));
    });
    // Before the thread starts: no other thread touches the worker yet.
    for (const auto& p : pools_) worker->install_pool(p.id, p.config, p.health, p.endpoints, p.tls);
    workers_.push_back(std::move(worker));
  }
  // The stats listener first: once a pool's port accepts connections, /stats and /healthz
  // answer too (a supervisor or test that waits for the pool's port may ask them at once).
  // Unless a pool listens on the default stats port at another address: the pool wins, and the
  // default stats listener stays off with a warning, as before.
  bool stats_first = true;
  for (const auto& p : pools_) {
    if (!config_.stats_configured && !p.config->listen.is_unix &&
        p.config->listen.port == config_.stats_listen.port)
      stats_first = false;
  }
  if (stats_first && !open_stats(error, false)) return false;
  for (auto& p : pools_) {
    p.listener = std::make_unique<Listener>(io_, p.id, p.config, *clients_[p.id], workers_);
    if (!p.listener->open(error)) return false;
  }
  if (!stats_first && !open_stats(error)) return false;
  if (stats_first && stats_) stats_->log_listening();  // dproxy starts: its place in the log
  for (auto& w : workers_) w->start();
  for (auto& p : pools_) p.listener->start();
  prober_->start();
  for (const auto& p : pools_) warn_unreachable_servers(io_, *p.config, p.endpoints);
  arm_memory_trim();
  schedule_resolve();
  LOG_INFO("dproxy " DPROXY_VERSION
           " started: pid %ld, config %s, %zu pool(s), %u worker thread(s)",
           static_cast<long>(::getpid()), config_path_.empty() ? "(none)" : config_path_.c_str(),
           pools_.size(), threads_);
  return true;
}

void Proxy::collect_stats(asio::any_io_executor executor, StatsCallback done) {
  struct Gather {
    std::vector<StatsSnapshot> parts;
    std::atomic<size_t> remaining{0};
    asio::any_io_executor executor;
    StatsCallback done;
    ProcessInfo info;
  };
  static const std::string kHost = host_name();
  auto g = std::make_shared<Gather>();
  g->parts.resize(workers_.size());
  g->remaining.store(workers_.size());
  g->executor = std::move(executor);
  g->done = std::move(done);
  g->info.source = kHost;
  g->info.version = DPROXY_VERSION;
  g->info.uptime_s =
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - started_)
          .count();
  g->info.timestamp_s = static_cast<int64_t>(std::time(nullptr));
  g->info.threads = threads_;
  g->info.reloads = reloads_.load();
  g->info.reload_failures = reload_failures_.load();
  g->info.rss_bytes = rss_bytes();
  const struct mallinfo2 heap = mallinfo2();
  g->info.heap_used_bytes = heap.uordblks;
  g->info.heap_free_bytes = heap.fordblks;
  g->info.memory_trims = memory_trims_.load();
  g->info.tls_bytes = tls_memory_bytes();
  for (size_t i = 0; i < workers_.size(); ++i) {
    Worker* worker = workers_[i].get();
    asio::post(worker->io(), [g, worker, i] {
      worker->snapshot(g->parts[i]);
      if (g->remaining.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
      // The last worker: every part is written (acquire above); merge where the caller waits.
      asio::post(g->executor, [g] {
        StatsSnapshot all;
        for (const auto& part : g->parts) all.merge(part);
        g->done(all, g->info);
      });
    });
  }
}

void Proxy::arm_memory_trim() {
  constexpr auto kTrimEvery = std::chrono::seconds(2);
  constexpr size_t kTrimAboveFreeBytes = 8 << 20;
  trim_timer_.expires_after(kTrimEvery);
  trim_timer_.async_wait([this](const asio::error_code& ec) {
    if (ec || shutting_down_) return;
    // glibc keeps freed memory in its arenas (one per worker thread): after a burst of
    // clients that is most of the RSS. malloc_trim returns it; the data path does not
    // allocate in steady state, so the arena locks it takes are not contended.
    if (mallinfo2().fordblks > kTrimAboveFreeBytes) {
      malloc_trim(0);
      memory_trims_.fetch_add(1);
    }
    arm_memory_trim();
  });
}

void Proxy::wait_for_drain(std::chrono::steady_clock::time_point deadline) {
  bool all_idle = true;
  for (auto& w : workers_) all_idle = all_idle && w->idle_report.load();
  if (all_idle) {
    LOG_INFO("shutdown: every in-flight request answered");
    io_.stop();
    return;
  }
  if (std::chrono::steady_clock::now() >= deadline) {
    LOG_WARN("shutdown: deadline reached with requests still in flight; closing them");
    io_.stop();
    return;
  }
  // Ask each worker (on its own thread) whether it is idle; read the answers next round.
  for (auto& w : workers_) {
    Worker* worker = w.get();
    asio::post(worker->io(), [worker] { worker->idle_report.store(worker->idle()); });
  }
  drain_timer_.expires_after(std::chrono::milliseconds(20));
  drain_timer_.async_wait([this, deadline](const asio::error_code& ec) {
    if (!ec) wait_for_drain(deadline);
  });
}

void Proxy::handle_signals() {
  // Registered before any listener opens: a signal that arrives while dproxy is still starting
  // waits for run() instead of killing the process.
  signals_.add(SIGINT);
  signals_.add(SIGTERM);
  signals_.async_wait([this](const asio::error_code& ec, int signo) {
    if (ec) return;
    shutting_down_ = true;
    LOG_INFO(
        "received %s: shutting down: no new connections, finishing in-flight requests "
        "(up to %u ms)",
        signo == SIGINT ? "SIGINT" : "SIGTERM", config_.shutdown_timeout_ms);
    for (auto& p : pools_) {
      if (p.listener) p.listener->close();
    }
    if (stats_) stats_->close();
    control_signals_.cancel();
    resolve_timer_.cancel();
    resolver_.cancel();
    prober_->stop();
    trim_timer_.cancel();
    for (auto& w : workers_) {
      Worker* worker = w.get();
      asio::post(worker->io(), [worker] { worker->begin_drain(); });
    }
    wait_for_drain(std::chrono::steady_clock::now() +
                   std::chrono::milliseconds(config_.shutdown_timeout_ms));
  });
}

void Proxy::handle_control_signals() {
  if (!control_signals_added_) {
    control_signals_added_ = true;
    control_signals_.add(SIGHUP);
    control_signals_.add(SIGUSR1);
    control_signals_.add(SIGTTIN);
    control_signals_.add(SIGTTOU);
  }
  control_signals_.async_wait([this](const asio::error_code& ec, int signo) {
    if (ec || shutting_down_) return;
    if (signo == SIGHUP) {
      LOG_INFO("received SIGHUP: reloading %s", config_path_.c_str());
      std::string error;
      if (!reload(error))
        LOG_ERROR("reload rejected, the running configuration stays in force: %s", error.c_str());
    } else if (signo == SIGUSR1) {
      std::string error;
      if (reopen_log_file(error)) {
        LOG_INFO("received SIGUSR1: log file reopened");
      } else {
        LOG_ERROR("received SIGUSR1: %s", error.c_str());
      }
    } else {
      // SIGTTIN raises the level (more detail), SIGTTOU lowers it, as twemproxy does.
      int level = static_cast<int>(log_level());
      level = signo == SIGTTIN ? std::min(level + 1, static_cast<int>(LogLevel::kDebug))
                               : std::max(level - 1, static_cast<int>(LogLevel::kError));
      set_log_level(static_cast<LogLevel>(level));
      // Printed whatever the new level: the operator asked for it.
      log_message(LogLevel::kInfo, "received %s: log level is now %s",
                  signo == SIGTTIN ? "SIGTTIN" : "SIGTTOU",
                  log_level_name(static_cast<LogLevel>(level)));
    }
    handle_control_signals();
  });
}

int Proxy::run() {
  io_.run();
  for (auto& w : workers_) w->stop();
  for (auto& w : workers_) w->join();
  LOG_INFO("dproxy stopped");
  return 0;
}

}  // namespace dproxy::core
