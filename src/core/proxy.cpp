#include "core/proxy.h"

#include <csignal>

#include "core/listener.h"
#include "core/log.h"
#include "core/prober.h"
#include "core/server_health.h"
#include "core/worker.h"

namespace dproxy::core {

Proxy::Proxy(Config config, unsigned threads) : config_(std::move(config)), threads_(threads) {}

Proxy::~Proxy() {
  // NOTE: a pending accept holds a socket of a worker's io_context; let the aborted accepts
  // complete before any worker (and its socket service) is destroyed.
  for (auto& l : listeners_) l->close();
  io_.restart();
  io_.poll();
  listeners_.clear();
  for (auto& w : workers_) w->stop();
  for (auto& w : workers_) w->join();
  workers_.clear();
}

bool Proxy::start(std::string& error) {
  std::signal(SIGPIPE, SIG_IGN);
  handle_signals();
  std::vector<std::vector<asio::generic::stream_protocol::endpoint>> endpoints(
      config_.pools.size());
  asio::ip::tcp::resolver resolver(io_);
  for (size_t p = 0; p < config_.pools.size(); ++p) {
    const PoolConfig& pool = config_.pools[p];
    for (size_t i = 0; i < pool.servers.size(); ++i) {
      const auto& server = pool.servers[i];
      if (server.port == 0) {
        endpoints[p].push_back(asio::local::stream_protocol::endpoint(server.host));
        continue;
      }
      asio::error_code ec;
      auto results = resolver.resolve(server.host, std::to_string(server.port), ec);
      if (ec || results.empty()) {
        error = "pools." + pool.name + ".servers[" + std::to_string(i) + "]: cannot resolve \"" +
                server.host + "\": " + (ec ? ec.message() : std::string("no address"));
        return false;
      }
      endpoints[p].push_back(results.begin()->endpoint());
    }
  }
  for (const auto& pool : config_.pools) health_.push_back(std::make_unique<PoolHealth>(pool));
  endpoints_ = endpoints;
  prober_ = std::make_unique<Prober>(io_, health_, endpoints_);
  for (unsigned t = 0; t < threads_; ++t)
    workers_.push_back(std::make_unique<Worker>(t, config_, health_, endpoints));
  for (size_t p = 0; p < config_.pools.size(); ++p) {
    auto listener = std::make_unique<Listener>(io_, p, config_.pools[p], *health_[p], workers_);
    if (!listener->open(error)) return false;
    listeners_.push_back(std::move(listener));
  }
  for (auto& w : workers_) w->start();
  for (auto& l : listeners_) l->start();
  prober_->start();
  LOG_INFO("dproxy " DPROXY_VERSION " started: %zu pool(s), %u worker thread(s)",
           config_.pools.size(), threads_);
  return true;
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
    LOG_INFO(
        "received %s: shutting down: no new connections, finishing in-flight requests "
        "(up to %u ms)",
        signo == SIGINT ? "SIGINT" : "SIGTERM", config_.shutdown_timeout_ms);
    for (auto& l : listeners_) l->close();
    prober_->stop();
    for (auto& w : workers_) {
      Worker* worker = w.get();
      asio::post(worker->io(), [worker] { worker->begin_drain(); });
    }
    wait_for_drain(std::chrono::steady_clock::now() +
                   std::chrono::milliseconds(config_.shutdown_timeout_ms));
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
