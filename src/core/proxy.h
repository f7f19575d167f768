#pragma once
// The whole running proxy: worker threads, listeners, signal handling.

#include <asio.hpp>
#include <memory>
#include <string>
#include <vector>

#include "core/config.h"

namespace dproxy::core {

class Listener;
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
  asio::io_context io_{1};
  std::vector<std::unique_ptr<Worker>> workers_;
  std::vector<std::unique_ptr<Listener>> listeners_;
};

}  // namespace dproxy::core
