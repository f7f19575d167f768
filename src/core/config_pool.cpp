// The JSON config's pool object: its keys, then the checks across keys (redis-only and
// redis_cluster-only keys, what a redis_cluster pool refuses).

#include <utility>

#include "core/config_parse.h"

namespace dproxy::core::config_parse {

namespace {

// What the key loop learns besides the pool's fields, for the checks across keys.
struct PoolKeys {
  bool have_listen = false;
  bool have_protocol = false;
  bool have_max_value = false;
  std::vector<std::string> redis_only;      // paths of keys that only a redis pool takes
  std::vector<std::string> memcached_only;  // and that only a memcached pool takes
  std::vector<std::string> cluster_only;    // paths of keys that only a redis_cluster pool takes
};

// The integer keys: field, range, and which pools take them.
struct UintKey {
  const char* key;
  uint32_t PoolConfig::*field;
  uint64_t min, max;
  bool redis_only = false;
  bool cluster_only = false;
};
constexpr UintKey kUintKeys[] = {
    {"timeout_ms", &PoolConfig::timeout_ms, 0, 3600 * 1000},
    {"backlog", &PoolConfig::backlog, 0, 1000000},
    {"connect_timeout_ms", &PoolConfig::connect_timeout_ms, 1, 3600 * 1000},
    {"server_failure_limit", &PoolConfig::server_failure_limit, 1, 1000000},
    {"server_retry_timeout_ms", &PoolConfig::server_retry_timeout_ms, 1, 86400 * 1000},
    {"client_connections", &PoolConfig::client_connections, 0, 10000000},
    {"server_connections", &PoolConfig::server_connections, 1, 64},
    {"db", &PoolConfig::db, 0, 1000000, true},
    {"max_dedicated_connections", &PoolConfig::max_dedicated_connections, 0, 10000000, true},
    {"cluster_refresh_ms", &PoolConfig::cluster_refresh_ms, 100, 3600 * 1000, false, true},
};

constexpr std::pair<const char*, bool PoolConfig::*> kBoolKeys[] = {
    {"preconnect", &PoolConfig::preconnect},
    {"tcp_keepalive", &PoolConfig::tcp_keepalive},
    {"auto_eject_hosts", &PoolConfig::auto_eject_hosts},
};

const std::vector<std::string>& known_pool_keys() {
  static const std::vector<std::string> keys = {"protocol",
                                                "listen",
                                                "policy",
                                                "hash",
                                                "hash_tag",
                                                "timeout_ms",
                                                "connect_timeout_ms",
                                                "server_failure_limit",
                                                "server_retry_timeout_ms",
                                                "auto_eject_hosts",
                                                "client_connections",
                                                "server_connections",
                                                "server_connections_per_process",
                                                "backlog",
                                                "preconnect",
                                                "tcp_keepalive",
                                                "max_value_bytes",
                                                "sasl",
                                                "servers",
                                                "client_password",
                                                "server_password",
                                                "server_user",
                                                "db",
                                                "max_dedicated_connections",
                                                "children",
                                                "write_ack",
                                                "read",
                                                "failover_on_miss",
                                                "reply",
                                                "cluster_refresh_ms",
                                                "read_from",
                                                "tls",
                                                "server_tls"};
  return keys;
}

// The keys of "tls" (client side) and of "server_tls" (backend side).
const std::vector<std::string>& known_tls_keys() {
  static const std::vector<std::string> keys = {
      "cert", "key", "ca", "verify_client", "min_version", "ciphers", "ciphersuites"};
  return keys;
}
const std::vector<std::string>& known_server_tls_keys() {
  static const std::vector<std::string> keys = {"ca",     "cert",        "key",     "server_name",
                                                "verify", "min_version", "ciphers", "ciphersuites"};
  return keys;
}

// A "tls" (`server` false) or "server_tls" (`server` true) object. Files are read later (when
// the pool's TLS contexts are built: start, reload, --test-config).
TlsConfig parse_tls(const json& value, const std::string& p, bool server) {
  if (!value.is_object())
    fail(p, std::string("expected an object, got ") + type_name(value) +
                (server ? " (e.g. {\"ca\": \"/etc/dproxy/ca.pem\", \"verify\": true})"
                        : " (e.g. {\"cert\": \"/etc/dproxy/proxy.pem\", \"key\": "
                          "\"/etc/dproxy/proxy.key\"})"));
  TlsConfig tls;
  tls.enabled = true;
  tls.verify = server;
  for (auto& [key, v] : value.items()) {
    const std::string kp = p + "." + key;
    auto path_value = [&]() -> std::string {
      const std::string& s = get_string(v, kp);
      if (s.empty()) fail(kp, "must not be empty (leave the key out instead)");
      return s;
    };
    if (key == "cert") {
      tls.cert = path_value();
    } else if (key == "key") {
      tls.key = path_value();
    } else if (key == "ca") {
      tls.ca = path_value();
    } else if (key == (server ? "verify" : "verify_client")) {
      tls.verify = get_bool(v, kp);
    } else if (server && key == "server_name") {
      tls.server_name = path_value();
    } else if (key == "min_version") {
      const std::string& s = get_string(v, kp);
      if (s != "1.2" && s != "1.3") fail(kp, json_quote(s) + " is not one of \"1.2\", \"1.3\"");
      tls.min_version = s;
    } else if (key == "ciphers") {
      tls.ciphers = path_value();
    } else if (key == "ciphersuites") {
      tls.ciphersuites = path_value();
    } else {
      fail(kp, unknown_key(key, server ? known_server_tls_keys() : known_tls_keys()));
    }
  }
  if (!server) {
    if (tls.cert.empty()) fail(p, "missing required key \"cert\" (the proxy's certificate)");
    if (tls.key.empty()) fail(p, "missing required key \"key\" (the certificate's private key)");
    if (tls.verify && tls.ca.empty())
      fail(p + ".verify_client",
           "needs \"ca\" (the CA certificates client certificates must chain to)");
  } else if (tls.cert.empty() != tls.key.empty()) {
    fail(p, tls.cert.empty() ? "\"key\" needs \"cert\"" : "\"cert\" needs \"key\"");
  }
  return tls;
}

// A key given as an integer or a boolean (from the tables above); false when `key` is not one.
bool parse_table_key(const std::string& key, const json& value, const std::string& p,
                     PoolConfig& pool, PoolKeys& keys) {
  for (const auto& k : kUintKeys) {
    if (key != k.key) continue;
    pool.*k.field = static_cast<uint32_t>(get_uint(value, p, k.min, k.max));
    if (k.redis_only) keys.redis_only.push_back(p);
    if (k.cluster_only) keys.cluster_only.push_back(p);
    return true;
  }
  for (const auto& [name, field] : kBoolKeys) {
    if (key != name) continue;
    pool.*field = get_bool(value, p);
    return true;
  }
  return false;
}

Protocol parse_protocol(const json& value, const std::string& p) {
  const std::string& s = get_string(value, p);
  if (s == "memcached") return Protocol::kMemcached;
  if (s == "redis") return Protocol::kRedis;
  fail(p, json_quote(s) + " is not a protocol (expected \"memcached\" or \"redis\")");
}

ReadFrom parse_read_from(const json& value, const std::string& p) {
  const std::string& s = get_string(value, p);
  if (s == "master") return ReadFrom::kMaster;
  if (s == "replica") return ReadFrom::kReplica;
  if (s == "any") return ReadFrom::kAny;
  fail(p, json_quote(s) + " is not one of master, replica, any");
}

// One key of the pool object that is not a route key.
void parse_pool_key(const std::string& key, const json& value, const std::string& p, const json& v,
                    PoolConfig& pool, PoolKeys& keys) {
  if (parse_table_key(key, value, p, pool, keys)) return;
  if (key == "protocol") {
    pool.protocol = parse_protocol(value, p);
    keys.have_protocol = true;
  } else if (key == "listen") {
    pool.listen = parse_listen(get_string(value, p), p);
    keys.have_listen = true;
  } else if (key == "hash_tag") {
    const std::string& s = get_string(value, p);
    if (s.size() != 2) fail(p, json_quote(s) + " must be exactly two characters, e.g. \"{}\"");
    pool.hash_tag = s;
  } else if (key == "server_connections_per_process") {
    if (v.contains("server_connections"))
      fail(p,
           "give server_connections (per worker thread) or server_connections_per_process, "
           "not both");
    pool.server_connections_per_process = static_cast<uint32_t>(get_uint(value, p, 1, 64 * 256));
  } else if (key == "max_value_bytes") {
    pool.max_value_bytes = get_uint(value, p, 1, 512ull * 1024 * 1024);
    keys.have_max_value = true;
  } else if (key == "sasl") {
    if (!value.is_object() || value.empty())
      fail(p, "expected an object of user names and their passwords, e.g. {\"app\": \"secret\"}");
    for (auto& [user, password] : value.items()) {
      const std::string up = p + "." + user;
      if (user.empty() || user.find('\0') != std::string::npos)
        fail(up, "a user name must be non-empty, without NUL bytes");
      const std::string& pw = get_string(password, up);
      if (pw.empty()) fail(up, "must not be empty");
      pool.sasl_users.emplace_back(user, pw);
    }
    keys.memcached_only.push_back(p);
  } else if (key == "client_password") {
    const std::string& pw = get_string(value, p);
    if (pw.empty()) fail(p, "must not be empty (leave the key out instead)");
    pool.client_password = pw;
    keys.redis_only.push_back(p);
  } else if (key == "server_password" || key == "server_user") {
    // Both protocols: Redis AUTH [user] password; memcached's ASCII authentication (-Y).
    const std::string& text = get_string(value, p);
    if (text.empty()) fail(p, "must not be empty (leave the key out instead)");
    if (text.find_first_of(std::string_view("\r\n\0", 3)) != std::string::npos)
      fail(p, "must not hold CR, LF or NUL bytes");
    if (key == "server_user" && text.find(' ') != std::string::npos)
      fail(p,
           "must not hold a space (memcached's authentication separates user and password by one)");
    (key == "server_user" ? pool.server_user : pool.server_password) = text;
  } else if (key == "tls") {
    pool.tls = parse_tls(value, p, false);
  } else if (key == "server_tls") {
    pool.server_tls = parse_tls(value, p, true);
  } else if (key == "read_from") {
    pool.read_from = parse_read_from(value, p);
    keys.cluster_only.push_back(p);
  } else {
    fail(p, unknown_key(key, known_pool_keys()));
  }
}

// The checks across keys, once the pool and its routes are read.
void check_pool(const json& v, const std::string& path, PoolConfig& pool, const PoolKeys& keys) {
  if (!pool.server_user.empty() && pool.server_password.empty())
    fail(path + ".server_user", "needs server_password");
  if (pool.protocol == Protocol::kMemcached && !pool.server_password.empty() &&
      pool.server_user.empty())
    fail(path + ".server_password",
         "a memcached pool needs server_user too (memcached's ASCII authentication sends both)");
  if (pool.protocol != Protocol::kRedis && !keys.redis_only.empty())
    fail(keys.redis_only.front(), "only a redis pool takes this key");
  if (pool.protocol != Protocol::kMemcached && !keys.memcached_only.empty())
    fail(keys.memcached_only.front(), "only a memcached pool takes this key");
  if (pool.route.policy == "redis_cluster") {
    // Redis Cluster decides placement and failover itself.
    if (pool.protocol != Protocol::kRedis)
      fail(path + ".policy", "a redis_cluster pool takes protocol \"redis\"");
    for (const char* key : {"hash", "hash_tag"}) {
      if (v.contains(key))
        fail(path + "." + key,
             "a redis_cluster pool places keys by Redis Cluster's own rule (CRC16 of the key or "
             "of its {tag}, modulo 16384 slots); remove this key");
    }
    if (pool.auto_eject_hosts)
      fail(path + ".auto_eject_hosts",
           "a redis_cluster pool follows the cluster's own failover; auto_eject_hosts does not "
           "apply");
    if (pool.db != 0) fail(path + ".db", "Redis Cluster has only database 0");
  } else if (!keys.cluster_only.empty()) {
    fail(keys.cluster_only.front(), "only a redis_cluster pool takes this key");
  }
  // Redis's own limit for one bulk string (proto-max-bulk-len) is 512 MiB.
  if (pool.protocol == Protocol::kRedis && !keys.have_max_value)
    pool.max_value_bytes = 512ull << 20;
}

}  // namespace

PoolConfig parse_pool(const std::string& name, const json& v, const std::string& path) {
  if (!v.is_object()) fail(path, std::string("expected an object, got ") + type_name(v));
  PoolConfig pool;
  pool.name = name;
  PoolKeys keys;
  for (auto& [key, value] : v.items()) {
    if (!is_route_key(key)) parse_pool_key(key, value, path + "." + key, v, pool, keys);
  }
  if (!keys.have_protocol) fail(path, "missing required key \"protocol\"");
  if (!keys.have_listen) fail(path, "missing required key \"listen\"");
  // The hash_tag applies to the whole tree: read it before the routes.
  if (v.contains("hash")) {
    auto kind = routing::parse_hash_name(get_string(v["hash"], path + ".hash"));
    if (kind) pool.hash = *kind;
  }
  parse_route(v, path, pool, pool.route, true);
  pool.source = v.dump();
  check_pool(v, path, pool, keys);
  return pool;
}

}  // namespace dproxy::core::config_parse
