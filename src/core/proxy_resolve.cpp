// Proxy: resolving server host names, at start and reload (blocking: the result decides whether
// the config is taken) and periodically in the background (resolve_interval_ms).

#include <netdb.h>

#include "core/backend/prober.h"
#include "core/backend/server_health.h"
#include "core/log.h"
#include "core/proxy.h"

namespace dproxy::core {

using Endpoint = asio::generic::stream_protocol::endpoint;

namespace {

// `results[0]`, unless the address in use (`current`) is among them: a name with several
// addresses may list them in another order each time, and the address in use stays while the
// name still has it.
Endpoint choose(const asio::ip::tcp::resolver::results_type& results, const Endpoint* current) {
  Endpoint chosen(results.begin()->endpoint());
  if (current == nullptr) return chosen;
  for (const auto& r : results)
    if (Endpoint(r.endpoint()) == *current) return *current;
  return chosen;
}

std::string numeric_host(const Endpoint& e) {
  char host[NI_MAXHOST] = "?";
  ::getnameinfo(e.data(), static_cast<socklen_t>(e.size()), host, sizeof host, nullptr, 0,
                NI_NUMERICHOST);
  return host;
}

bool has_host_name(const PoolConfig& pool) {
  for (const auto& s : pool.servers) {
    asio::error_code ec;
    if (s.port != 0) asio::ip::make_address(s.host, ec);
    if (ec) return true;
  }
  return false;  // IP addresses and socket paths never change
}

}  // namespace

// One background round: the pools that have host names when it starts, resolved server by
// server. A pool reloaded or removed meanwhile is skipped (its config is no longer active).
struct Proxy::ResolveRound {
  std::vector<std::shared_ptr<const PoolConfig>> pools;
  size_t pool = 0;    // index into pools
  size_t server = 0;  // index into pools[pool]->servers
  std::vector<Endpoint> endpoints;
};

bool Proxy::resolve(const PoolConfig& pool, std::vector<Endpoint>& out, std::string& error,
                    const std::vector<Endpoint>* keep) {
  asio::ip::tcp::resolver resolver(io_);
  out.clear();
  for (size_t i = 0; i < pool.servers.size(); ++i) {
    const auto& server = pool.servers[i];
    if (server.port == 0) {
      out.push_back(asio::local::stream_protocol::endpoint(server.host));
      continue;
    }
    asio::error_code ec;
    auto results = resolver.resolve(server.host, std::to_string(server.port), ec);
    if (ec || results.empty()) {
      error = "pools." + pool.name + ".servers[" + std::to_string(i) + "]: cannot resolve \"" +
              server.host + "\": " + (ec ? ec.message() : std::string("no address"));
      return false;
    }
    out.push_back(choose(results, keep != nullptr && i < keep->size() ? &(*keep)[i] : nullptr));
  }
  return true;
}

Proxy::ActivePool* Proxy::active_pool(const std::shared_ptr<const PoolConfig>& config) {
  for (auto& p : pools_)
    if (p.config == config) return &p;
  return nullptr;
}

void Proxy::schedule_resolve() {
  resolve_timer_.cancel();
  if (config_.resolve_interval_ms == 0) return;
  resolve_timer_.expires_after(std::chrono::milliseconds(config_.resolve_interval_ms));
  resolve_timer_.async_wait([this](const asio::error_code& ec) {
    // A round still running schedules the next one when it ends.
    if (ec || shutting_down_ || resolving_) return;
    re_resolve();
  });
}

void Proxy::re_resolve() {
  auto round = std::make_shared<ResolveRound>();
  for (const auto& p : pools_)
    if (has_host_name(*p.config)) round->pools.push_back(p.config);
  resolving_ = true;
  resolve_next(std::move(round));
}

void Proxy::resolve_next(std::shared_ptr<ResolveRound> r) {
  while (!shutting_down_ && r->pool < r->pools.size()) {
    const PoolConfig& config = *r->pools[r->pool];
    if (r->server == config.servers.size()) {
      finish_resolve(*r);
      ++r->pool;
      r->server = 0;
      r->endpoints.clear();
      continue;
    }
    const auto& s = config.servers[r->server];
    if (s.port == 0) {
      r->endpoints.push_back(asio::local::stream_protocol::endpoint(s.host));
      ++r->server;
      continue;
    }
    resolver_.async_resolve(
        s.host, std::to_string(s.port),
        [this, r](const asio::error_code& ec, asio::ip::tcp::resolver::results_type results) {
          if (ec == asio::error::operation_aborted || shutting_down_) return;
          const PoolConfig& pool = *r->pools[r->pool];
          if (ec || results.empty()) {
            LOG_WARN(
                "re-resolve: pools.%s.servers[%zu]: cannot resolve \"%s\": %s; pool %s "
                "keeps its addresses",
                pool.name.c_str(), r->server, pool.servers[r->server].host.c_str(),
                ec ? ec.message().c_str() : "no address", pool.name.c_str());
            ++r->pool;  // this pool keeps what it has; on with the next
            r->server = 0;
            r->endpoints.clear();
          } else {
            const ActivePool* active = active_pool(r->pools[r->pool]);
            const Endpoint* current = active != nullptr && r->server < active->endpoints.size()
                                          ? &active->endpoints[r->server]
                                          : nullptr;
            r->endpoints.push_back(choose(results, current));
            ++r->server;
          }
          resolve_next(r);
        });
    return;
  }
  resolving_ = false;
  if (!shutting_down_) schedule_resolve();
}

void Proxy::finish_resolve(const ResolveRound& r) {
  ActivePool* p = active_pool(r.pools[r.pool]);
  if (p == nullptr) return;  // reloaded or removed while its names were being resolved
  if (r.endpoints == p->endpoints) {
    LOG_DEBUG("re-resolve: pool %s: addresses unchanged", p->config->name.c_str());
    return;
  }
  for (size_t i = 0; i < r.endpoints.size(); ++i) {
    if (i < p->endpoints.size() && r.endpoints[i] == p->endpoints[i]) continue;
    LOG_INFO("pool %s: server %s now resolves to %s; the pool is re-installed with it",
             p->config->name.c_str(), p->config->servers[i].address().c_str(),
             numeric_host(r.endpoints[i]).c_str());
  }
  // As a reload of the pool: fresh health and backend connections; the config (server names,
  // so placement) and the listener stay.
  p->endpoints = r.endpoints;
  p->health = std::make_shared<PoolHealth>(p->config);
  for (auto& w : workers_) {
    Worker* worker = w.get();
    asio::post(worker->io(), [worker, id = p->id, config = p->config, health = p->health,
                              endpoints = p->endpoints, tls = p->tls] {
      worker->install_pool(id, config, health, endpoints, tls);
    });
  }
  update_prober();
}

}  // namespace dproxy::core
