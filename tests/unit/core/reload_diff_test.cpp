// Unit tests for the reload log's description of a pool's server changes.

#include "core/reload_diff.h"

#include <doctest/doctest.h>

#include <string>

namespace {

using dproxy::core::Config;
using dproxy::core::describe_server_changes;
using dproxy::core::parse_config;
using dproxy::core::PoolConfig;
using dproxy::core::same_placement;

PoolConfig pool(const std::string& servers, const std::string& extra = "") {
  Config config;
  std::string error;
  const std::string doc = R"({"pools": {"p": {"protocol": "memcached", "listen": "127.0.0.1:1", )" +
                          extra + R"("servers": )" + servers + "}}}";
  REQUIRE_MESSAGE(parse_config(doc, config, error), error);
  return config.pools.at(0);
}

TEST_CASE("reload diff: added, removed, moved and reweighted servers are named") {
  const auto before = pool(R"(["10.0.0.1:11211:1 a", "10.0.0.2:11211:1 b", "10.0.0.3:11211"])");
  const auto after = pool(R"(["10.0.0.9:11211:1 b", "10.0.0.3:11211:2", "10.0.0.4:11211:1 c"])");
  CHECK(describe_server_changes(before, after) ==
        "servers added c (10.0.0.4:11211); removed a (10.0.0.1:11211); address changed b "
        "10.0.0.2:11211 -> 10.0.0.9:11211; weight changed 10.0.0.3 1 -> 2");
}

TEST_CASE("reload diff: same servers, or the same in another order") {
  const auto before = pool(R"(["10.0.0.1:1 a", "10.0.0.2:1 b"])");
  CHECK(describe_server_changes(before, pool(R"(["10.0.0.1:1 a", "10.0.0.2:1 b"])")) ==
        "servers unchanged");
  CHECK(describe_server_changes(before, pool(R"(["10.0.0.2:1 b", "10.0.0.1:1 a"])")) ==
        "servers reordered");
}

TEST_CASE("same placement: only what moves keys counts") {
  const std::string servers = R"(["10.0.0.1:1 a", "10.0.0.2:1 b"])";
  const auto before = pool(servers);
  CHECK(same_placement(before, pool(servers)));
  CHECK(same_placement(before, pool(servers, R"("timeout_ms": 5, "server_connections": 3, )")));
  CHECK_FALSE(same_placement(before, pool(R"(["10.0.0.1:1 a", "10.0.0.2:1 b", "10.0.0.3:1"])")));
  CHECK_FALSE(same_placement(before, pool(R"(["10.0.0.1:1 a", "10.0.0.2:2 b"])")));
  CHECK_FALSE(same_placement(before, pool(R"(["10.0.0.1:1 a", "10.0.0.9:1 b"])")));
  CHECK_FALSE(same_placement(before, pool(R"(["10.0.0.2:1 b", "10.0.0.1:1 a"])")));
  CHECK_FALSE(same_placement(before, pool(servers, R"("hash": "md5", )")));
  CHECK_FALSE(same_placement(before, pool(servers, R"("hash_tag": "{}", )")));
  CHECK_FALSE(same_placement(before, pool(servers, R"("policy": "modula", )")));
  CHECK_FALSE(same_placement(before, pool(servers, R"("auto_eject_hosts": true, )")));
}

}  // namespace
