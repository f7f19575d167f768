// Proxy::reload (SIGHUP) in its phases: read the file, stage the new pool list (validate,
// resolve), open the listeners it needs (rolled back on failure), then commit: install the
// pools on the workers, move or retire listeners, apply the top-level settings, log.

#include <set>

#include "core/backend/server_health.h"
#include "core/listener.h"
#include "core/log.h"
#include "core/proxy.h"
#include "core/reload_diff.h"
#include "core/stats_server.h"
#include "core/tls_context.h"

namespace dproxy::core {

namespace {

std::string join(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return out.empty() ? "none" : out;
}

}  // namespace

// What a reload is about to change, built before anything is touched.
struct Proxy::ReloadPlan {
  Config next;
  std::vector<ActivePool> staged;  // the new pool list, in the new config order
  std::vector<std::string> added, removed, changed;
  std::vector<std::string> server_changes;  // "pool: what changed in its servers"
  std::set<std::string> released;           // listen addresses that this reload gives up
  std::vector<std::string> tls_reloaded;    // pools whose TLS contexts were loaded again
  size_t unchanged = 0;
};

Proxy::ActivePool* Proxy::current_pool(const std::string& name) {
  for (auto& p : pools_)
    if (p.config->name == name) return &p;
  return nullptr;
}

bool Proxy::reload(std::string& error) {
  ReloadPlan plan;
  if (config_path_.empty()) {
    error = "no config file to re-read";
  } else if (load_config(config_path_, plan.next, error)) {
    apply_overrides(plan.next, overrides_);
    error.clear();
  }
  if (error.empty() && stage_pools(plan, error)) open_new_listeners(plan, error);
  if (!error.empty()) {
    reload_failures_.fetch_add(1);
    for (auto& a : plan.staged) {
      if (a.listener) a.listener->close();
    }
    return false;
  }
  install_staged(plan);
  swap_listeners(plan);
  update_prober();
  apply_top_level(plan.next);
  reloads_.fetch_add(1);
  LOG_INFO("reload: applied %s: added %s; removed %s; changed %s; %zu unchanged",
           config_path_.c_str(), join(plan.added).c_str(), join(plan.removed).c_str(),
           join(plan.changed).c_str(), plan.unchanged);
  for (const auto& line : plan.server_changes) LOG_INFO("reload: pool %s", line.c_str());
  if (!plan.tls_reloaded.empty())
    LOG_INFO("reload: TLS certificates loaded again for %s", join(plan.tls_reloaded).c_str());
  return true;
}

bool Proxy::stage_pools(ReloadPlan& plan, std::string& error) {
  for (auto& pool : plan.next.pools) {
    ActivePool* cur = current_pool(pool.name);
    if (cur != nullptr && cur->config->protocol != pool.protocol) {
      error = config_path_ + ": pools." + pool.name +
              ".protocol: a pool cannot change protocol on reload (give it a new name, or "
              "restart dproxy)";
      return false;
    }
    ActivePool a;
    // Certificates and keys are read again on every reload, also for an unchanged pool (their
    // files may have been rotated); one that cannot be loaded rejects the reload.
    if (!load_pool_tls(pool, a.tls, error)) {
      error = config_path_ + ": " + error + " (the running certificates stay)";
      return false;
    }
    if (a.tls) plan.tls_reloaded.push_back(pool.name);
    if (cur != nullptr && cur->config->source == pool.source) {
      a.config = cur->config;  // unchanged: keeps its health, connections and listener
      ++plan.unchanged;
      plan.staged.push_back(std::move(a));
      continue;
    }
    if (!resolve(pool, a.endpoints, error)) {
      error = config_path_ + ": " + error;
      return false;
    }
    (cur != nullptr ? plan.changed : plan.added).push_back(pool.name);
    if (cur != nullptr)
      plan.server_changes.push_back(pool.name + ": " + describe_server_changes(*cur->config, pool));
    a.config = std::make_shared<const PoolConfig>(std::move(pool));
    a.health = std::make_shared<PoolHealth>(a.config);
    plan.staged.push_back(std::move(a));
  }
  return true;
}

bool Proxy::open_new_listeners(ReloadPlan& plan, std::string& error) {
  for (auto& p : pools_) {
    bool kept = false;
    for (auto& a : plan.staged) {
      if (a.config->name != p.config->name) continue;
      kept = true;
      if (a.config->listen.to_string() != p.config->listen.to_string())
        plan.released.insert(p.config->listen.to_string());
    }
    if (!kept) {
      plan.removed.push_back(p.config->name);
      plan.released.insert(p.config->listen.to_string());
    }
  }
  // New listeners first (rolled back on failure), except on addresses this reload frees:
  // those are bound once the old listener is closed.
  for (auto& a : plan.staged) {
    ActivePool* cur = current_pool(a.config->name);
    bool needs_listener =
        cur == nullptr || cur->config->listen.to_string() != a.config->listen.to_string();
    if (!needs_listener || plan.released.count(a.config->listen.to_string())) continue;
    a.id = pool_id(a.config->name);
    a.listener = std::make_unique<Listener>(io_, a.id, a.config, *clients_[a.id], workers_);
    if (!a.listener->open(error)) {
      error = config_path_ + ": " + error;
      return false;
    }
  }
  return true;
}

void Proxy::install_staged(ReloadPlan& plan) {
  // Workers first: a listener's first session for a new pool is posted after the install (each
  // io_context runs handlers in order).
  for (auto& a : plan.staged) {
    ActivePool* cur = current_pool(a.config->name);
    a.id = pool_id(a.config->name);
    if (cur != nullptr && cur->config == a.config) {
      a.health = cur->health;
      a.endpoints = cur->endpoints;
      a.listener = std::move(cur->listener);
      if (a.tls || cur->tls) {
        // Rotated certificates: connections made from now on use them; established ones stay.
        for (auto& w : workers_) {
          Worker* worker = w.get();
          asio::post(worker->io(),
                     [worker, id = a.id, tls = a.tls] { worker->set_pool_tls(id, tls); });
        }
      }
      continue;
    }
    for (auto& w : workers_) {
      Worker* worker = w.get();
      asio::post(worker->io(),
                 [worker, id = a.id, config = a.config, health = a.health, endpoints = a.endpoints,
                  tls = a.tls] { worker->install_pool(id, config, health, endpoints, tls); });
    }
    if (cur != nullptr && !a.listener &&
        cur->config->listen.to_string() == a.config->listen.to_string()) {
      a.listener = std::move(cur->listener);
      a.listener->set_config(a.config);
    }
  }
  for (const auto& name : plan.removed) {
    size_t id = ids_.at(name);
    for (auto& w : workers_) {
      Worker* worker = w.get();
      asio::post(worker->io(), [worker, id] { worker->remove_pool(id); });
    }
  }
}

void Proxy::swap_listeners(ReloadPlan& plan) {
  // Whatever listeners the old list still holds belong to removed pools or moved addresses.
  std::vector<std::unique_ptr<Listener>> retired_listeners;
  for (auto& p : pools_) {
    if (!p.listener) continue;
    p.listener->close();
    LOG_INFO("pool %s: stopped listening on %s", p.config->name.c_str(),
             p.config->listen.to_string().c_str());
    retired_listeners.push_back(std::move(p.listener));
  }
  for (auto& a : plan.staged) {
    if (a.listener) continue;
    a.listener = std::make_unique<Listener>(io_, a.id, a.config, *clients_[a.id], workers_);
    std::string bind_error;
    if (!a.listener->open(bind_error)) {
      LOG_ERROR("reload: %s (the pool serves its connected clients but accepts no new ones)",
                bind_error.c_str());
      a.listener.reset();
    }
  }
  for (auto& a : plan.staged) {
    if (a.listener && !a.listener->started()) a.listener->start();
  }
  pools_ = std::move(plan.staged);
  // NOTE: closed acceptors still have an aborted accept to complete (its handler points at the
  // listener): closed listeners are kept until the proxy goes.
  for (auto& l : retired_listeners) closed_listeners_.push_back(std::move(l));
}

void Proxy::apply_top_level(const Config& next) {
  config_.shutdown_timeout_ms = next.shutdown_timeout_ms;
  if (config_.resolve_interval_ms != next.resolve_interval_ms) {
    config_.resolve_interval_ms = next.resolve_interval_ms;
    schedule_resolve();
  }
  const bool stats_changed = next.stats_enabled != config_.stats_enabled ||
                             next.stats_listen.to_string() != config_.stats_listen.to_string();
  config_.stats_enabled = next.stats_enabled;
  config_.stats_configured = next.stats_configured;
  config_.stats_listen = next.stats_listen;
  if (!stats_changed) return;
  if (stats_) {
    stats_->close();
    closed_stats_.push_back(std::move(stats_));
  }
  std::string stats_error;
  if (!open_stats(stats_error)) LOG_ERROR("reload: %s", stats_error.c_str());
}

}  // namespace dproxy::core
