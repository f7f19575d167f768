#pragma once
// Probes servers marked down (memcached "version", Redis "PING") once their retry time has come,
// and re-adds them only when the probe answers. Runs on the main thread's io_context.

#include <asio.hpp>
#include <memory>
#include <vector>

#include "core/config.h"
#include "core/tls_context.h"

namespace dproxy::core {

class PoolHealth;

class Prober {
 public:
  // One pool to watch: its health, its servers' addresses and its TLS contexts (probes of a
  // server_tls pool run over TLS with the certificates of the last load or reload).
  struct Target {
    std::shared_ptr<PoolHealth> health;
    std::vector<asio::generic::stream_protocol::endpoint> endpoints;
    std::shared_ptr<const PoolTls> tls;
  };

  explicit Prober(asio::io_context& io);
  // Replaces the pools watched (start and config reload; main thread). A probe in flight for a
  // pool no longer watched finishes against that pool's old health, which nothing reads.
  void set_targets(std::vector<Target> targets) { targets_ = std::move(targets); }
  void start();
  void stop();

 private:
  void tick();

  asio::io_context& io_;
  std::vector<Target> targets_;
  asio::steady_timer timer_;
  bool stopped_ = false;
};

}  // namespace dproxy::core
