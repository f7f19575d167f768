#pragma once
// A pool's route tree: a policy node over servers (ketama, modula, random) or over children
// (replicated, fanout). Routes answer "where does this key go"; they own no sockets.

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "routing/distribution.h"
#include "routing/hash.h"
#include "routing/server_spec.h"

namespace dproxy::routing {

// How many child acknowledgements a write (replicated) or any request (fanout) waits for.
enum class AckMode : uint8_t { kAll, kMajority, kOne };
// Which child a replicated read goes to first.
enum class ReadMode : uint8_t { kFirst, kRoundRobin, kHash };

// The plain description of a route, as the config loader builds it (no JSON here).
struct RouteSpec {
  std::string policy;  // "ketama" | "modula" | "random" | "replicated" | "fanout" | "redis_cluster"
  HashKind hash = HashKind::kFnv1a_64;
  std::string hash_tag;
  std::vector<uint32_t> servers;      // shard policies: indices into the pool's server list
  std::vector<RouteSpec> children;    // replicated / fanout
  AckMode write_ack = AckMode::kAll;  // replicated
  ReadMode read = ReadMode::kFirst;   // replicated
  bool failover_on_miss = false;      // replicated
  AckMode reply = AckMode::kAll;      // fanout
};

class ShardRoute;

class Route {
 public:
  enum class Kind : uint8_t { kShard, kReplicated, kFanout, kCluster };
  virtual ~Route() = default;
  virtual Kind kind() const = 0;
  // Rebuilds every shard distribution over the servers for which `live(index)` is true (index
  // into the pool's server list). A shard left with no live server keeps all of them.
  virtual void rebuild(const std::vector<bool>& live) = 0;
};

// The registry of policies: one line per policy in route_factory.cpp.
// Returns nullptr and sets `error` for an unknown policy name.
std::unique_ptr<Route> make_route(const RouteSpec& spec, std::span<const ServerSpec> servers,
                                  std::string& error);
// Every policy name the factory knows, comma separated (for config errors).
std::string_view route_policy_names();
// True for a policy name the factory knows.
bool policy_known(std::string_view policy);
// True for policies that take `children` (replicated, fanout) rather than `servers`.
bool policy_takes_children(std::string_view policy);

}  // namespace dproxy::routing
