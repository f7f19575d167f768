#pragma once
// Probes servers marked down (memcached "version", Redis "PING") once their retry time has come,
// and re-adds them only when the probe answers. Runs on the main thread's io_context.

#include <asio.hpp>
#include <memory>
#include <vector>

#include "core/config.h"

namespace dproxy::core {

class PoolHealth;

class Prober {
 public:
  Prober(asio::io_context& io, std::vector<std::unique_ptr<PoolHealth>>& health,
         const std::vector<std::vector<asio::generic::stream_protocol::endpoint>>& endpoints);
  void start();
  void stop();

 private:
  void tick();
  void probe(size_t pool, size_t server);

  asio::io_context& io_;
  std::vector<std::unique_ptr<PoolHealth>>& health_;
  const std::vector<std::vector<asio::generic::stream_protocol::endpoint>>& endpoints_;
  asio::steady_timer timer_;
  bool stopped_ = false;
};

}  // namespace dproxy::core
