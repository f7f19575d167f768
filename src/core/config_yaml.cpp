// nutcracker (twemproxy 0.5) YAML configs: converted key for key to the equivalent dproxy JSON
// document, which parse_config then validates like any other. yaml-cpp throws on malformed
// input; everything is caught here and turned into one error line naming the key.

#include <yaml-cpp/yaml.h>

#include <charconv>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>

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

json convert_pool(const std::string& name, const YAML::Node& node) {
  if (!node.IsMap())
    fail(name, node, "expected a pool (a mapping of nutcracker keys such as listen, servers)");
  std::set<std::string> seen;
  std::optional<YAML::Node> listen, servers;  // Node is a handle: copies refer to the document
  bool redis = false;
  // nutcracker's defaults (nc_conf.h), written out so that --print-config shows them.
  json pool;
  json settings;  // in the order dproxy's README lists them
  std::string distribution = "ketama", hash = "fnv1a_64";
  std::optional<int64_t> timeout;
  int64_t backlog = 512, server_connections = 1, server_retry_timeout = 30000,
          server_failure_limit = 2, client_connections = 0, redis_db = 0;
  bool preconnect = false, auto_eject_hosts = false, tcpkeepalive = false;
  std::string hash_tag, redis_auth;
  json passthrough = json::object();
  for (const auto& kv : node) {
    std::string key = kv.first.IsScalar() ? kv.first.Scalar() : std::string();
    const std::string p = name + "." + key;
    const YAML::Node& v = kv.second;
    if (!seen.insert(key).second) fail(p, kv.first, "duplicate key");
    if (key == "listen") {
      listen = kv.second;
    } else if (key == "servers") {
      servers = kv.second;
    } else if (key == "redis") {
      redis = boolean(v, p);
    } else if (key == "hash") {
      hash = scalar(v, p, "a hash name");
    } else if (key == "hash_tag") {
      hash_tag = scalar(v, p, "two characters, e.g. \"{}\"");
    } else if (key == "distribution") {
      distribution = scalar(v, p, "ketama, modula or random");
    } else if (key == "timeout") {
      timeout = integer(v, p);
      if (*timeout < 1 || *timeout > 3600 * 1000)
        fail(p, v, "expected milliseconds from 1 to 3600000 (leave it out to wait forever)");
    } else if (key == "backlog") {
      backlog = integer(v, p);
      if (backlog < 1 || backlog > 1000000) fail(p, v, "expected a number from 1 to 1000000");
    } else if (key == "preconnect") {
      preconnect = boolean(v, p);
    } else if (key == "tcpkeepalive") {
      tcpkeepalive = boolean(v, p);
    } else if (key == "auto_eject_hosts") {
      auto_eject_hosts = boolean(v, p);
    } else if (key == "client_connections") {
      client_connections = integer(v, p);
      if (client_connections < 0 || client_connections > 10000000)
        fail(p, v, "expected a number from 0 (no limit) to 10000000");
    } else if (key == "server_connections") {
      server_connections = integer(v, p);
      if (server_connections < 1 || server_connections > 64 * 256)
        fail(p, v, "expected a number from 1 to 16384");
    } else if (key == "server_retry_timeout") {
      server_retry_timeout = integer(v, p);
      if (server_retry_timeout < 1 || server_retry_timeout > 86400 * 1000)
        fail(p, v, "expected milliseconds from 1 to 86400000");
    } else if (key == "server_failure_limit") {
      server_failure_limit = integer(v, p);
      if (server_failure_limit < 1 || server_failure_limit > 1000000)
        fail(p, v, "expected a number from 1 to 1000000");
    } else if (key == "redis_auth") {
      redis_auth = scalar(v, p, "a password");
      if (redis_auth.empty()) fail(p, v, "must not be empty (leave the key out instead)");
    } else if (key == "redis_db") {
      redis_db = integer(v, p);
      if (redis_db < 0 || redis_db > 1000000) fail(p, v, "expected a database number");
    } else if (dproxy_only_keys().count(key)) {
      // A dproxy key in a YAML pool: carried over as JSON (scalars as strings unless numeric or
      // boolean; parse_config checks the types).
      if (v.IsScalar()) {
        const std::string& s = v.Scalar();
        int64_t n = 0;
        auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
        if (!s.empty() && ec == std::errc() && end == s.data() + s.size())
          passthrough[key] = n;
        else if (s == "true" || s == "false")
          passthrough[key] = s == "true";
        else
          passthrough[key] = s;
      } else {
        fail(p, v, "dproxy keys with nested values (children) are written in a JSON config");
      }
    } else {
      fail(p, kv.first,
           "unknown key: not a nutcracker 0.5 pool key (" + std::string(kNutcrackerKeys) +
               ") nor a dproxy pool key that YAML may carry (connect_timeout_ms, "
               "max_value_bytes)");
    }
  }
  if (!listen) fail(name, node, "missing required key \"listen\"");
  if (!servers) fail(name, node, "missing required key \"servers\"");
  pool["protocol"] = redis ? "redis" : "memcached";
  pool["listen"] = scalar(*listen, name + ".listen", "an address, e.g. 127.0.0.1:22121");
  pool["policy"] = distribution;
  pool["hash"] = hash;
  if (!hash_tag.empty()) pool["hash_tag"] = hash_tag;
  // nutcracker without `timeout` waits for a reply forever; with it, a request (including the
  // wait for a connect) gives up after that many milliseconds.
  pool["timeout_ms"] = timeout.value_or(0);
  if (timeout) pool["connect_timeout_ms"] = *timeout;
  pool["backlog"] = backlog;
  pool["preconnect"] = preconnect;
  pool["tcp_keepalive"] = tcpkeepalive;
  pool["client_connections"] = client_connections;
  pool["server_connections_per_process"] = server_connections;
  pool["auto_eject_hosts"] = auto_eject_hosts;
  pool["server_retry_timeout_ms"] = server_retry_timeout;
  pool["server_failure_limit"] = server_failure_limit;
  if (!redis_auth.empty()) {
    if (!redis) fail(name + ".redis_auth", node, "only a redis pool (redis: true) takes this key");
    // nutcracker asks clients for this password and sends it to every server.
    pool["client_password"] = redis_auth;
    pool["server_password"] = redis_auth;
  }
  if (redis_db != 0) {
    if (!redis) fail(name + ".redis_db", node, "only a redis pool (redis: true) takes this key");
    pool["db"] = redis_db;
  }
  for (auto& [k, v] : passthrough.items()) {
    if (k == "connect_timeout_ms" && timeout)
      fail(name + ".connect_timeout_ms", node,
           "nutcracker's timeout already sets it; give one of the two");
    pool[k] = v;
  }
  const std::string sp = name + ".servers";
  if (!servers->IsSequence() || servers->size() == 0)
    fail(sp, *servers, "expected a list of \"host:port:weight [name]\" strings");
  json list = json::array();
  for (size_t i = 0; i < servers->size(); ++i)
    list.push_back(scalar((*servers)[i], sp + "[" + std::to_string(i) + "]",
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
