// The policy registry. Adding a policy: its own class file plus one line in kPolicies.

#include <functional>

#include "routing/cluster_route.h"
#include "routing/fanout_route.h"
#include "routing/replicated_route.h"
#include "routing/route.h"
#include "routing/shard_route.h"

namespace dproxy::routing {
namespace {

using Children = std::vector<std::unique_ptr<ShardRoute>>;

std::unique_ptr<ShardRoute> make_shard(DistributionKind kind, const RouteSpec& spec,
                                       std::span<const ServerSpec> servers) {
  return std::make_unique<ShardRoute>(kind, spec.hash, spec.hash_tag, spec.servers, servers);
}

// Children of replicated/fanout are shard routes (a single server is a one-server shard).
bool make_children(const RouteSpec& spec, std::span<const ServerSpec> servers, Children& out,
                   std::string& error) {
  for (const auto& child : spec.children) {
    std::unique_ptr<Route> route = make_route(child, servers, error);
    if (!route) return false;
    if (route->kind() != Route::Kind::kShard) {
      error = "a " + spec.policy + " child must be a server or a ketama/modula/random route";
      return false;
    }
    out.emplace_back(static_cast<ShardRoute*>(route.release()));
  }
  return true;
}

struct Policy {
  std::string_view name;
  bool takes_children;
  std::function<std::unique_ptr<Route>(const RouteSpec&, std::span<const ServerSpec>, std::string&)>
      make;
};

const Policy kPolicies[] = {
    {"ketama", false,
     [](const RouteSpec& s, auto servers, std::string&) -> std::unique_ptr<Route> {
       return make_shard(DistributionKind::kKetama, s, servers);
     }},
    {"modula", false,
     [](const RouteSpec& s, auto servers, std::string&) -> std::unique_ptr<Route> {
       return make_shard(DistributionKind::kModula, s, servers);
     }},
    {"random", false,
     [](const RouteSpec& s, auto servers, std::string&) -> std::unique_ptr<Route> {
       return make_shard(DistributionKind::kRandom, s, servers);
     }},
    {"replicated", true,
     [](const RouteSpec& s, auto servers, std::string& error) -> std::unique_ptr<Route> {
       Children children;
       if (!make_children(s, servers, children, error)) return nullptr;
       return std::make_unique<ReplicatedRoute>(std::move(children), s.write_ack, s.read,
                                                s.failover_on_miss);
     }},
    {"fanout", true,
     [](const RouteSpec& s, auto servers, std::string& error) -> std::unique_ptr<Route> {
       Children children;
       if (!make_children(s, servers, children, error)) return nullptr;
       return std::make_unique<FanoutRoute>(std::move(children), s.reply);
     }},
    {"redis_cluster", false,
     [](const RouteSpec&, auto, std::string&) -> std::unique_ptr<Route> {
       return std::make_unique<ClusterRoute>();
     }},
};

}  // namespace

std::unique_ptr<Route> make_route(const RouteSpec& spec, std::span<const ServerSpec> servers,
                                  std::string& error) {
  for (const auto& p : kPolicies) {
    if (p.name == spec.policy) return p.make(spec, servers, error);
  }
  error = "\"" + spec.policy + "\" is not a policy (expected " + std::string(route_policy_names()) +
          ")";
  return nullptr;
}

std::string_view route_policy_names() {
  static const std::string names = [] {
    std::string all;
    for (const auto& p : kPolicies) all += (all.empty() ? "" : ", ") + std::string(p.name);
    return all;
  }();
  return names;
}

bool policy_known(std::string_view policy) {
  for (const auto& p : kPolicies) {
    if (p.name == policy) return true;
  }
  return false;
}

bool policy_takes_children(std::string_view policy) {
  for (const auto& p : kPolicies) {
    if (p.name == policy) return p.takes_children;
  }
  return false;
}

}  // namespace dproxy::routing
