#include "core/stats.h"

#include <doctest/doctest.h>

#include <nlohmann/json.hpp>
#include <string>

namespace {

using dproxy::core::CommandLatency;
using dproxy::core::LatencyHistogram;
using dproxy::core::PoolStats;
using dproxy::core::ProcessInfo;
using dproxy::core::ServerStats;
using dproxy::core::StatsSnapshot;

StatsSnapshot one_worker(uint64_t requests, uint64_t latency_us, bool up) {
  StatsSnapshot s;
  PoolStats& p = s.pools.emplace_back();
  p.name = "cache";
  p.protocol = "memcached";
  p.client_connections = 2;
  p.total_client_connections = 5;
  p.client_eof = 3;
  p.requests = requests;
  p.server_ejects = 1;
  ServerStats& a = p.servers.emplace_back();
  a.name = "alpha";
  a.address = "127.0.0.1:11211";
  a.up = up;
  a.server_connections = 1;
  a.counters.requests = requests;
  a.counters.responses = requests;
  a.counters.request_bytes = requests * 10;
  ServerStats& b = p.servers.emplace_back();
  b.name = "127.0.0.1:11212";
  b.address = "127.0.0.1:11212";
  CommandLatency& c = p.latency.emplace_back();
  c.command = "get";
  c.histogram.record(latency_us);
  return s;
}

}  // namespace

TEST_CASE("stats: histogram buckets are upper bounds, the last one is +Inf") {
  LatencyHistogram h;
  h.record(0);
  h.record(50);          // on the bound: first bucket
  h.record(51);          // second
  h.record(1000);        // "1000" bucket (index 4)
  h.record(1ull << 40);  // beyond every bound
  CHECK(h.counts[0] == 2);
  CHECK(h.counts[1] == 1);
  CHECK(h.counts[4] == 1);
  CHECK(h.counts[LatencyHistogram::kBuckets - 1] == 1);
  CHECK(h.count == 5);
  CHECK(h.sum_us == 0 + 50 + 51 + 1000 + (1ull << 40));
}

TEST_CASE("stats: worker snapshots merge by pool and server name") {
  StatsSnapshot all = one_worker(10, 100, true);
  all.merge(one_worker(7, 3000, false));
  REQUIRE(all.pools.size() == 1);
  const PoolStats& p = all.pools[0];
  CHECK(p.requests == 17);
  CHECK(p.client_connections == 4);
  CHECK(p.total_client_connections == 10);
  CHECK(p.server_ejects == 1);  // process-wide: not summed
  REQUIRE(p.servers.size() == 2);
  CHECK(p.servers[0].counters.requests == 17);
  CHECK(p.servers[0].server_connections == 2);
  CHECK_FALSE(p.servers[0].up);  // down as soon as any worker says so
  REQUIRE(p.latency.size() == 1);
  CHECK(p.latency[0].histogram.count == 2);
  CHECK(p.latency[0].histogram.sum_us == 3100);
}

TEST_CASE("stats: the JSON document has twemproxy's shape") {
  ProcessInfo info;
  info.source = "host";
  info.version = "1.2.3";
  info.uptime_s = 42;
  info.timestamp_s = 1700000000;
  auto doc =
      nlohmann::json::parse(dproxy::core::format_stats_json(one_worker(10, 100, true), info));
  CHECK(doc["service"] == "dproxy");
  CHECK(doc["source"] == "host");
  CHECK(doc["uptime"] == 42);
  CHECK(doc["total_connections"] == 5);
  CHECK(doc["curr_connections"] == 2);
  const auto& pool = doc["cache"];
  for (const char* k : {"client_eof", "client_err", "client_connections", "server_ejects",
                        "forward_error", "fragments"})
    CHECK_MESSAGE(pool.contains(k), k);
  const auto& server = pool["alpha"];
  for (const char* k :
       {"server_eof", "server_err", "server_timedout", "server_connections", "server_ejected_at",
        "requests", "request_bytes", "responses", "response_bytes", "in_queue", "in_queue_bytes",
        "out_queue", "out_queue_bytes"})
    CHECK_MESSAGE(server.contains(k), k);
  CHECK(server["requests"] == 10);
  CHECK(server["request_bytes"] == 100);
  CHECK(pool.contains("127.0.0.1:11212"));
}

TEST_CASE("stats: Prometheus text: counters, up state and cumulative histogram buckets") {
  ProcessInfo info;
  const std::string text = dproxy::core::format_prometheus(one_worker(10, 300, false), info);
  CHECK(text.find("# TYPE dproxy_requests_total counter\n") != std::string::npos);
  CHECK(text.find("dproxy_requests_total{pool=\"cache\"} 10\n") != std::string::npos);
  CHECK(text.find("dproxy_server_up{pool=\"cache\",server=\"alpha\",address=\"127.0.0.1:11211\"} "
                  "0\n") != std::string::npos);
  CHECK(text.find("# TYPE dproxy_request_duration_seconds histogram\n") != std::string::npos);
  // 300 µs: not in the 250 µs bucket, in the 500 µs one and every later one.
  CHECK(text.find("dproxy_request_duration_seconds_bucket{pool=\"cache\",command=\"get\","
                  "le=\"0.000250\"} 0\n") != std::string::npos);
  CHECK(text.find("dproxy_request_duration_seconds_bucket{pool=\"cache\",command=\"get\","
                  "le=\"0.000500\"} 1\n") != std::string::npos);
  CHECK(text.find("dproxy_request_duration_seconds_bucket{pool=\"cache\",command=\"get\","
                  "le=\"+Inf\"} 1\n") != std::string::npos);
  CHECK(text.find("dproxy_request_duration_seconds_count{pool=\"cache\",command=\"get\"} 1\n") !=
        std::string::npos);
}

TEST_CASE("stats: memcached STAT lines and Redis INFO fields") {
  ProcessInfo info;
  info.threads = 2;
  StatsSnapshot s = one_worker(10, 100, true);
  const std::string mc = dproxy::core::format_memcached_stats(s, info, "cache");
  CHECK(mc.find("STAT threads 2\r\n") != std::string::npos);
  CHECK(mc.find("STAT pool cache\r\n") != std::string::npos);
  CHECK(mc.find("STAT pool_requests 10\r\n") != std::string::npos);
  CHECK(mc.find("STAT server0_name alpha\r\n") != std::string::npos);
  CHECK(mc.find("STAT cmd_get 1\r\n") != std::string::npos);
  const std::string info_text = dproxy::core::format_redis_info(s, info, "cache");
  CHECK(info_text.find("pool_requests:10\r\n") != std::string::npos);
  CHECK(info_text.find("cmdstat_get:calls=1,usec=100,usec_per_call=100.00\r\n") !=
        std::string::npos);
}

TEST_CASE("stats: Redis Cluster figures appear for cluster pools only") {
  ProcessInfo info;
  StatsSnapshot s = one_worker(1, 10, true);
  StatsSnapshot c;
  PoolStats& p = c.pools.emplace_back();
  p.name = "rc";
  p.cluster = true;
  p.cluster_figures = {7, 3, 0, 5, 9, 2, 1, 0};
  StatsSnapshot other = c;
  other.pools[0].cluster_figures[0] = 6;  // another worker saw an older map
  c.merge(other);
  CHECK(c.pools[0].cluster_figures[0] == 7);  // process-wide figures: not summed
  CHECK(c.pools[0].cluster_figures[4] == 9);
  s.merge(c);
  auto doc = nlohmann::json::parse(dproxy::core::format_stats_json(s, info));
  CHECK(doc["rc"]["cluster_moved"] == 5);
  CHECK(doc["rc"]["cluster_ask"] == 9);
  CHECK(doc["rc"]["cluster_slot_map_version"] == 7);
  CHECK_FALSE(doc["cache"].contains("cluster_moved"));
  const std::string text = dproxy::core::format_prometheus(s, info);
  CHECK(text.find("# TYPE dproxy_cluster_slot_map_version gauge\n") != std::string::npos);
  CHECK(text.find("dproxy_cluster_moved_total{pool=\"rc\"} 5\n") != std::string::npos);
  CHECK(text.find("dproxy_cluster_moved_total{pool=\"cache\"}") == std::string::npos);
}
