#include "core/reachability.h"

#include <chrono>
#include <memory>

#include "core/log.h"

namespace dproxy::core {

namespace {

struct Attempt {
  Attempt(asio::io_context& io, std::string pool_name, std::string server_label)
      : socket(io), timer(io), pool(std::move(pool_name)), server(std::move(server_label)) {}
  asio::generic::stream_protocol::socket socket;
  asio::steady_timer timer;
  std::string pool;
  std::string server;
  bool timed_out = false;
};

}  // namespace

void warn_unreachable_servers(
    asio::io_context& io, const PoolConfig& pool,
    const std::vector<asio::generic::stream_protocol::endpoint>& endpoints) {
  for (size_t i = 0; i < endpoints.size() && i < pool.servers.size(); ++i) {
    const auto& s = pool.servers[i];
    std::string server = s.name.empty() ? s.address() : s.name + " (" + s.address() + ")";
    auto a = std::make_shared<Attempt>(io, pool.name, std::move(server));
    const uint32_t timeout_ms = pool.connect_timeout_ms > 0 ? pool.connect_timeout_ms : 1000;
    a->timer.expires_after(std::chrono::milliseconds(timeout_ms));
    a->timer.async_wait([a](const asio::error_code& ec) {
      if (ec) return;
      a->timed_out = true;
      asio::error_code ignored;
      a->socket.close(ignored);  // the connect completes with operation_aborted
    });
    a->socket.async_connect(endpoints[i], [a, timeout_ms](const asio::error_code& ec) {
      a->timer.cancel();
      asio::error_code ignored;
      a->socket.close(ignored);
      if (!ec) return;
      const std::string reason =
          a->timed_out ? "no answer in " + std::to_string(timeout_ms) + " ms" : ec.message();
      LOG_WARN("pool %s: server %s cannot be connected at start: %s (dproxy starts anyway)",
               a->pool.c_str(), a->server.c_str(), reason.c_str());
    });
  }
}

}  // namespace dproxy::core
