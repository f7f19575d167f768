#include "core/backend/server_health.h"

#include <string>

#include "core/log.h"

namespace dproxy::core {

void PoolHealth::record_failure(size_t i, std::string_view why) {
  ServerHealth& h = servers_[i];
  uint32_t n = h.failures.fetch_add(1, std::memory_order_relaxed) + 1;
  if (n < config_->server_failure_limit) return;
  bool expected = false;
  if (!h.down.compare_exchange_strong(expected, true)) return;
  h.retry_at_ms.store(now_ms() + config_->server_retry_timeout_ms, std::memory_order_relaxed);
  h.ejected_at_us.store(std::chrono::duration_cast<std::chrono::microseconds>(
                            std::chrono::system_clock::now().time_since_epoch())
                            .count(),
                        std::memory_order_relaxed);
  ejects_.fetch_add(1, std::memory_order_relaxed);
  generation_.fetch_add(1, std::memory_order_acq_rel);
  std::string reason(why);
  LOG_WARN(
      "pool %s: server %s marked DOWN after %u consecutive failures (last: %s); %s; probe in %u ms",
      config_->name.c_str(), config_->servers[i].address().c_str(), n, reason.c_str(),
      config_->auto_eject_hosts ? "ejected, its keys move to the remaining servers"
                                : "its requests fail fast",
      config_->server_retry_timeout_ms);
}

void PoolHealth::mark_up(size_t i) {
  ServerHealth& h = servers_[i];
  h.failures.store(0, std::memory_order_relaxed);
  h.down.store(false, std::memory_order_relaxed);
  h.probing.store(false, std::memory_order_relaxed);
  generation_.fetch_add(1, std::memory_order_acq_rel);
  LOG_INFO("pool %s: server %s is UP again (probe answered)%s", config_->name.c_str(),
           config_->servers[i].address().c_str(),
           config_->auto_eject_hosts ? "; re-added to the distribution" : "");
}

void PoolHealth::probe_failed(size_t i, std::string_view why) {
  ServerHealth& h = servers_[i];
  h.retry_at_ms.store(now_ms() + config_->server_retry_timeout_ms, std::memory_order_relaxed);
  h.probing.store(false, std::memory_order_relaxed);
  std::string reason(why);
  LOG_INFO("pool %s: probe of down server %s failed (%s); next probe in %u ms",
           config_->name.c_str(), config_->servers[i].address().c_str(), reason.c_str(),
           config_->server_retry_timeout_ms);
}

}  // namespace dproxy::core
