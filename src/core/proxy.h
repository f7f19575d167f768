#pragma once
// The whole running proxy: worker threads, listeners, the stats listener, signal handling and
// config reload.

#include <asio.hpp>
#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/config.h"
#include "core/worker.h"

namespace dproxy::core {

class Listener;
class PoolHealth;
class Prober;
class StatsServer;
struct PoolTls;
struct PoolClients;

class Proxy {
 public:
  // `config_path` is re-read on SIGHUP.
  // `overrides` (command-line settings) are applied to every reloaded config as well.
  Proxy(Config config, unsigned threads, std::string config_path = {},
        ConfigOverrides overrides = {});
  ~Proxy();
  // Resolves backends, binds every listener, starts the workers. False + error on failure.
  bool start(std::string& error);
  // Serves until SIGINT/SIGTERM. Returns the process exit code.
  int run();

  // Re-reads the config file and applies it (main thread; SIGHUP). An invalid file, or one
  // that cannot be applied (an address that cannot be bound, a pool changing protocol), is
  // rejected as a whole with one logged error; the running config stays. True when applied.
  bool reload(std::string& error);

  // Gathers every worker's figures (each on its own thread) and calls `done` on `executor`.
  void collect_stats(asio::any_io_executor executor, StatsCallback done);

 private:
  // A pool as currently configured.
  struct ActivePool {
    size_t id = 0;
    std::shared_ptr<const PoolConfig> config;
    std::shared_ptr<PoolHealth> health;
    std::vector<asio::generic::stream_protocol::endpoint> endpoints;
    std::unique_ptr<Listener> listener;
    std::shared_ptr<const PoolTls> tls;  // loaded at start and on every reload
  };

  // reload()'s phases (proxy_reload.cpp).
  struct ReloadPlan;
  ActivePool* current_pool(const std::string& name);
  bool stage_pools(ReloadPlan& plan, std::string& error);
  bool open_new_listeners(ReloadPlan& plan, std::string& error);
  void install_staged(ReloadPlan& plan);
  void swap_listeners(ReloadPlan& plan);
  void apply_top_level(const Config& next);

  // Graceful shutdown: waits (polling the workers) until none has work left or the deadline.
  void wait_for_drain(std::chrono::steady_clock::time_point deadline);
  // Every kTrimEvery: when the allocator holds more than kTrimAboveFreeBytes of freed memory
  // (after a burst: clients gone, buffers released), asks it to give that memory back.
  void arm_memory_trim();
  void handle_signals();
  void handle_control_signals();
  // Resolves the servers of `pool` (blocking, main thread). False + error naming the server.
  // With `keep`, a server whose name still resolves to keep[i] (among others) keeps it.
  bool resolve(const PoolConfig& pool, std::vector<asio::generic::stream_protocol::endpoint>& out,
               std::string& error,
               const std::vector<asio::generic::stream_protocol::endpoint>* keep = nullptr);
  size_t pool_id(const std::string& name);
  void update_prober();
  // Re-resolves the server host names of every pool every config_.resolve_interval_ms; a pool
  // whose addresses changed is re-installed with them (as a reload of that pool would). The
  // lookups run on Asio's resolver thread, one at a time, never on the main thread; a round
  // ends before the next is scheduled. Defined in proxy_resolve.cpp.
  struct ResolveRound;
  void schedule_resolve();
  void re_resolve();
  void resolve_next(std::shared_ptr<ResolveRound> round);
  void finish_resolve(const ResolveRound& round);
  ActivePool* active_pool(const std::shared_ptr<const PoolConfig>& config);
  bool open_stats(std::string& error, bool log = true);

  Config config_;  // top-level settings (pools live in pools_)
  unsigned threads_;
  std::string config_path_;
  ConfigOverrides overrides_;
  std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();

  asio::io_context io_{1};
  std::vector<ActivePool> pools_;  // config order
  std::map<std::string, size_t> ids_;
  std::vector<std::unique_ptr<PoolClients>> clients_;  // by pool id; never shrinks
  std::unique_ptr<Prober> prober_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::unique_ptr<StatsServer> stats_;
  std::vector<std::unique_ptr<Listener>> closed_listeners_;  // see reload()
  std::vector<std::unique_ptr<StatsServer>> closed_stats_;
  std::atomic<uint64_t> reloads_{0};
  std::atomic<uint64_t> reload_failures_{0};
  bool shutting_down_ = false;
  bool control_signals_added_ = false;
  asio::steady_timer drain_timer_{io_};
  asio::steady_timer trim_timer_{io_};
  std::atomic<uint64_t> memory_trims_{0};
  asio::steady_timer resolve_timer_{io_};
  asio::ip::tcp::resolver resolver_{io_};
  bool resolving_ = false;  // a re-resolve round is running
  asio::signal_set signals_{io_};
  asio::signal_set control_signals_{io_};
};

}  // namespace dproxy::core
