#pragma once
// The proxy configuration: plain structs, validated completely at load, immutable afterwards.

#include <cstdint>
#include <string>
#include <vector>

#include "routing/distribution.h"
#include "routing/hash.h"
#include "routing/route.h"
#include "routing/server_spec.h"

namespace dproxy::core {

enum class Protocol : uint8_t { kMemcached, kRedis };

// redis_cluster pools: where read-only commands go (writes always go to the slot's master).
enum class ReadFrom : uint8_t { kMaster, kReplica, kAny };

struct ListenAddress {
  std::string host;  // IP address, or a unix socket path when is_unix
  uint16_t port = 0;
  bool is_unix = false;
  uint32_t mode = 0;  // unix socket permissions ("/path 0666"); 0 = as the umask leaves them
  std::string to_string() const;
};

// TLS on one side of a pool: PEM files and checks (issue 20). Certificates and keys are loaded
// when the pool starts and again on every reload (SIGHUP), also when the pool's JSON is unchanged.
struct TlsConfig {
  bool enabled = false;      // the "tls" / "server_tls" object was given
  std::string cert;          // certificate chain (PEM); client side: required
  std::string key;           // its private key (PEM); client side: required
  std::string ca;            // CA certificates (PEM) that a peer's certificate must chain to
  bool verify = false;       // "tls": verify_client (default false); "server_tls": verify (true)
  std::string server_name;   // "server_tls" only: SNI and the name the certificate must hold
  std::string min_version;   // "1.2" (default) or "1.3"
  std::string ciphers;       // OpenSSL cipher list for TLS 1.2 ("" = OpenSSL's default)
  std::string ciphersuites;  // OpenSSL TLS 1.3 cipher suites ("" = OpenSSL's default)
};

struct PoolConfig {
  std::string name;
  Protocol protocol = Protocol::kMemcached;
  ListenAddress listen;
  routing::HashKind hash = routing::HashKind::kFnv1a_64;
  std::string hash_tag;                      // empty or exactly two characters
  uint32_t timeout_ms = 1000;                // a request with no reply in this time fails alone
                                             // (0: wait forever, nutcracker's default)
  uint32_t connect_timeout_ms = 1000;        // a backend connect attempt gives up after this
  uint32_t server_failure_limit = 2;         // consecutive failures that mark a server down
  uint32_t server_retry_timeout_ms = 30000;  // a down server is probed after this
  bool auto_eject_hosts = false;             // down servers leave the distribution (keys move)
  uint32_t client_connections = 0;           // max client connections to this pool, 0 = no limit
  uint32_t server_connections = 1;           // backend connections per server per worker thread
  // nutcracker's server_connections: per process; apply_overrides() turns it into
  // server_connections = ceil(n / threads). 0 = not set.
  uint32_t server_connections_per_process = 0;
  uint32_t backlog = 0;        // listen(2) backlog; 0 = the system's maximum (SOMAXCONN)
  bool preconnect = false;     // connect to every server at start, not at the first request
  bool tcp_keepalive = false;  // SO_KEEPALIVE on backend connections
  uint64_t max_value_bytes = 1024 * 1024;
  // Every server of the pool (all leaves of the route tree, in config order), and the JSON path
  // each came from (for messages).
  std::vector<routing::ServerSpec> servers;
  std::vector<std::string> server_paths;
  // The route tree; its shard nodes hold indices into `servers`.
  routing::RouteSpec route;
  // memcached only: client credentials (user, password). When given, clients must
  // authenticate before anything else: SASL PLAIN over the binary protocol (as memcached -S),
  // memcached's ASCII authentication on the text protocol (as memcached -Y).
  std::vector<std::pair<std::string, std::string>> sasl_users;
  // Backend credentials, sent on each new backend connection: Redis AUTH [user] password;
  // memcached's ASCII authentication "<user> <password>" (backends started with -Y).
  std::string server_user;
  std::string server_password;
  // redis only
  std::string client_password;  // clients must AUTH with this before anything else
  uint32_t db = 0;              // dproxy sends SELECT db on each new backend connection
  // Backend connections clients may hold at once (blocking commands, WATCH), every thread.
  uint32_t max_dedicated_connections = 1024;
  // TLS towards clients ("tls") and towards the servers ("server_tls"); see TlsConfig.
  TlsConfig tls;
  TlsConfig server_tls;
  // The pool's JSON text as loaded (config reload compares it to tell a changed pool).
  std::string source;
  // redis_cluster only
  uint32_t cluster_refresh_ms = 10000;     // slot map refresh period (also after MOVED, errors)
  ReadFrom read_from = ReadFrom::kMaster;  // replica / any: reads may go to replicas (READONLY)
};

struct Config {
  std::vector<PoolConfig> pools;
  uint32_t shutdown_timeout_ms = 5000;  // SIGTERM/SIGINT: how long in-flight requests may finish
  // Server host names are resolved again this often; a pool whose addresses changed is
  // re-installed as on a reload (names, and so placement, stay). 0: only at start and reload.
  uint32_t resolve_interval_ms = 30000;
  // The stats listener (twemproxy JSON, GET /metrics, GET /stats).
  bool stats_enabled = true;
  bool stats_configured = false;  // "stats.listen" given: failing to bind it is fatal
  ListenAddress stats_listen{"127.0.0.1", 22222, false};
};

// Parses and validates a config document. On failure returns false and sets `error` to one
// line naming the JSON path and the problem, e.g.
//   pools.cache.servers[2]: "10.0.0.1:abc" is not host:port[:weight] [name]
bool parse_config(const std::string& text, Config& out, std::string& error);
// Reads `path` and parses it; errors are prefixed with the path. A file named *.yml / *.yaml,
// or whose first non-blank character is not '{', is read as nutcracker's YAML (see
// nutcracker_yaml_to_json).
bool load_config(const std::string& path, Config& out, std::string& error);

// True when `path` / `text` is to be read as nutcracker YAML rather than dproxy JSON.
bool is_yaml_config(const std::string& path, const std::string& text);

// Converts a nutcracker (twemproxy 0.5) YAML config to the equivalent dproxy JSON document
// (pretty-printed). Keys are checked against nutcracker's; an unknown key is an error naming
// it. The JSON is not validated here: parse_config does that.
bool nutcracker_yaml_to_json(const std::string& text, std::string& json_out, std::string& error);

// Rewrites a parse_config error about a document converted from YAML so that it names the
// nutcracker key ("pools.web.timeout_ms: ..." -> "web.timeout: ...").
std::string yaml_error_path(const std::string& error);

// The dproxy JSON equivalent of the config file at `path` (YAML converted, JSON re-printed),
// validated as load_config would.
bool config_file_as_json(const std::string& path, std::string& json_out, std::string& error);

// Command-line settings that outlive reloads: applied after every load.
struct ConfigOverrides {
  unsigned threads = 1;
  std::string stats_addr;   // -a: the stats listener's IP address
  uint32_t stats_port = 0;  // -s: the stats listener's port (0 = from the config)
};
void apply_overrides(Config& config, const ConfigOverrides& overrides);

// For --test-config: resolves every server host name and tries to bind every listen address
// (pools, and stats when configured). False when something fails; `problems` gets one line per
// problem (the key path and what failed). An address already in use (a running dproxy holds its
// own addresses) or a unix socket directory that does not exist yet is a warning line only.
bool check_config_environment(const Config& config, std::string& problems);

// A human-readable multi-line summary (for --test-config).
std::string describe_config(const Config& config);

}  // namespace dproxy::core
