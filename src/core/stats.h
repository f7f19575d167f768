#pragma once
// Proxy figures. Counters are plain integers owned by one worker thread (no atomics, no locks on
// the data path); a reader asks every worker for a StatsSnapshot on the worker's own thread and
// merges the answers (see Proxy::collect_stats).

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace dproxy::core {

// Request latency, as the client sees it through dproxy: from the read that completed the
// request to the moment its reply is queued for the client. Buckets are upper bounds in
// microseconds; the last bucket is +Inf.
struct LatencyHistogram {
  static constexpr std::array<uint64_t, 19> kBoundsUs = {
      50,     100,    250,    500,     1000,    2500,    5000,     10000,    25000,   50000,
      100000, 250000, 500000, 1000000, 2500000, 5000000, 10000000, 30000000, 60000000};
  static constexpr size_t kBuckets = kBoundsUs.size() + 1;

  std::array<uint64_t, kBuckets> counts{};  // not cumulative
  uint64_t count = 0;
  uint64_t sum_us = 0;

  void record(uint64_t us) {
    size_t b = 0;
    while (b < kBoundsUs.size() && us > kBoundsUs[b]) ++b;
    ++counts[b];
    ++count;
    sum_us += us;
  }
  void merge(const LatencyHistogram& other) {
    for (size_t b = 0; b < kBuckets; ++b) counts[b] += other.counts[b];
    count += other.count;
    sum_us += other.sum_us;
  }
};

// One backend connection's counters (worker thread only), in twemproxy's terms.
struct ServerCounters {
  uint64_t server_eof = 0;       // the server closed a connection that had work on it
  uint64_t server_err = 0;       // connect/read/write errors and malformed replies
  uint64_t server_timedout = 0;  // requests that got no reply within timeout_ms
  uint64_t requests = 0;
  uint64_t request_bytes = 0;
  uint64_t responses = 0;
  uint64_t response_bytes = 0;
  uint64_t forward_errors = 0;  // requests answered with an error naming this backend

  ServerCounters& operator+=(const ServerCounters& o) {
    server_eof += o.server_eof;
    server_err += o.server_err;
    server_timedout += o.server_timedout;
    requests += o.requests;
    request_bytes += o.request_bytes;
    responses += o.responses;
    response_bytes += o.response_bytes;
    forward_errors += o.forward_errors;
    return *this;
  }
};

// One pool's counters on one worker thread. Kept across config reloads (by pool name).
struct PoolCounters {
  uint64_t client_eof = 0;          // clients that closed their connection
  uint64_t client_err = 0;          // client connections closed on an error (reset, protocol error)
  uint64_t client_connections = 0;  // open now
  uint64_t total_client_connections = 0;  // ever accepted
  uint64_t forward_error = 0;             // requests answered with a backend error
  uint64_t fragments = 0;                 // sub-requests made by splitting multi-key requests
  uint64_t requests = 0;          // client requests (commands), including locally answered ones
  uint64_t dedicated_opened = 0;  // dedicated backend connections made (Redis BLPOP, WATCH)
  uint64_t dedicated_held = 0;    // and held by clients now (pub/sub included)
  // TLS (issue 20): client side, then backend side (health probes and slot map queries are not
  // counted: they run on the main thread).
  uint64_t tls_handshakes = 0;                 // client handshakes completed
  uint64_t tls_handshake_failures = 0;         // client handshakes failed (or timed out)
  uint64_t tls_connections = 0;                // client TLS connections open now
  uint64_t server_tls_handshakes = 0;          // backend handshakes completed
  uint64_t server_tls_handshake_failures = 0;  // backend handshakes failed
  uint64_t server_tls_connections = 0;         // backend TLS connections open now
  // By command id (memcached Command enum, or Redis top-level command table index); created on
  // the first request of each command.
  std::vector<std::unique_ptr<LatencyHistogram>> latency;

  void record_latency(uint16_t command, uint64_t us) {
    if (command >= latency.size()) latency.resize(command + 1u);
    auto& h = latency[command];
    if (!h) h = std::make_unique<LatencyHistogram>();
    h->record(us);
  }
};

// ---- Snapshots: plain copies, merged over worker threads, then formatted. ----

struct ServerStats {
  std::string name;     // twemproxy's stats key: the configured name, else host:port
  std::string address;  // host:port or socket path
  bool up = true;
  int64_t ejected_at_us = 0;  // unix time (µs) the server was last marked down, 0 if never
  uint64_t server_connections = 0;
  ServerCounters counters;
  uint64_t in_queue = 0;  // requests waiting to be written
  uint64_t in_queue_bytes = 0;
  uint64_t out_queue = 0;  // requests written, waiting for their reply
  uint64_t out_queue_bytes = 0;
  uint64_t buffer_bytes = 0;  // memory of the connections' read and write buffers
};

// Memory held by dproxy's components, summed over the workers (issue 24: a growth is visible
// and attributable). Capacities, not contents: what the component keeps allocated.
struct MemoryStats {
  uint64_t buffer_pool_bytes = 0;     // reply buffers kept by the workers' pools
  uint64_t client_buffer_bytes = 0;   // client connections' read and reply buffers
  uint64_t reply_slots = 0;           // reply slots allocated by client connections
  uint64_t reply_slot_bytes = 0;      // and their memory
  uint64_t backend_buffer_bytes = 0;  // backend connections' read and write buffers
  void add(const MemoryStats& o) {
    buffer_pool_bytes += o.buffer_pool_bytes;
    client_buffer_bytes += o.client_buffer_bytes;
    reply_slots += o.reply_slots;
    reply_slot_bytes += o.reply_slot_bytes;
    backend_buffer_bytes += o.backend_buffer_bytes;
  }
};

struct CommandLatency {
  std::string command;
  LatencyHistogram histogram;
};

struct PoolStats {
  std::string name;
  std::string protocol;  // "memcached" | "redis"
  std::string listen;
  uint64_t client_eof = 0, client_err = 0, client_connections = 0, total_client_connections = 0;
  uint64_t server_ejects = 0, forward_error = 0, fragments = 0, requests = 0;
  // Redis dedicated backend connections: held by clients, idle for reuse, ever made.
  uint64_t dedicated_connections = 0, dedicated_idle = 0, dedicated_opened = 0;
  // TLS (see PoolCounters); `tls` / `server_tls`: the side is configured (shown only then).
  bool tls = false, server_tls = false;
  uint64_t tls_handshakes = 0, tls_handshake_failures = 0, tls_connections = 0;
  uint64_t server_tls_handshakes = 0, server_tls_handshake_failures = 0, server_tls_connections = 0;
  std::vector<ServerStats> servers;
  std::vector<CommandLatency> latency;  // sorted by command name
  // redis_cluster pools (process-wide figures, see cluster_stats.h), in kClusterFigures order.
  bool cluster = false;
  std::array<uint64_t, 8> cluster_figures{};
};

// Names of PoolStats::cluster_figures (JSON keys; Prometheus adds "dproxy_" and, for the
// counters, "_total"). The first is a gauge, the others counters.
inline constexpr std::array<const char*, 8> kClusterFigures = {"cluster_slot_map_version",
                                                               "cluster_refreshes",
                                                               "cluster_refresh_failures",
                                                               "cluster_moved",
                                                               "cluster_ask",
                                                               "cluster_retries",
                                                               "cluster_replica_fallbacks",
                                                               "cluster_gave_up"};

struct StatsSnapshot {
  std::vector<PoolStats> pools;  // config order
  MemoryStats memory;
  // Adds `other` (another worker's snapshot) into this one, matching pools and servers by name.
  void merge(const StatsSnapshot& other);
};

// Process-wide facts printed with the counters.
struct ProcessInfo {
  std::string source;  // host name
  std::string version;
  int64_t uptime_s = 0;
  int64_t timestamp_s = 0;  // unix time
  unsigned threads = 0;
  uint64_t reloads = 0;
  uint64_t reload_failures = 0;
  uint64_t rss_bytes = 0;        // resident set size
  uint64_t heap_used_bytes = 0;  // memory allocated and not freed (glibc's malloc)
  uint64_t heap_free_bytes = 0;  // freed memory the allocator still holds
  uint64_t memory_trims = 0;     // times the allocator was asked to give memory back
  uint64_t tls_bytes = 0;        // heap OpenSSL holds (core/tls_memory.h)
};

// twemproxy's stats document (one JSON object; see the README).
std::string format_stats_json(const StatsSnapshot& s, const ProcessInfo& p);
// Prometheus text exposition format 0.0.4.
std::string format_prometheus(const StatsSnapshot& s, const ProcessInfo& p);
// memcached "STAT name value\r\n" lines for `pool` (no END).
std::string format_memcached_stats(const StatsSnapshot& s, const ProcessInfo& p,
                                   std::string_view pool);
// Redis INFO "name:value\r\n" lines for `pool` (no section header).
std::string format_redis_info(const StatsSnapshot& s, const ProcessInfo& p, std::string_view pool);

}  // namespace dproxy::core
