#include "core/stats.h"

#include <algorithm>
#include <cstdio>
#include <nlohmann/json.hpp>

namespace dproxy::core {

namespace {

void merge_server(ServerStats& a, const ServerStats& b) {
  a.up = a.up && b.up;
  a.ejected_at_us = std::max(a.ejected_at_us, b.ejected_at_us);
  a.server_connections += b.server_connections;
  a.counters += b.counters;
  a.in_queue += b.in_queue;
  a.in_queue_bytes += b.in_queue_bytes;
  a.out_queue += b.out_queue;
  a.out_queue_bytes += b.out_queue_bytes;
  a.buffer_bytes += b.buffer_bytes;
}

void merge_pool(PoolStats& a, const PoolStats& b) {
  a.client_eof += b.client_eof;
  a.client_err += b.client_err;
  a.client_connections += b.client_connections;
  a.total_client_connections += b.total_client_connections;
  a.forward_error += b.forward_error;
  a.fragments += b.fragments;
  a.requests += b.requests;
  a.dedicated_connections += b.dedicated_connections;
  a.dedicated_idle += b.dedicated_idle;
  a.dedicated_opened += b.dedicated_opened;
  a.tls = a.tls || b.tls;
  a.server_tls = a.server_tls || b.server_tls;
  a.tls_handshakes += b.tls_handshakes;
  a.tls_handshake_failures += b.tls_handshake_failures;
  a.tls_connections += b.tls_connections;
  a.server_tls_handshakes += b.server_tls_handshakes;
  a.server_tls_handshake_failures += b.server_tls_handshake_failures;
  a.server_tls_connections += b.server_tls_connections;
  // server_ejects is process-wide (shared health): every worker reports the same figure.
  a.server_ejects = std::max(a.server_ejects, b.server_ejects);
  a.cluster = a.cluster || b.cluster;
  for (size_t i = 0; i < a.cluster_figures.size(); ++i)
    a.cluster_figures[i] = std::max(a.cluster_figures[i], b.cluster_figures[i]);
  for (const ServerStats& s : b.servers) {
    auto it = std::find_if(a.servers.begin(), a.servers.end(),
                           [&](const ServerStats& x) { return x.name == s.name; });
    if (it == a.servers.end())
      a.servers.push_back(s);
    else
      merge_server(*it, s);
  }
  for (const CommandLatency& c : b.latency) {
    auto it = std::lower_bound(
        a.latency.begin(), a.latency.end(), c.command,
        [](const CommandLatency& x, const std::string& name) { return x.command < name; });
    if (it != a.latency.end() && it->command == c.command)
      it->histogram.merge(c.histogram);
    else
      a.latency.insert(it, c);
  }
}

const PoolStats* find_pool(const StatsSnapshot& s, std::string_view name) {
  for (const auto& p : s.pools)
    if (p.name == name) return &p;
  return nullptr;
}

// Prometheus label values escape backslash, double quote and newline.
std::string label(std::string_view v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') {
      out.push_back('\\');
      out.push_back(c);
    } else if (c == '\n') {
      out.append("\\n");
    } else {
      out.push_back(c);
    }
  }
  return out;
}

std::string seconds(uint64_t us) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6f", static_cast<double>(us) / 1e6);
  return buf;
}

uint64_t total(const StatsSnapshot& s, uint64_t PoolStats::*field) {
  uint64_t n = 0;
  for (const auto& p : s.pools) n += p.*field;
  return n;
}

}  // namespace

void StatsSnapshot::merge(const StatsSnapshot& other) {
  memory.add(other.memory);
  for (const PoolStats& p : other.pools) {
    auto it = std::find_if(pools.begin(), pools.end(),
                           [&](const PoolStats& x) { return x.name == p.name; });
    if (it == pools.end())
      pools.push_back(p);
    else
      merge_pool(*it, p);
  }
}

std::string format_stats_json(const StatsSnapshot& s, const ProcessInfo& p) {
  nlohmann::ordered_json doc;
  doc["service"] = "dproxy";
  doc["source"] = p.source;
  doc["version"] = p.version;
  doc["uptime"] = p.uptime_s;
  doc["timestamp"] = p.timestamp_s;
  doc["total_connections"] = total(s, &PoolStats::total_client_connections);
  doc["curr_connections"] = total(s, &PoolStats::client_connections);
  // Memory by component (flat keys: every object at this level is a pool, as in twemproxy).
  doc["memory_rss_bytes"] = p.rss_bytes;
  doc["memory_heap_used_bytes"] = p.heap_used_bytes;
  doc["memory_heap_free_bytes"] = p.heap_free_bytes;
  doc["memory_trims"] = p.memory_trims;
  doc["memory_buffer_pool_bytes"] = s.memory.buffer_pool_bytes;
  doc["memory_client_buffer_bytes"] = s.memory.client_buffer_bytes;
  doc["memory_reply_slots"] = s.memory.reply_slots;
  doc["memory_reply_slot_bytes"] = s.memory.reply_slot_bytes;
  doc["memory_backend_buffer_bytes"] = s.memory.backend_buffer_bytes;
  doc["memory_tls_bytes"] = p.tls_bytes;
  for (const PoolStats& pool : s.pools) {
    nlohmann::ordered_json j;
    j["client_eof"] = pool.client_eof;
    j["client_err"] = pool.client_err;
    j["client_connections"] = pool.client_connections;
    j["server_ejects"] = pool.server_ejects;
    j["forward_error"] = pool.forward_error;
    j["fragments"] = pool.fragments;
    if (pool.protocol == "redis") {
      j["dedicated_connections"] = pool.dedicated_connections;
      j["dedicated_idle"] = pool.dedicated_idle;
      j["dedicated_opened"] = pool.dedicated_opened;
    }
    if (pool.cluster) {
      for (size_t i = 0; i < kClusterFigures.size(); ++i)
        j[kClusterFigures[i]] = pool.cluster_figures[i];
    }
    if (pool.tls) {
      j["tls_handshakes"] = pool.tls_handshakes;
      j["tls_handshake_failures"] = pool.tls_handshake_failures;
      j["tls_connections"] = pool.tls_connections;
    }
    if (pool.server_tls) {
      j["server_tls_handshakes"] = pool.server_tls_handshakes;
      j["server_tls_handshake_failures"] = pool.server_tls_handshake_failures;
      j["server_tls_connections"] = pool.server_tls_connections;
    }
    for (const ServerStats& srv : pool.servers) {
      nlohmann::ordered_json v;
      v["server_eof"] = srv.counters.server_eof;
      v["server_err"] = srv.counters.server_err;
      v["server_timedout"] = srv.counters.server_timedout;
      v["server_connections"] = srv.server_connections;
      v["server_ejected_at"] = srv.ejected_at_us;
      v["requests"] = srv.counters.requests;
      v["request_bytes"] = srv.counters.request_bytes;
      v["responses"] = srv.counters.responses;
      v["response_bytes"] = srv.counters.response_bytes;
      v["in_queue"] = srv.in_queue;
      v["in_queue_bytes"] = srv.in_queue_bytes;
      v["out_queue"] = srv.out_queue;
      v["out_queue_bytes"] = srv.out_queue_bytes;
      j[srv.name] = std::move(v);
    }
    doc[pool.name] = std::move(j);
  }
  return doc.dump() + "\n";
}

namespace {

// Prometheus text format (0.0.4), appended to one string.
class PromWriter {
 public:
  void header(const char* name, const char* type, const char* help) {
    out_ += "# HELP ";
    out_ += name;
    out_ += ' ';
    out_ += help;
    out_ += "\n# TYPE ";
    out_ += name;
    out_ += ' ';
    out_ += type;
    out_ += '\n';
  }
  void line(const std::string& name, const std::string& labels, uint64_t v) {
    out_ += name;
    if (!labels.empty()) out_ += "{" + labels + "}";
    out_ += ' ';
    out_ += std::to_string(v);
    out_ += '\n';
  }
  void raw(const std::string& text) { out_ += text; }
  std::string take() { return std::move(out_); }

 private:
  std::string out_;
};

struct PoolMetric {
  const char* name;
  const char* type;
  const char* help;
  uint64_t PoolStats::*field;
};
const PoolMetric kPoolMetrics[] = {
    {"dproxy_client_connections", "gauge", "Open client connections.",
     &PoolStats::client_connections},
    {"dproxy_client_connections_total", "counter", "Client connections accepted.",
     &PoolStats::total_client_connections},
    {"dproxy_dedicated_connections", "gauge",
     "Redis backend connections held by one client (blocking commands, WATCH, pub/sub).",
     &PoolStats::dedicated_connections},
    {"dproxy_dedicated_idle_connections", "gauge",
     "Redis dedicated backend connections kept idle for reuse.", &PoolStats::dedicated_idle},
    {"dproxy_dedicated_connections_total", "counter", "Redis dedicated backend connections made.",
     &PoolStats::dedicated_opened},
    {"dproxy_client_eof_total", "counter", "Client connections closed by the client.",
     &PoolStats::client_eof},
    {"dproxy_client_err_total", "counter", "Client connections closed on an error.",
     &PoolStats::client_err},
    {"dproxy_server_ejects_total", "counter", "Times a server of the pool was marked down.",
     &PoolStats::server_ejects},
    {"dproxy_forward_error_total", "counter", "Requests answered with a backend error.",
     &PoolStats::forward_error},
    {"dproxy_fragments_total", "counter", "Sub-requests made by splitting multi-key requests.",
     &PoolStats::fragments},
    {"dproxy_requests_total", "counter", "Client requests.", &PoolStats::requests},
    {"dproxy_tls_handshakes_total", "counter", "Client TLS handshakes completed.",
     &PoolStats::tls_handshakes},
    {"dproxy_tls_handshake_failures_total", "counter",
     "Client TLS handshakes failed (plaintext on a TLS listener, refused certificates, timeouts).",
     &PoolStats::tls_handshake_failures},
    {"dproxy_tls_connections", "gauge", "Open client TLS connections.",
     &PoolStats::tls_connections},
    {"dproxy_server_tls_handshakes_total", "counter", "Backend TLS handshakes completed.",
     &PoolStats::server_tls_handshakes},
    {"dproxy_server_tls_handshake_failures_total", "counter", "Backend TLS handshakes failed.",
     &PoolStats::server_tls_handshake_failures},
    {"dproxy_server_tls_connections", "gauge", "Open backend TLS connections.",
     &PoolStats::server_tls_connections},
};
struct ServerMetric {
  const char* name;
  const char* type;
  const char* help;
  uint64_t (*get)(const ServerStats&);
};
const ServerMetric kServerMetrics[] = {
    {"dproxy_server_up", "gauge", "1 when the server is in service, 0 when marked down.",
     [](const ServerStats& x) -> uint64_t { return x.up ? 1 : 0; }},
    {"dproxy_server_ejected_at_seconds", "gauge",
     "Unix time the server was last marked down (0: never).",
     [](const ServerStats& x) -> uint64_t {
       return static_cast<uint64_t>(x.ejected_at_us) / 1000000;
     }},
    {"dproxy_server_connections", "gauge", "Open backend connections.",
     [](const ServerStats& x) { return x.server_connections; }},
    {"dproxy_server_eof_total", "counter", "Backend connections closed by the server.",
     [](const ServerStats& x) { return x.counters.server_eof; }},
    {"dproxy_server_err_total", "counter", "Backend connection errors.",
     [](const ServerStats& x) { return x.counters.server_err; }},
    {"dproxy_server_timedout_total", "counter", "Requests that timed out.",
     [](const ServerStats& x) { return x.counters.server_timedout; }},
    {"dproxy_server_requests_total", "counter", "Requests sent to the server.",
     [](const ServerStats& x) { return x.counters.requests; }},
    {"dproxy_server_request_bytes_total", "counter", "Request bytes sent to the server.",
     [](const ServerStats& x) { return x.counters.request_bytes; }},
    {"dproxy_server_responses_total", "counter", "Replies received from the server.",
     [](const ServerStats& x) { return x.counters.responses; }},
    {"dproxy_server_response_bytes_total", "counter", "Reply bytes received from the server.",
     [](const ServerStats& x) { return x.counters.response_bytes; }},
    {"dproxy_server_in_queue", "gauge", "Requests waiting to be written to the server.",
     [](const ServerStats& x) { return x.in_queue; }},
    {"dproxy_server_in_queue_bytes", "gauge", "Bytes waiting to be written to the server.",
     [](const ServerStats& x) { return x.in_queue_bytes; }},
    {"dproxy_server_out_queue", "gauge", "Requests written, waiting for their reply.",
     [](const ServerStats& x) { return x.out_queue; }},
    {"dproxy_server_out_queue_bytes", "gauge", "Bytes of requests waiting for their reply.",
     [](const ServerStats& x) { return x.out_queue_bytes; }},
};
void write_process_metrics(PromWriter& w, const StatsSnapshot& s, const ProcessInfo& p) {
  w.header("dproxy_uptime_seconds", "gauge", "Seconds since dproxy started.");
  w.line("dproxy_uptime_seconds", "", static_cast<uint64_t>(p.uptime_s));
  w.header("dproxy_worker_threads", "gauge", "Worker threads.");
  w.line("dproxy_worker_threads", "", p.threads);
  w.header("dproxy_config_reloads_total", "counter", "Configuration reloads applied.");
  w.line("dproxy_config_reloads_total", "", p.reloads);
  w.header("dproxy_config_reload_failures_total", "counter",
           "Configuration reloads rejected (the old configuration stayed in force).");
  w.line("dproxy_config_reload_failures_total", "", p.reload_failures);
  w.header("dproxy_memory_bytes", "gauge",
           "Memory by component: rss, heap_used, heap_free (held by the allocator), buffer_pool, "
           "client_buffers, reply_slots, backend_buffers, tls (OpenSSL's heap).");
  w.line("dproxy_memory_bytes", "component=\"rss\"", p.rss_bytes);
  w.line("dproxy_memory_bytes", "component=\"heap_used\"", p.heap_used_bytes);
  w.line("dproxy_memory_bytes", "component=\"heap_free\"", p.heap_free_bytes);
  w.line("dproxy_memory_bytes", "component=\"buffer_pool\"", s.memory.buffer_pool_bytes);
  w.line("dproxy_memory_bytes", "component=\"client_buffers\"", s.memory.client_buffer_bytes);
  w.line("dproxy_memory_bytes", "component=\"reply_slots\"", s.memory.reply_slot_bytes);
  w.line("dproxy_memory_bytes", "component=\"backend_buffers\"", s.memory.backend_buffer_bytes);
  w.line("dproxy_memory_bytes", "component=\"tls\"", p.tls_bytes);
  w.header("dproxy_reply_slots", "gauge", "Reply slots allocated by client connections.");
  w.line("dproxy_reply_slots", "", s.memory.reply_slots);
  w.header("dproxy_memory_trims_total", "counter",
           "Times the allocator was asked to return freed memory to the system.");
  w.line("dproxy_memory_trims_total", "", p.memory_trims);
}

void write_pool_metrics(PromWriter& w, const StatsSnapshot& s) {
  for (const PoolMetric& m : kPoolMetrics) {
    w.header(m.name, m.type, m.help);
    for (const PoolStats& pool : s.pools)
      w.line(m.name, "pool=\"" + label(pool.name) + "\"", pool.*(m.field));
  }
  for (size_t i = 0; i < kClusterFigures.size(); ++i) {
    const std::string name = std::string("dproxy_") + kClusterFigures[i] + (i == 0 ? "" : "_total");
    bool any = false;
    for (const PoolStats& pool : s.pools) {
      if (!pool.cluster) continue;
      if (!any)
        w.header(name.c_str(), i == 0 ? "gauge" : "counter",
                 "Redis Cluster pools: see the README (Redis Cluster figures).");
      any = true;
      w.line(name, "pool=\"" + label(pool.name) + "\"", pool.cluster_figures[i]);
    }
  }
}

void write_server_metrics(PromWriter& w, const StatsSnapshot& s) {
  for (const ServerMetric& m : kServerMetrics) {
    w.header(m.name, m.type, m.help);
    for (const PoolStats& pool : s.pools)
      for (const ServerStats& srv : pool.servers)
        w.line(m.name,
               "pool=\"" + label(pool.name) + "\",server=\"" + label(srv.name) + "\",address=\"" +
                   label(srv.address) + "\"",
               m.get(srv));
  }
}

void write_latency(PromWriter& w, const StatsSnapshot& s) {
  w.header("dproxy_request_duration_seconds", "histogram",
           "Time from reading a request to queueing its reply, per pool and command.");
  for (const PoolStats& pool : s.pools) {
    for (const CommandLatency& c : pool.latency) {
      std::string labels = "pool=\"" + label(pool.name) + "\",command=\"" + label(c.command) + "\"";
      uint64_t cumulative = 0;
      for (size_t b = 0; b < LatencyHistogram::kBuckets; ++b) {
        cumulative += c.histogram.counts[b];
        std::string le = b < LatencyHistogram::kBoundsUs.size()
                             ? seconds(LatencyHistogram::kBoundsUs[b])
                             : std::string("+Inf");
        w.line("dproxy_request_duration_seconds_bucket", labels + ",le=\"" + le + "\"", cumulative);
      }
      w.raw("dproxy_request_duration_seconds_sum{" + labels + "} " + seconds(c.histogram.sum_us) +
            "\n");
      w.line("dproxy_request_duration_seconds_count", labels, c.histogram.count);
    }
  }
}

}  // namespace

std::string format_prometheus(const StatsSnapshot& s, const ProcessInfo& p) {
  PromWriter w;
  write_process_metrics(w, s, p);
  write_pool_metrics(w, s);
  write_server_metrics(w, s);
  write_latency(w, s);
  return w.take();
}

std::string format_memcached_stats(const StatsSnapshot& s, const ProcessInfo& p,
                                   std::string_view pool_name) {
  std::string out;
  auto stat = [&](const std::string& name, const std::string& value) {
    out += "STAT " + name + " " + value + "\r\n";
  };
  stat("version", p.version);
  stat("proxy", "dproxy");
  stat("uptime", std::to_string(p.uptime_s));
  stat("time", std::to_string(p.timestamp_s));
  stat("threads", std::to_string(p.threads));
  stat("total_connections", std::to_string(total(s, &PoolStats::total_client_connections)));
  stat("curr_connections", std::to_string(total(s, &PoolStats::client_connections)));
  stat("config_reloads", std::to_string(p.reloads));
  const PoolStats* pool = find_pool(s, pool_name);
  if (pool == nullptr) return out;
  stat("pool", pool->name);
  stat("pool_client_connections", std::to_string(pool->client_connections));
  stat("pool_client_eof", std::to_string(pool->client_eof));
  stat("pool_client_err", std::to_string(pool->client_err));
  stat("pool_requests", std::to_string(pool->requests));
  stat("pool_server_ejects", std::to_string(pool->server_ejects));
  stat("pool_forward_error", std::to_string(pool->forward_error));
  stat("pool_fragments", std::to_string(pool->fragments));
  stat("pool_servers", std::to_string(pool->servers.size()));
  for (size_t i = 0; i < pool->servers.size(); ++i) {
    const ServerStats& srv = pool->servers[i];
    const std::string k = "server" + std::to_string(i) + "_";
    stat(k + "name", srv.name);
    stat(k + "address", srv.address);
    stat(k + "up", srv.up ? "1" : "0");
    stat(k + "connections", std::to_string(srv.server_connections));
    stat(k + "requests", std::to_string(srv.counters.requests));
    stat(k + "responses", std::to_string(srv.counters.responses));
    stat(k + "timedout", std::to_string(srv.counters.server_timedout));
    stat(k + "errors", std::to_string(srv.counters.server_err));
  }
  for (const CommandLatency& c : pool->latency) {
    stat("cmd_" + c.command, std::to_string(c.histogram.count));
    stat("cmd_" + c.command + "_usec", std::to_string(c.histogram.sum_us));
  }
  return out;
}

std::string format_redis_info(const StatsSnapshot& s, const ProcessInfo& p,
                              std::string_view pool_name) {
  std::string out;
  auto field = [&](const std::string& name, const std::string& value) {
    out += name + ":" + value + "\r\n";
  };
  field("dproxy_threads", std::to_string(p.threads));
  field("dproxy_total_connections", std::to_string(total(s, &PoolStats::total_client_connections)));
  field("dproxy_curr_connections", std::to_string(total(s, &PoolStats::client_connections)));
  field("dproxy_config_reloads", std::to_string(p.reloads));
  const PoolStats* pool = find_pool(s, pool_name);
  if (pool == nullptr) return out;
  field("pool_client_connections", std::to_string(pool->client_connections));
  field("pool_client_eof", std::to_string(pool->client_eof));
  field("pool_client_err", std::to_string(pool->client_err));
  field("pool_requests", std::to_string(pool->requests));
  field("pool_server_ejects", std::to_string(pool->server_ejects));
  field("pool_forward_error", std::to_string(pool->forward_error));
  field("pool_fragments", std::to_string(pool->fragments));
  for (size_t i = 0; i < pool->servers.size(); ++i) {
    const ServerStats& srv = pool->servers[i];
    field("server" + std::to_string(i) + "_stats",
          "address=" + srv.address + ",up=" + (srv.up ? "1" : "0") +
              ",connections=" + std::to_string(srv.server_connections) +
              ",requests=" + std::to_string(srv.counters.requests) +
              ",responses=" + std::to_string(srv.counters.responses) +
              ",timedout=" + std::to_string(srv.counters.server_timedout) +
              ",errors=" + std::to_string(srv.counters.server_err));
  }
  for (const CommandLatency& c : pool->latency) {
    const auto& h = c.histogram;
    char per_call[32];
    std::snprintf(
        per_call, sizeof per_call, "%.2f",
        h.count == 0 ? 0.0 : static_cast<double>(h.sum_us) / static_cast<double>(h.count));
    field("cmdstat_" + c.command, "calls=" + std::to_string(h.count) + ",usec=" +
                                      std::to_string(h.sum_us) + ",usec_per_call=" + per_call);
  }
  return out;
}

}  // namespace dproxy::core
