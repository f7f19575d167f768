#include "core/backend/prober.h"

#include <cstdint>
#include <string>

#include "core/backend/backend_setup.h"
#include "core/backend/oneshot_exchange.h"
#include "core/backend/server_health.h"

namespace dproxy::core {

namespace {

constexpr std::chrono::milliseconds kTick{100};

// Probes server `index` of `health`'s pool: the setup a data connection sends (Redis: AUTH,
// SELECT) then memcached "version" / Redis PING; only VERSION ... / +PONG marks it up.
void probe(asio::io_context& io, std::shared_ptr<PoolHealth> health, size_t index,
           const asio::generic::stream_protocol::endpoint& endpoint,
           std::shared_ptr<const PoolTls> tls) {
  const PoolConfig& config = health->config();
  const bool redis = config.protocol == Protocol::kRedis;
  uint32_t replies = 0;
  std::string request = backend_setup(config, config.db, replies);
  request.append(redis ? "*1\r\n$4\r\nPING\r\n" : "version\r\n");
  ++replies;
  // timeout_ms 0 (no request timeout) still bounds a probe: by the connect timeout once more.
  auto limit = std::chrono::milliseconds(
      config.connect_timeout_ms +
      (config.timeout_ms != 0 ? config.timeout_ms : config.connect_timeout_ms));
  // A copy of `health` of its own (the done callback below takes `health` itself).
  auto count_handshake = [counted = health](bool ok) { counted->count_oneshot_handshake(ok); };
  // No size limit: the time limit bounds what a probe reads.
  std::make_shared<OneshotExchange>(
      io, endpoint, std::move(request), replies, config.protocol, limit, SIZE_MAX,
      OneshotExchange::Tls{config.server_tls.enabled, std::move(tls), config.servers[index].host,
                           std::move(count_handshake)},
      [health = std::move(health), index, redis](OneshotExchange::Outcome outcome,
                                                 std::string_view text) {
        using Outcome = OneshotExchange::Outcome;
        if (outcome == Outcome::kReply &&
            (redis ? text == "+PONG\r\n" : text.starts_with("VERSION "))) {
          return health->mark_up(index);
        }
        if (outcome == Outcome::kFailed) return health->probe_failed(index, text);
        std::string answer(text.substr(0, 200));
        while (!answer.empty() && (answer.back() == '\n' || answer.back() == '\r')) {
          answer.pop_back();
        }
        health->probe_failed(index, "unexpected answer: " + answer);
      })
      ->run();
}

}  // namespace

Prober::Prober(asio::io_context& io) : io_(io), timer_(io) {}

void Prober::start() {
  timer_.expires_after(kTick);
  timer_.async_wait([this](const asio::error_code& ec) {
    if (ec || stopped_) return;
    tick();
    start();
  });
}

void Prober::stop() {
  stopped_ = true;
  timer_.cancel();
}

void Prober::tick() {
  int64_t now = PoolHealth::now_ms();
  for (const Target& target : targets_) {
    PoolHealth& pool = *target.health;
    for (size_t i = 0; i < pool.size(); ++i) {
      ServerHealth& h = pool.server(i);
      if (!h.down.load() || h.probing.load() || h.retry_at_ms.load() > now) continue;
      h.probing.store(true);
      probe(io_, target.health, i, target.endpoints[i], target.tls);
    }
  }
}

}  // namespace dproxy::core
