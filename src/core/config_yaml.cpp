// nutcracker (twemproxy 0.5) YAML configs: converted key for key to the equivalent dproxy JSON
// document, which parse_config then validates like any other. yaml-cpp throws on malformed
// input; everything is caught here and turned into one error line naming the key.

#include <yaml-cpp/yaml.h>

#include <charconv>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <utility>

#include "core/config.h"

namespace dproxy::core {
namespace {

using json = nlohmann::ordered_json;

struct YamlError {
  std::string message;
};

[[noreturn]] void fail(const std::string& path, const YAML::Node& node, const std::string& what) {
  std::string where = path;
  if (node.Mark().line >= 0) where += " (line " + std::to_string(node.Mark().line + 1) + ")";
  throw YamlError{where + ": " + what};
}

std::string scalar(const YAML::Node& v, const std::string& path, const char* expected) {
  if (!v.IsScalar()) fail(path, v, std::string("expected ") + expected);
  return v.Scalar();
}

int64_t integer(const YAML::Node& v, const std::string& path) {
  std::string s = scalar(v, path, "an integer");
  int64_t n = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
  if (s.empty() || ec != std::errc() || end != s.data() + s.size())
    fail(path, v, "expected an integer, got \"" + s + "\"");
  return n;
}

// nutcracker's own parser takes exactly "true" or "false".
bool boolean(const YAML::Node& v, const std::string& path) {
  std::string s = scalar(v, path, "true or false");
  if (s == "true") return true;
  if (s == "false") return false;
  fail(path, v, "expected true or false, got \"" + s + "\"");
}

// dproxy's own pool keys, which a YAML pool may use as well (beside nutcracker's), except those
// that a nutcracker key sets (listed in kNutcrackerKeys).
const std::set<std::string>& dproxy_only_keys() {
  static const std::set<std::string> keys = {
      "connect_timeout_ms", "max_value_bytes", "children",           "write_ack", "read",
      "failover_on_miss",   "reply",           "cluster_refresh_ms", "read_from"};
  return keys;
}

const char kNutcrackerKeys[] =
    "listen, client_connections, tcpkeepalive, hash, hash_tag, distribution, timeout, backlog, "
    "preconnect, redis, redis_auth, redis_db, server_connections, auto_eject_hosts, "
    "server_retry_timeout, server_failure_limit, servers";

// A nutcracker pool as read, with nutcracker's defaults (nc_conf.h), written out so that
// --print-config shows them.
struct NcPool {
  std::optional<YAML::Node> listen, servers;  // Node is a handle: copies refer to the document
  bool redis = false;
  std::string distribution = "ketama", hash = "fnv1a_64";
  std::optional<int64_t> timeout;
  int64_t backlog = 512, server_connections = 1, server_retry_timeout = 30000,
          server_failure_limit = 2, client_connections = 0, redis_db = 0;
  bool preconnect = false, auto_eject_hosts = false, tcpkeepalive = false;
  std::string hash_tag, redis_auth;
  json passthrough = json::object();
};

// nutcracker's integer keys, their ranges and what a value out of range is told.
struct RangedKey {
  const char* key;
  int64_t NcPool::*field;
  int64_t min, max;
  const char* expected;
};
constexpr RangedKey kRangedKeys[] = {
    {"backlog", &NcPool::backlog, 1, 1000000, "expected a number from 1 to 1000000"},
    {"client_connections", &NcPool::client_connections, 0, 10000000,
     "expected a number from 0 (no limit) to 10000000"},
    {"server_connections", &NcPool::server_connections, 1, 64 * 256,
     "expected a number from 1 to 16384"},
    {"server_retry_timeout", &NcPool::server_retry_timeout, 1, 86400 * 1000,
     "expected milliseconds from 1 to 86400000"},
    {"server_failure_limit", &NcPool::server_failure_limit, 1, 1000000,
     "expected a number from 1 to 1000000"},
    {"redis_db", &NcPool::redis_db, 0, 1000000, "expected a database number"},
};

constexpr std::pair<const char*, bool NcPool::*> kBoolKeys[] = {
    {"redis", &NcPool::redis},
    {"preconnect", &NcPool::preconnect},
    {"tcpkeepalive", &NcPool::tcpkeepalive},
    {"auto_eject_hosts", &NcPool::auto_eject_hosts},
};

// A dproxy key in a YAML pool, carried over as JSON (scalars as strings unless numeric or
// boolean; parse_config checks the types).
json passthrough_value(const YAML::Node& v, const std::string& p) {
  if (!v.IsScalar())
    fail(p, v, "dproxy keys with nested values (children) are written in a JSON config");
  const std::string& s = v.Scalar();
  int64_t n = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
  if (!s.empty() && ec == std::errc() && end == s.data() + s.size()) return n;
  if (s == "true" || s == "false") return s == "true";
  return s;
}

// A key from the tables above; false when `key` is none of them.
bool read_table_key(const std::string& key, const YAML::Node& v, const std::string& p, NcPool& nc) {
  for (const auto& k : kRangedKeys) {
    if (key != k.key) continue;
    nc.*k.field = integer(v, p);
    if (nc.*k.field < k.min || nc.*k.field > k.max) fail(p, v, k.expected);
    return true;
  }
  for (const auto& [name, field] : kBoolKeys) {
    if (key != name) continue;
    nc.*field = boolean(v, p);
    return true;
  }
  return false;
}

void read_key(const std::string& key, const YAML::Node& k, const YAML::Node& v,
              const std::string& p, NcPool& nc) {
  if (read_table_key(key, v, p, nc)) return;
  if (key == "listen") {
    nc.listen = v;
  } else if (key == "servers") {
    nc.servers = v;
  } else if (key == "hash") {
    nc.hash = scalar(v, p, "a hash name");
  } else if (key == "hash_tag") {
    nc.hash_tag = scalar(v, p, "two characters, e.g. \"{}\"");
  } else if (key == "distribution") {
    nc.distribution = scalar(v, p, "ketama, modula or random");
  } else if (key == "timeout") {
    nc.timeout = integer(v, p);
    if (*nc.timeout < 1 || *nc.timeout > 3600 * 1000)
      fail(p, v, "expected milliseconds from 1 to 3600000 (leave it out to wait forever)");
  } else if (key == "redis_auth") {
    nc.redis_auth = scalar(v, p, "a password");
    if (nc.redis_auth.empty()) fail(p, v, "must not be empty (leave the key out instead)");
  } else if (dproxy_only_keys().count(key)) {
    nc.passthrough[key] = passthrough_value(v, p);
  } else {
    fail(p, k,
         "unknown key: not a nutcracker 0.5 pool key (" + std::string(kNutcrackerKeys) +
             ") nor a dproxy pool key that YAML may carry (connect_timeout_ms, "
             "max_value_bytes)");
  }
}

// The dproxy pool object for a nutcracker pool, in the order dproxy's README lists the keys.
json to_dproxy_pool(const std::string& name, const YAML::Node& node, const NcPool& nc) {
  json pool;
  pool["protocol"] = nc.redis ? "redis" : "memcached";
  pool["listen"] = scalar(*nc.listen, name + ".listen", "an address, e.g. 127.0.0.1:22121");
  pool["policy"] = nc.distribution;
  pool["hash"] = nc.hash;
  if (!nc.hash_tag.empty()) pool["hash_tag"] = nc.hash_tag;
  // nutcracker without `timeout` waits for a reply forever; with it, a request (including the
  // wait for a connect) gives up after that many milliseconds.
  pool["timeout_ms"] = nc.timeout.value_or(0);
  if (nc.timeout) pool["connect_timeout_ms"] = *nc.timeout;
  pool["backlog"] = nc.backlog;
  pool["preconnect"] = nc.preconnect;
  pool["tcp_keepalive"] = nc.tcpkeepalive;
  pool["client_connections"] = nc.client_connections;
  pool["server_connections_per_process"] = nc.server_connections;
  pool["auto_eject_hosts"] = nc.auto_eject_hosts;
  pool["server_retry_timeout_ms"] = nc.server_retry_timeout;
  pool["server_failure_limit"] = nc.server_failure_limit;
  if (!nc.redis_auth.empty()) {
    if (!nc.redis)
      fail(name + ".redis_auth", node, "only a redis pool (redis: true) takes this key");
    // nutcracker asks clients for this password and sends it to every server.
    pool["client_password"] = nc.redis_auth;
    pool["server_password"] = nc.redis_auth;
  }
  if (nc.redis_db != 0) {
    if (!nc.redis) fail(name + ".redis_db", node, "only a redis pool (redis: true) takes this key");
    pool["db"] = nc.redis_db;
  }
  for (auto& [k, v] : nc.passthrough.items()) {
    if (k == "connect_timeout_ms" && nc.timeout)
      fail(name + ".connect_timeout_ms", node,
           "nutcracker's timeout already sets it; give one of the two");
    pool[k] = v;
  }
  return pool;
}

json convert_pool(const std::string& name, const YAML::Node& node) {
  if (!node.IsMap())
    fail(name, node, "expected a pool (a mapping of nutcracker keys such as listen, servers)");
  std::set<std::string> seen;
  NcPool nc;
  for (const auto& kv : node) {
    std::string key = kv.first.IsScalar() ? kv.first.Scalar() : std::string();
    const std::string p = name + "." + key;
    if (!seen.insert(key).second) fail(p, kv.first, "duplicate key");
    read_key(key, kv.first, kv.second, p, nc);
  }
  if (!nc.listen) fail(name, node, "missing required key \"listen\"");
  if (!nc.servers) fail(name, node, "missing required key \"servers\"");
  json pool = to_dproxy_pool(name, node, nc);
  const std::string sp = name + ".servers";
  const YAML::Node& servers = *nc.servers;
  if (!servers.IsSequence() || servers.size() == 0)
    fail(sp, servers, "expected a list of \"host:port:weight [name]\" strings");
  json list = json::array();
  for (size_t i = 0; i < servers.size(); ++i)
    list.push_back(scalar(servers[i], sp + "[" + std::to_string(i) + "]",
                          "a \"host:port:weight [name]\" string"));
  pool["servers"] = std::move(list);
  return pool;
}

}  // namespace

std::string yaml_error_path(const std::string& error) {
  // "pools.NAME.KEY...: message" from parse_config, for a document converted from YAML: name
  // the nutcracker key the user wrote.
  static const std::pair<const char*, const char*> kBack[] = {
      {"policy", "distribution"},
      {"timeout_ms", "timeout"},
      {"connect_timeout_ms", "timeout"},
      {"tcp_keepalive", "tcpkeepalive"},
      {"server_connections_per_process", "server_connections"},
      {"server_retry_timeout_ms", "server_retry_timeout"},
      {"client_password", "redis_auth"},
      {"server_password", "redis_auth"},
      {"db", "redis_db"},
      {"protocol", "redis"},
  };
  if (error.rfind("pools.", 0) != 0) return error;
  std::string rest = error.substr(6);
  size_t colon = rest.find(": ");
  if (colon == std::string::npos) return error;
  std::string path = rest.substr(0, colon);
  size_t dot = path.find('.');
  if (dot == std::string::npos) return rest;
  std::string key = path.substr(dot + 1);
  size_t key_end = key.find_first_of(".[");
  std::string head = key.substr(0, key_end);
  for (const auto& [dp, nc] : kBack) {
    if (head == dp)
      return path.substr(0, dot + 1) + nc +
             (key_end == std::string::npos ? "" : key.substr(key_end)) + rest.substr(colon);
  }
  return rest;
}

bool nutcracker_yaml_to_json(const std::string& text, std::string& json_out, std::string& error) {
  try {
    YAML::Node doc = YAML::Load(text);
    if (!doc.IsMap() || doc.size() == 0)
      throw YamlError{
          "(top level): expected nutcracker pools (a mapping of pool name to pool), got " +
          std::string(doc.IsNull() ? "an empty document" : "something else")};
    json pools = json::object();
    std::set<std::string> names;
    for (const auto& kv : doc) {
      if (!kv.first.IsScalar() || kv.first.Scalar().empty())
        fail("(top level)", kv.first, "a pool name must be a plain string");
      const std::string name = kv.first.Scalar();
      if (!names.insert(name).second) fail(name, kv.first, "duplicate pool name");
      pools[name] = convert_pool(name, kv.second);
    }
    json doc_out;
    doc_out["pools"] = std::move(pools);
    json_out = doc_out.dump(2) + "\n";
    return true;
  } catch (const YamlError& e) {
    error = e.message;
  } catch (const YAML::Exception& e) {
    error = std::string("invalid YAML: ") + e.what();
  } catch (const std::exception& e) {
    error = std::string("invalid YAML: ") + e.what();
  }
  return false;
}

}  // namespace dproxy::core
