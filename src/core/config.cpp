#include "core/config.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

namespace dproxy::core {
namespace {

// ordered_json keeps pools in file order (they are listed and started in that order).
using json = nlohmann::ordered_json;

// Thrown only inside config loading (never on the data path) and turned into `error`.
struct ConfigError {
  std::string message;
};

[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw ConfigError{path + ": " + what};
}

std::string json_quote(const std::string& s) {
  return json(s).dump();
}

const char* type_name(const json& v) {
  return v.type_name();
}

bool parse_u64(std::string_view s, uint64_t& out) {
  if (s.empty()) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && p == s.data() + s.size();
}

uint64_t get_uint(const json& v, const std::string& path, uint64_t min, uint64_t max) {
  if (!v.is_number_integer() ||
      (v.is_number_integer() && !v.is_number_unsigned() && v.get<int64_t>() < 0))
    fail(path, std::string("expected a non-negative integer, got ") +
                   (v.is_number() ? v.dump() : type_name(v)));
  uint64_t n = v.get<uint64_t>();
  if (n < min || n > max)
    fail(path,
         v.dump() + " is out of range [" + std::to_string(min) + ", " + std::to_string(max) + "]");
  return n;
}

const std::string& get_string(const json& v, const std::string& path) {
  if (!v.is_string()) fail(path, std::string("expected a string, got ") + type_name(v));
  return v.get_ref<const std::string&>();
}

bool is_ip_address(const std::string& host) {
  unsigned char buf[sizeof(in6_addr)];
  return inet_pton(AF_INET, host.c_str(), buf) == 1 || inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

// "ip:port", "[ipv6]:port" or "/path/to/socket".
ListenAddress parse_listen(const std::string& s, const std::string& path) {
  ListenAddress a;
  if (!s.empty() && s[0] == '/') {
    a.host = s;
    a.is_unix = true;
    // nutcracker's "/path/to/socket 0666": the socket file's permissions, in octal.
    auto space = s.rfind(' ');
    if (space != std::string::npos) {
      std::string mode = s.substr(space + 1);
      uint32_t m = 0;
      auto [end, ec] = std::from_chars(mode.data(), mode.data() + mode.size(), m, 8);
      if (mode.empty() || ec != std::errc() || end != mode.data() + mode.size() || m > 0777 ||
          m == 0)
        fail(path, json_quote(s) +
                       " is not a unix socket path optionally followed by an octal mode, e.g. "
                       "\"/run/dproxy.sock 0666\"");
      a.host = s.substr(0, space);
      a.mode = m;
    }
    return a;
  }
  const std::string bad =
      json_quote(s) + " is not ip:port, [ipv6]:port or an absolute unix socket path";
  auto colon = s.rfind(':');
  uint64_t port = 0;
  if (colon == std::string::npos || colon == 0 ||
      !parse_u64(std::string_view(s).substr(colon + 1), port) || port == 0 || port > 65535)
    fail(path, bad);
  a.host = s.substr(0, colon);
  if (a.host.size() > 2 && a.host.front() == '[' && a.host.back() == ']')
    a.host = a.host.substr(1, a.host.size() - 2);
  if (!is_ip_address(a.host))
    fail(path, json_quote(a.host) + " is not an IP address (listen takes a numeric address)");
  a.port = static_cast<uint16_t>(port);
  return a;
}

// "host:port[:weight] [name]" or "/socket/path[:weight] [name]".
routing::ServerSpec parse_server_string(const std::string& s, const std::string& path) {
  const std::string bad = json_quote(s) + " is not host:port[:weight] [name]";
  routing::ServerSpec spec;
  std::string addr = s;
  auto space = s.find(' ');
  if (space != std::string::npos) {
    addr = s.substr(0, space);
    spec.name = s.substr(space + 1);
    if (spec.name.empty() || spec.name.find(' ') != std::string::npos) fail(path, bad);
  }
  std::vector<std::string> parts;
  size_t start = 0;
  std::string bracketed;  // an IPv6 literal: "[::1]:11211[:weight]"
  if (!addr.empty() && addr[0] == '[') {
    auto close = addr.find(']');
    if (close == std::string::npos || close + 1 >= addr.size() || addr[close + 1] != ':')
      fail(path, bad);
    bracketed = addr.substr(1, close - 1);
    unsigned char buf[sizeof(in6_addr)];
    if (inet_pton(AF_INET6, bracketed.c_str(), buf) != 1)
      fail(path, json_quote(s) + ": \"" + bracketed + "\" is not an IPv6 address");
    parts.push_back(bracketed);
    start = close + 2;
  }
  while (true) {
    auto c = addr.find(':', start);
    parts.push_back(addr.substr(start, c == std::string::npos ? std::string::npos : c - start));
    if (c == std::string::npos) break;
    start = c + 1;
  }
  uint64_t n = 0;
  if (!addr.empty() && addr[0] == '/') {
    if (parts.size() > 2) fail(path, bad);
    spec.host = parts[0];
    spec.port = 0;
    if (parts.size() == 2) {
      if (!parse_u64(parts[1], n) || n > 1000000) fail(path, bad);
      spec.weight = static_cast<uint32_t>(n);
    }
    return spec;
  }
  if (parts.size() < 2 || parts.size() > 3 || parts[0].empty()) fail(path, bad);
  spec.host = parts[0];
  if (!parse_u64(parts[1], n) || n == 0 || n > 65535) fail(path, bad);
  spec.port = static_cast<uint16_t>(n);
  if (parts.size() == 3) {
    if (!parse_u64(parts[2], n) || n > 1000000) fail(path, bad);
    spec.weight = static_cast<uint32_t>(n);
  }
  return spec;
}

routing::ServerSpec parse_server(const json& v, const std::string& path) {
  if (v.is_string()) return parse_server_string(v.get<std::string>(), path);
  if (!v.is_object())
    fail(path, std::string("expected a server string or object, got ") + type_name(v));
  routing::ServerSpec spec;
  bool have_address = false;
  for (auto& [key, value] : v.items()) {
    std::string p = path + "." + key;
    if (key == "address") {
      const std::string& a = get_string(value, p);
      routing::ServerSpec parsed = parse_server_string(a, p);
      // Colons after an IPv6 literal's "]" (or in the whole address).
      auto bracket = a.find(']');
      long colons = a.empty() ? 0
                    : a[0] == '[' && bracket != std::string::npos
                        ? std::count(a.begin() + static_cast<long>(bracket), a.end(), ':')
                        : std::count(a.begin(), a.end(), ':');
      if (!parsed.name.empty() || colons != (a[0] == '/' ? 0 : 1))
        fail(p, json_quote(a) +
                    " is not host:port or a socket path (weight and name have keys of their own)");
      spec.host = parsed.host;
      spec.port = parsed.port;
      have_address = true;
    } else if (key == "weight") {
      spec.weight = static_cast<uint32_t>(get_uint(value, p, 0, 1000000));
    } else if (key == "name") {
      spec.name = get_string(value, p);
      if (spec.name.empty() || spec.name.find_first_of(" \t\r\n") != std::string::npos)
        fail(p, json_quote(spec.name) + " must be non-empty and contain no whitespace");
    } else {
      fail(p, "unknown key (expected address, weight, name)");
    }
  }
  if (!have_address) fail(path, "missing required key \"address\"");
  return spec;
}

// Edits (insert, delete, replace, swap two neighbours) that turn a into b.
size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<std::vector<size_t>> d(a.size() + 1, std::vector<size_t>(b.size() + 1));
  for (size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[a.size()][b.size()];
}

// "unknown key" with a hint: nutcracker's name for a dproxy key, or the known key it is
// closest to (a typo), or else the list of known keys.
std::string unknown_key(const std::string& key, const std::vector<std::string>& known) {
  static const std::pair<const char*, const char*> kNutcracker[] = {
      {"distribution", "use \"policy\" (ketama, modula, random)"},
      {"timeout",
       "use \"timeout_ms\" (dproxy's default is 1000; 0 waits forever as nutcracker "
       "does without timeout)"},
      {"redis", "use \"protocol\": \"redis\""},
      {"redis_auth",
       "use \"client_password\" (clients must AUTH) and \"server_password\" "
       "(sent to every server); nutcracker's redis_auth is both"},
      {"redis_db", "use \"db\""},
      {"server_retry_timeout", "use \"server_retry_timeout_ms\""},
      {"tcpkeepalive", "use \"tcp_keepalive\""},
      {"servers_connections", "use \"server_connections\""},
  };
  for (const auto& [nc, hint] : kNutcracker)
    if (key == nc) return "unknown key: \"" + key + "\" is nutcracker's name; " + hint;
  for (const auto& k : known)  // a unit left out: "connect_timeout" for "connect_timeout_ms"
    if (k.starts_with(key + "_")) return "unknown key (did you mean \"" + k + "\"?)";
  std::string best;
  size_t best_d = 3;  // at most 2 edits, and fewer than half the key
  for (const auto& k : known) {
    size_t d = edit_distance(key, k);
    if (d < best_d && d * 2 < key.size()) {
      best_d = d;
      best = k;
    }
  }
  if (!best.empty()) return "unknown key (did you mean \"" + best + "\"?)";
  std::string list;
  for (const auto& k : known) list += (list.empty() ? "" : ", ") + k;
  return "unknown key (expected " + list + ")";
}

bool is_route_key(const std::string& key) {
  return key == "policy" || key == "hash" || key == "servers" || key == "children" ||
         key == "write_ack" || key == "read" || key == "failover_on_miss" || key == "reply";
}

routing::AckMode parse_ack(const json& v, const std::string& path) {
  const std::string& s = get_string(v, path);
  if (s == "all") return routing::AckMode::kAll;
  if (s == "majority") return routing::AckMode::kMajority;
  if (s == "one" || s == "first") {
    // write_ack takes "one", reply takes "first"; both mean "the first success".
    return routing::AckMode::kOne;
  }
  fail(path, json_quote(s) + " is not one of all, majority, " +
                 (path.ends_with(".reply") ? "first" : "one"));
}

// Adds a server to the pool's flat server list; returns its index.
uint32_t add_server(PoolConfig& pool, const json& v, const std::string& path) {
  routing::ServerSpec spec = parse_server(v, path);
  for (const auto& other : pool.servers) {
    if (!spec.name.empty() && spec.name == other.name)
      fail(path, "duplicate server name " + json_quote(spec.name));
    if (spec.address() == other.address())
      fail(path, "duplicate server address " + json_quote(spec.address()));
  }
  pool.servers.push_back(std::move(spec));
  pool.server_paths.push_back(path);
  return static_cast<uint32_t>(pool.servers.size() - 1);
}

// Checks a shard node's servers: names unique for ketama, some weight.
void check_shard(const PoolConfig& pool, const routing::RouteSpec& spec, const std::string& path) {
  std::vector<routing::ServerSpec> members;
  uint64_t total_weight = 0;
  for (uint32_t i : spec.servers) {
    members.push_back(pool.servers[i]);
    total_weight += pool.servers[i].weight;
  }
  if (auto dup = routing::duplicate_ketama_name(members))
    fail(path, "two servers share the ketama name " + json_quote(*dup) +
                   " (twemproxy refuses this too; give them distinct names)");
  if (total_weight == 0) fail(path, "every server has weight 0: no key could be placed");
}

// Reads the route keys of a pool (root) or of a nested route object into `spec`; servers go
// into the pool's flat list. A nested route object takes only route keys.
void parse_route(const json& obj, const std::string& path, PoolConfig& pool,
                 routing::RouteSpec& spec, bool root) {
  spec.policy = "ketama";
  spec.hash = pool.hash;
  spec.hash_tag = pool.hash_tag;
  if (obj.contains("policy")) {
    const std::string p = path + ".policy";
    spec.policy = get_string(obj["policy"], p);
    if (!routing::policy_known(spec.policy))
      fail(p, json_quote(spec.policy) + " is not a policy (expected " +
                  std::string(routing::route_policy_names()) + ")");
    if (!root && spec.policy == "redis_cluster")
      fail(p, "redis_cluster is a pool policy; it cannot be a child route");
  }
  if (obj.contains("hash")) {
    const std::string p = path + ".hash";
    const std::string& s = get_string(obj["hash"], p);
    auto kind = routing::parse_hash_name(s);
    if (!kind)
      fail(p, json_quote(s) + " is not a hash (expected one of " +
                  std::string(routing::all_hash_names()) + ")");
    spec.hash = *kind;
  }
  const bool takes_children = routing::policy_takes_children(spec.policy);
  bool have_servers = false, have_children = false;
  for (auto& [key, value] : obj.items()) {
    const std::string p = path + "." + key;
    if (!is_route_key(key)) {
      if (!root)
        fail(p,
             "unknown key in a route (expected policy, hash, servers, children, write_ack, "
             "read, failover_on_miss, reply)");
      continue;
    }
    if (key == "servers") {
      if (takes_children)
        fail(p, "a " + spec.policy + " route takes \"children\", not \"servers\"");
      if (!value.is_array()) fail(p, std::string("expected an array, got ") + type_name(value));
      if (value.empty())
        fail(p, std::string(root ? "a pool" : "a route") + " needs at least one server");
      for (size_t i = 0; i < value.size(); ++i)
        spec.servers.push_back(add_server(pool, value[i], p + "[" + std::to_string(i) + "]"));
      have_servers = true;
    } else if (key == "children") {
      if (!takes_children)
        fail(p, "a " + spec.policy + " route takes \"servers\", not \"children\"");
      if (!value.is_array()) fail(p, std::string("expected an array, got ") + type_name(value));
      if (value.empty()) fail(p, "a " + spec.policy + " route needs at least one child");
      for (size_t i = 0; i < value.size(); ++i) {
        const std::string cp = p + "[" + std::to_string(i) + "]";
        const json& c = value[i];
        routing::RouteSpec child;
        if (c.is_string() || (c.is_object() && c.contains("address"))) {
          // A server: a one-server shard.
          child.policy = "ketama";
          child.hash = spec.hash;
          child.hash_tag = spec.hash_tag;
          child.servers.push_back(add_server(pool, c, cp));
        } else if (c.is_object()) {
          parse_route(c, cp, pool, child, false);
          if (routing::policy_takes_children(child.policy))
            fail(cp + ".policy",
                 "a replicated or fanout route cannot be nested inside another replicated or "
                 "fanout route (children are servers or ketama/modula/random routes)");
        } else {
          fail(cp, std::string("expected a server (\"host:port\" or {\"address\": ...}) or a "
                               "route ({\"policy\": ...}), got ") +
                       type_name(c));
        }
        spec.children.push_back(std::move(child));
      }
      have_children = true;
    } else if (key == "write_ack" || key == "read" || key == "failover_on_miss") {
      if (spec.policy != "replicated")
        fail(p, "only a replicated route takes " + key + " (this one is " + spec.policy + ")");
      if (key == "write_ack") {
        if (value.is_string() && value.get<std::string>() == "first")
          fail(p, "\"first\" is not one of all, majority, one");
        spec.write_ack = parse_ack(value, p);
      } else if (key == "read") {
        const std::string& s = get_string(value, p);
        if (s == "first") {
          spec.read = routing::ReadMode::kFirst;
        } else if (s == "round_robin") {
          spec.read = routing::ReadMode::kRoundRobin;
        } else if (s == "hash") {
          spec.read = routing::ReadMode::kHash;
        } else {
          fail(p, json_quote(s) + " is not one of first, round_robin, hash");
        }
      } else {
        if (!value.is_boolean())
          fail(p, std::string("expected true or false, got ") + type_name(value));
        spec.failover_on_miss = value.get<bool>();
      }
    } else if (key == "reply") {
      if (spec.policy != "fanout")
        fail(p, "only a fanout route takes reply (this one is " + spec.policy + ")");
      if (value.is_string() && value.get<std::string>() == "one")
        fail(p, "\"one\" is not one of all, majority, first");
      spec.reply = parse_ack(value, p);
    }
  }
  if (takes_children && !have_children) fail(path, "missing required key \"children\"");
  if (!takes_children) {
    if (!have_servers) fail(path, "missing required key \"servers\"");
    check_shard(pool, spec, path + ".servers");
  }
}

PoolConfig parse_pool(const std::string& name, const json& v, const std::string& path) {
  if (!v.is_object()) fail(path, std::string("expected an object, got ") + type_name(v));
  PoolConfig pool;
  pool.name = name;
  bool have_listen = false, have_protocol = false;
  std::vector<std::string> redis_only;      // paths of keys that only a redis pool takes
  std::vector<std::string> memcached_only;  // and that only a memcached pool takes
  std::vector<std::string> cluster_only;    // paths of keys that only a redis_cluster pool takes
  bool have_max_value = false;
  for (auto& [key, value] : v.items()) {
    std::string p = path + "." + key;
    if (is_route_key(key)) {
      continue;  // parse_route below
    } else if (key == "protocol") {
      const std::string& s = get_string(value, p);
      if (s == "memcached") {
        pool.protocol = Protocol::kMemcached;
      } else if (s == "redis") {
        pool.protocol = Protocol::kRedis;
      } else {
        fail(p, json_quote(s) + " is not a protocol (expected \"memcached\" or \"redis\")");
      }
      have_protocol = true;
    } else if (key == "listen") {
      pool.listen = parse_listen(get_string(value, p), p);
      have_listen = true;
    } else if (key == "hash_tag") {
      const std::string& s = get_string(value, p);
      if (s.size() != 2) fail(p, json_quote(s) + " must be exactly two characters, e.g. \"{}\"");
      pool.hash_tag = s;
    } else if (key == "timeout_ms") {
      pool.timeout_ms = static_cast<uint32_t>(get_uint(value, p, 0, 3600 * 1000));
    } else if (key == "backlog") {
      pool.backlog = static_cast<uint32_t>(get_uint(value, p, 0, 1000000));
    } else if (key == "preconnect" || key == "tcp_keepalive") {
      if (!value.is_boolean())
        fail(p, std::string("expected true or false, got ") + type_name(value));
      (key == "preconnect" ? pool.preconnect : pool.tcp_keepalive) = value.get<bool>();
    } else if (key == "server_connections_per_process") {
      if (v.contains("server_connections"))
        fail(p,
             "give server_connections (per worker thread) or server_connections_per_process, "
             "not both");
      pool.server_connections_per_process = static_cast<uint32_t>(get_uint(value, p, 1, 64 * 256));
    } else if (key == "connect_timeout_ms") {
      pool.connect_timeout_ms = static_cast<uint32_t>(get_uint(value, p, 1, 3600 * 1000));
    } else if (key == "server_failure_limit") {
      pool.server_failure_limit = static_cast<uint32_t>(get_uint(value, p, 1, 1000000));
    } else if (key == "server_retry_timeout_ms") {
      pool.server_retry_timeout_ms = static_cast<uint32_t>(get_uint(value, p, 1, 86400 * 1000));
    } else if (key == "auto_eject_hosts") {
      if (!value.is_boolean())
        fail(p, std::string("expected true or false, got ") + type_name(value));
      pool.auto_eject_hosts = value.get<bool>();
    } else if (key == "client_connections") {
      pool.client_connections = static_cast<uint32_t>(get_uint(value, p, 0, 10000000));
    } else if (key == "server_connections") {
      pool.server_connections = static_cast<uint32_t>(get_uint(value, p, 1, 64));
    } else if (key == "max_value_bytes") {
      pool.max_value_bytes = get_uint(value, p, 1, 512ull * 1024 * 1024);
      have_max_value = true;
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
      memcached_only.push_back(p);
    } else if (key == "client_password" || key == "server_password") {
      const std::string& pw = get_string(value, p);
      if (pw.empty()) fail(p, "must not be empty (leave the key out instead)");
      (key == "client_password" ? pool.client_password : pool.server_password) = pw;
      redis_only.push_back(p);
    } else if (key == "db") {
      pool.db = static_cast<uint32_t>(get_uint(value, p, 0, 1000000));
      redis_only.push_back(p);
    } else if (key == "cluster_refresh_ms") {
      pool.cluster_refresh_ms = static_cast<uint32_t>(get_uint(value, p, 100, 3600 * 1000));
      cluster_only.push_back(p);
    } else if (key == "read_from") {
      const std::string& s = get_string(value, p);
      if (s == "master") {
        pool.read_from = ReadFrom::kMaster;
      } else if (s == "replica") {
        pool.read_from = ReadFrom::kReplica;
      } else if (s == "any") {
        pool.read_from = ReadFrom::kAny;
      } else {
        fail(p, json_quote(s) + " is not one of master, replica, any");
      }
      cluster_only.push_back(p);
    } else {
      fail(p, unknown_key(key, {"protocol",
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
                                "db",
                                "children",
                                "write_ack",
                                "read",
                                "failover_on_miss",
                                "reply",
                                "cluster_refresh_ms",
                                "read_from"}));
    }
  }
  if (!have_protocol) fail(path, "missing required key \"protocol\"");
  if (!have_listen) fail(path, "missing required key \"listen\"");
  // The hash_tag applies to the whole tree: read it before the routes.
  if (v.contains("hash")) {
    auto kind = routing::parse_hash_name(get_string(v["hash"], path + ".hash"));
    if (kind) pool.hash = *kind;
  }
  parse_route(v, path, pool, pool.route, true);
  pool.source = v.dump();
  if (pool.protocol != Protocol::kRedis && !redis_only.empty())
    fail(redis_only.front(), "only a redis pool takes this key");
  if (pool.protocol != Protocol::kMemcached && !memcached_only.empty())
    fail(memcached_only.front(), "only a memcached pool takes this key");
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
  } else if (!cluster_only.empty()) {
    fail(cluster_only.front(), "only a redis_cluster pool takes this key");
  }
  // Redis's own limit for one bulk string (proto-max-bulk-len) is 512 MiB.
  if (pool.protocol == Protocol::kRedis && !have_max_value) pool.max_value_bytes = 512ull << 20;
  return pool;
}

}  // namespace

std::string ListenAddress::to_string() const {
  if (is_unix) return host;
  if (host.find(':') != std::string::npos) return "[" + host + "]:" + std::to_string(port);
  return host + ":" + std::to_string(port);
}

bool parse_config(const std::string& text, Config& out, std::string& error) {
  try {
    // Duplicate keys are errors: with plain JSON parsing the last one would silently win.
    std::vector<std::pair<std::string, std::set<std::string>>> objects;  // (path, keys seen)
    std::string pending_key;
    json::parser_callback_t reject_duplicates = [&](int, json::parse_event_t event, json& parsed) {
      switch (event) {
        case json::parse_event_t::object_start: {
          std::string p = objects.empty() ? "" : objects.back().first;
          if (!pending_key.empty()) p = p.empty() ? pending_key : p + "." + pending_key;
          objects.push_back({p, {}});
          pending_key.clear();
          break;
        }
        case json::parse_event_t::object_end:
          objects.pop_back();
          break;
        case json::parse_event_t::key: {
          const std::string& k = parsed.get_ref<const std::string&>();
          auto& [p, seen] = objects.back();
          if (!seen.insert(k).second)
            fail(p.empty() ? std::string("(top level)") : p, "duplicate key " + json_quote(k));
          pending_key = k;
          break;
        }
        case json::parse_event_t::array_start:
          pending_key.clear();
          break;
        default:
          break;
      }
      return true;
    };
    json doc = json::parse(text, reject_duplicates);
    if (!doc.is_object())
      fail("(top level)", std::string("expected an object, got ") + type_name(doc));
    bool have_pools = false;
    std::set<std::string> listens;
    for (auto& [key, value] : doc.items()) {
      if (key == "pools") {
        if (!value.is_object())
          fail("pools",
               std::string("expected an object keyed by pool name, got ") + type_name(value));
        if (value.empty()) fail("pools", "no pools defined");
        for (auto& [name, pool] : value.items()) {
          std::string p = "pools." + name;
          out.pools.push_back(parse_pool(name, pool, p));
          if (!listens.insert(out.pools.back().listen.to_string()).second)
            fail(p + ".listen", json_quote(out.pools.back().listen.to_string()) +
                                    " is already used by another pool");
        }
        have_pools = true;
      } else if (key == "shutdown_timeout_ms") {
        out.shutdown_timeout_ms = static_cast<uint32_t>(get_uint(value, key, 0, 3600 * 1000));
      } else if (key == "resolve_interval_ms") {
        out.resolve_interval_ms = static_cast<uint32_t>(get_uint(value, key, 0, 86400 * 1000));
      } else if (key == "stats") {
        if (!value.is_object())
          fail(key, std::string("expected an object like {\"listen\": \"127.0.0.1:22222\"}, got ") +
                        type_name(value));
        for (auto& [skey, svalue] : value.items()) {
          const std::string sp = "stats." + skey;
          if (skey == "listen") {
            out.stats_listen = parse_listen(get_string(svalue, sp), sp);
            if (out.stats_listen.is_unix) fail(sp, "the stats listener takes ip:port");
            out.stats_configured = true;
          } else if (skey == "enabled") {
            if (!svalue.is_boolean())
              fail(sp, std::string("expected true or false, got ") + type_name(svalue));
            out.stats_enabled = svalue.get<bool>();
          } else {
            fail(sp, unknown_key(skey, {"listen", "enabled"}));
          }
        }
      } else {
        if (value.is_object() && (value.contains("listen") || value.contains("servers")))
          fail(key,
               "unknown top-level key: it looks like a pool; pools go inside \"pools\": "
               "{...} (a nutcracker YAML file is read as such when named *.yml or *.yaml)");
        std::string message =
            unknown_key(key, {"pools", "shutdown_timeout_ms", "resolve_interval_ms", "stats"});
        fail(key, "unknown top-level key" + message.substr(std::string("unknown key").size()));
      }
    }
    if (!have_pools) fail("(top level)", "missing required key \"pools\"");
    if (out.stats_enabled && listens.count(out.stats_listen.to_string()))
      fail(out.stats_configured ? "stats.listen" : "stats",
           json_quote(out.stats_listen.to_string()) + " is a pool's listen address" +
               (out.stats_configured ? "" : " (the stats listener's default)"));
    return true;
  } catch (const ConfigError& e) {
    error = e.message;
  } catch (const nlohmann::json::exception& e) {
    error = std::string("invalid JSON: ") + e.what();
  }
  out = Config{};
  return false;
}

bool is_yaml_config(const std::string& path, const std::string& text) {
  std::string ext = std::filesystem::path(path).extension().string();
  if (ext == ".json") return false;
  if (ext == ".yml" || ext == ".yaml") return true;
  size_t first = text.find_first_not_of(" \t\r\n");
  // A UTF-8 byte order mark may precede a JSON document.
  if (first != std::string::npos && text.compare(first, 3, "\xEF\xBB\xBF") == 0)
    first = text.find_first_not_of(" \t\r\n", first + 3);
  return first != std::string::npos && text[first] != '{';
}

namespace {

bool read_file(const std::string& path, std::string& text, std::string& error) {
  std::error_code fs_error;
  if (std::filesystem::is_directory(path, fs_error)) {
    error = path + ": cannot read config file: " + std::strerror(EISDIR);
    return false;
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    error = path + ": cannot read config file: " + std::strerror(errno);
    return false;
  }
  std::stringstream ss;
  ss << in.rdbuf();
  text = ss.str();
  return true;
}

// Reads `path` as dproxy JSON text (YAML converted); errors are prefixed with the path.
bool read_as_json(const std::string& path, std::string& text, std::string& error,
                  bool* yaml = nullptr) {
  if (!read_file(path, text, error)) return false;
  if (yaml != nullptr) *yaml = false;
  if (!is_yaml_config(path, text)) return true;
  if (yaml != nullptr) *yaml = true;
  std::string converted;
  if (!nutcracker_yaml_to_json(text, converted, error)) {
    error = path + ": " + error;
    return false;
  }
  text = std::move(converted);
  return true;
}

}  // namespace

bool config_file_as_json(const std::string& path, std::string& json_out, std::string& error) {
  std::string text;
  bool yaml = false;
  if (!read_as_json(path, text, error, &yaml)) return false;
  Config check;
  if (!parse_config(text, check, error)) {
    error = path + ": " + (yaml ? yaml_error_path(error) : error);
    return false;
  }
  json_out = json::parse(text).dump(2) + "\n";
  return true;
}

void apply_overrides(Config& config, const ConfigOverrides& overrides) {
  for (auto& pool : config.pools) {
    if (pool.server_connections_per_process == 0) continue;
    unsigned threads = std::max(1u, overrides.threads);
    pool.server_connections =
        std::max<uint32_t>(1, (pool.server_connections_per_process + threads - 1) / threads);
  }
  if (!overrides.stats_addr.empty()) {
    config.stats_listen.host = overrides.stats_addr;
    config.stats_configured = true;
  }
  if (overrides.stats_port != 0) {
    config.stats_listen.port = static_cast<uint16_t>(overrides.stats_port);
    config.stats_configured = true;
  }
  if (!overrides.stats_addr.empty() || overrides.stats_port != 0) config.stats_enabled = true;
}

bool load_config(const std::string& path, Config& out, std::string& error) {
  std::string text;
  bool yaml = false;
  if (!read_as_json(path, text, error, &yaml)) return false;
  if (!parse_config(text, out, error)) {
    error = path + ": " + (yaml ? yaml_error_path(error) : error);
    return false;
  }
  return true;
}

std::string describe_config(const Config& config) {
  std::ostringstream os;
  if (config.stats_enabled)
    os << "stats: listen=" << config.stats_listen.to_string()
       << (config.stats_configured ? "" : " (default)") << "\n";
  else
    os << "stats: disabled\n";
  for (const auto& p : config.pools) {
    const std::string& policy = p.route.policy;
    os << "pool " << p.name
       << ": protocol=" << (p.protocol == Protocol::kMemcached ? "memcached" : "redis")
       << " listen=" << p.listen.to_string() << " policy=" << policy;
    if (policy != "redis_cluster") os << " hash=" << routing::hash_name(p.hash);
    if (!p.hash_tag.empty()) os << " hash_tag=" << p.hash_tag;
    os << " timeout_ms=" << p.timeout_ms << " connect_timeout_ms=" << p.connect_timeout_ms
       << " server_failure_limit=" << p.server_failure_limit
       << " server_retry_timeout_ms=" << p.server_retry_timeout_ms
       << " auto_eject_hosts=" << (p.auto_eject_hosts ? "true" : "false")
       << " client_connections=" << p.client_connections
       << " server_connections=" << p.server_connections;
    if (p.server_connections_per_process != 0)
      os << " (per worker thread, from server_connections_per_process="
         << p.server_connections_per_process << ")";
    os << " max_value_bytes=" << p.max_value_bytes << " servers=" << p.servers.size();
    if (p.backlog != 0) os << " backlog=" << p.backlog;
    if (p.preconnect) os << " preconnect=true";
    if (p.tcp_keepalive) os << " tcp_keepalive=true";
    if (p.listen.mode != 0) {
      char mode[16];
      std::snprintf(mode, sizeof mode, "%04o", p.listen.mode);
      os << " listen_mode=" << mode;
    }
    if (policy == "redis_cluster") {
      os << " cluster_refresh_ms=" << p.cluster_refresh_ms << " read_from="
         << (p.read_from == ReadFrom::kMaster    ? "master"
             : p.read_from == ReadFrom::kReplica ? "replica"
                                                 : "any");
    }
    os << "\n";
    auto server_line = [&](uint32_t i, const char* indent) {
      const auto& s = p.servers[i];
      os << indent << s.address() << " weight=" << s.weight;
      if (!s.name.empty()) os << " name=" << s.name;
      os << "\n";
    };
    if (p.route.children.empty()) {
      for (uint32_t i : p.route.servers) server_line(i, "  ");
      continue;
    }
    for (size_t c = 0; c < p.route.children.size(); ++c) {
      const auto& child = p.route.children[c];
      os << "  child[" << c << "]: " << child.policy << " hash=" << routing::hash_name(child.hash)
         << "\n";
      for (uint32_t i : child.servers) server_line(i, "    ");
    }
  }
  return os.str();
}

}  // namespace dproxy::core
