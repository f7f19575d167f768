#pragma once
// The whole running proxy: worker threads, listeners, signal handling.

#include <asio.hpp>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "core/config.h"

namespace dproxy::core {

class Listener;
class PoolHealth;
class Prober;
class Worker;

class Proxy {
 public:
  Proxy(Config config, unsigned threads);
  ~Proxy();
  // Resolves backends, binds every listener, starts the workers. False + error on failure.
  bool start(std::string& error);
  // Serves until SIGINT/SIGTERM. Returns the process exit code.
  int run();

 private:
  Config config_;
  unsigned threads_;
  // Graceful shutdown: waits (polling the workers) until none has work left or the deadline.
  void wait_for_drain(std::chrono::steady_clock::time_point deadline);
  void handle_signals();

  asio::io_context io_{1};
  std::vector<std::vector<asio::generic::stream_protocol::endpoint>> endpoints_;
  std::vector<std::unique_ptr<PoolHealth>> health_;
  std::unique_ptr<Prober> prober_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::vector<std::unique_ptr<Listener>> listeners_;
  asio::steady_timer drain_timer_{io_};
  asio::signal_set signals_{io_};
};

}  // namespace dproxy::core
