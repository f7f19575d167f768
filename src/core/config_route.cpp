// The JSON config's route tree: a pool's policy, hash and servers, or its children (replicated
// and fanout routes), with their keys.

#include "core/config_parse.h"

namespace dproxy::core::config_parse {

bool is_route_key(const std::string& key) {
  return key == "policy" || key == "hash" || key == "servers" || key == "children" ||
         key == "write_ack" || key == "read" || key == "failover_on_miss" || key == "reply";
}

namespace {

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

}  // namespace

namespace {

// The route's policy and hash (the pool's hash and hash_tag unless the route sets its own).
void parse_policy_and_hash(const json& obj, const std::string& path, const PoolConfig& pool,
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
}

void parse_servers(const json& value, const std::string& p, PoolConfig& pool,
                   routing::RouteSpec& spec, bool root) {
  if (routing::policy_takes_children(spec.policy))
    fail(p, "a " + spec.policy + " route takes \"children\", not \"servers\"");
  if (!value.is_array()) fail(p, std::string("expected an array, got ") + type_name(value));
  if (value.empty())
    fail(p, std::string(root ? "a pool" : "a route") + " needs at least one server");
  for (size_t i = 0; i < value.size(); ++i)
    spec.servers.push_back(add_server(pool, value[i], p + "[" + std::to_string(i) + "]"));
}

// One child of a replicated or fanout route: a server (a one-server shard) or a shard route.
routing::RouteSpec parse_child(const json& c, const std::string& cp, PoolConfig& pool,
                               const routing::RouteSpec& parent) {
  routing::RouteSpec child;
  if (c.is_string() || (c.is_object() && c.contains("address"))) {
    child.policy = "ketama";
    child.hash = parent.hash;
    child.hash_tag = parent.hash_tag;
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
  return child;
}

void parse_children(const json& value, const std::string& p, PoolConfig& pool,
                    routing::RouteSpec& spec) {
  if (!routing::policy_takes_children(spec.policy))
    fail(p, "a " + spec.policy + " route takes \"servers\", not \"children\"");
  if (!value.is_array()) fail(p, std::string("expected an array, got ") + type_name(value));
  if (value.empty()) fail(p, "a " + spec.policy + " route needs at least one child");
  for (size_t i = 0; i < value.size(); ++i)
    spec.children.push_back(parse_child(value[i], p + "[" + std::to_string(i) + "]", pool, spec));
}

// write_ack, read, failover_on_miss (replicated) and reply (fanout).
void parse_route_mode(const std::string& key, const json& value, const std::string& p,
                      routing::RouteSpec& spec) {
  if (key == "reply") {
    if (spec.policy != "fanout")
      fail(p, "only a fanout route takes reply (this one is " + spec.policy + ")");
    if (value.is_string() && value.get<std::string>() == "one")
      fail(p, "\"one\" is not one of all, majority, first");
    spec.reply = parse_ack(value, p);
    return;
  }
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
    spec.failover_on_miss = get_bool(value, p);
  }
}

}  // namespace

void parse_route(const json& obj, const std::string& path, PoolConfig& pool,
                 routing::RouteSpec& spec, bool root) {
  parse_policy_and_hash(obj, path, pool, spec, root);
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
      parse_servers(value, p, pool, spec, root);
      have_servers = true;
    } else if (key == "children") {
      parse_children(value, p, pool, spec);
      have_children = true;
    } else if (key == "write_ack" || key == "read" || key == "failover_on_miss" || key == "reply") {
      parse_route_mode(key, value, p, spec);
    }
  }
  if (takes_children && !have_children) fail(path, "missing required key \"children\"");
  if (!takes_children) {
    if (!have_servers) fail(path, "missing required key \"servers\"");
    check_shard(pool, spec, path + ".servers");
  }
}

}  // namespace dproxy::core::config_parse
