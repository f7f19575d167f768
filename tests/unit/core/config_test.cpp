// Unit tests for the JSON config loader: defaults, server forms, and exact error messages.

#include "core/config.h"

#include <doctest/doctest.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

#include "core/backend/backend_setup.h"

namespace {

using dproxy::core::Config;
using dproxy::core::describe_config;
using dproxy::core::load_config;
using dproxy::core::parse_config;
using dproxy::core::PoolConfig;
using dproxy::core::Protocol;
using dproxy::routing::DistributionKind;
using dproxy::routing::HashKind;

// A one-pool document named "cache"; `extra` is spliced into the pool object (with a trailing
// comma) and `servers` is the JSON array text.
std::string pool_doc(const std::string& extra,
                     const std::string& servers = R"(["10.0.0.1:11211"])") {
  return R"({"pools": {"cache": {"protocol": "memcached", "listen": "127.0.0.1:22121", )" + extra +
         R"("servers": )" + servers + "}}}";
}

Config parse_ok(const std::string& text) {
  Config config;
  std::string error;
  INFO("config: " << text);
  bool ok = parse_config(text, config, error);
  INFO("error: " << error);
  REQUIRE(ok);
  CHECK(error.empty());
  return config;
}

const PoolConfig& only_pool(const Config& config) {
  REQUIRE(config.pools.size() == 1);
  return config.pools[0];
}

std::string parse_error(const std::string& text) {
  Config config;
  std::string error;
  INFO("config: " << text);
  CHECK_FALSE(parse_config(text, config, error));
  CHECK(config.pools.empty());  // nothing half-parsed is left behind
  CHECK(error.find('\n') == std::string::npos);
  return error;
}

}  // namespace

TEST_CASE("config: defaults of a minimal pool") {
  const Config config = parse_ok(pool_doc(""));
  const PoolConfig& p = only_pool(config);
  CHECK(p.name == "cache");
  CHECK(p.protocol == Protocol::kMemcached);
  CHECK(p.listen.host == "127.0.0.1");
  CHECK(p.listen.port == 22121);
  CHECK_FALSE(p.listen.is_unix);
  CHECK(p.listen.to_string() == "127.0.0.1:22121");
  CHECK(p.route.policy == "ketama");
  CHECK(p.hash == HashKind::kFnv1a_64);
  CHECK(p.hash_tag.empty());
  CHECK(p.timeout_ms == 1000);
  CHECK(p.server_connections == 1);
  CHECK(p.max_value_bytes == 1024 * 1024);
  REQUIRE(p.servers.size() == 1);
  CHECK(p.servers[0].host == "10.0.0.1");
  CHECK(p.servers[0].port == 11211);
  CHECK(p.servers[0].weight == 1);
  CHECK(p.servers[0].name.empty());
}

TEST_CASE("config: every pool option") {
  const Config config = parse_ok(pool_doc(
      R"("policy": "modula", "hash": "murmur", "hash_tag": "{}", "timeout_ms": 250,
         "server_connections": 4, "max_value_bytes": 2048, )"));
  const PoolConfig& p = only_pool(config);
  CHECK(p.route.policy == "modula");
  CHECK(p.hash == HashKind::kMurmur);
  CHECK(p.hash_tag == "{}");
  CHECK(p.timeout_ms == 250);
  CHECK(p.server_connections == 4);
  CHECK(p.max_value_bytes == 2048);
  CHECK(only_pool(parse_ok(pool_doc(R"("policy": "random", )"))).route.policy == "random");
  CHECK(only_pool(parse_ok(pool_doc(R"("policy": "ketama", )"))).route.policy == "ketama");
}

TEST_CASE("config: every twemproxy hash name") {
  const std::pair<const char*, HashKind> names[] = {
      {"one_at_a_time", HashKind::kOneAtATime},
      {"md5", HashKind::kMd5},
      {"crc16", HashKind::kCrc16},
      {"crc32", HashKind::kCrc32},
      {"crc32a", HashKind::kCrc32a},
      {"fnv1_64", HashKind::kFnv1_64},
      {"fnv1a_64", HashKind::kFnv1a_64},
      {"fnv1_32", HashKind::kFnv1_32},
      {"fnv1a_32", HashKind::kFnv1a_32},
      {"hsieh", HashKind::kHsieh},
      {"murmur", HashKind::kMurmur},
      {"jenkins", HashKind::kJenkins},
  };
  for (const auto& [name, kind] : names) {
    INFO(name);
    CHECK(only_pool(parse_ok(pool_doc(std::string(R"("hash": ")") + name + "\", "))).hash == kind);
  }
}

TEST_CASE("config: server string forms") {
  const Config config = parse_ok(pool_doc("", R"([
      "10.0.0.1:11211",
      "10.0.0.2:11212:5",
      "10.0.0.3:11213:7 gamma",
      "cache-4.example.com:11214 delta",
      "10.0.0.5:11215:0",
      "/var/run/memcached/a.sock",
      "/var/run/memcached/b.sock:3 beta"
  ])"));
  const auto& s = only_pool(config).servers;
  REQUIRE(s.size() == 7);
  CHECK(s[0].host == "10.0.0.1");
  CHECK(s[0].port == 11211);
  CHECK(s[0].weight == 1);
  CHECK(s[0].name.empty());

  CHECK(s[1].host == "10.0.0.2");
  CHECK(s[1].port == 11212);
  CHECK(s[1].weight == 5);
  CHECK(s[1].name.empty());

  CHECK(s[2].host == "10.0.0.3");
  CHECK(s[2].port == 11213);
  CHECK(s[2].weight == 7);
  CHECK(s[2].name == "gamma");

  CHECK(s[3].host == "cache-4.example.com");
  CHECK(s[3].port == 11214);
  CHECK(s[3].weight == 1);
  CHECK(s[3].name == "delta");

  CHECK(s[4].weight == 0);  // allowed while another server has weight

  CHECK(s[5].host == "/var/run/memcached/a.sock");
  CHECK(s[5].port == 0);
  CHECK(s[5].weight == 1);
  CHECK(s[5].name.empty());

  CHECK(s[6].host == "/var/run/memcached/b.sock");
  CHECK(s[6].port == 0);
  CHECK(s[6].weight == 3);
  CHECK(s[6].name == "beta");
}

TEST_CASE("config: server object forms") {
  const Config config = parse_ok(pool_doc("", R"([
      {"address": "10.0.0.1:11211"},
      {"address": "10.0.0.2:11212", "weight": 4, "name": "second"},
      {"name": "third", "address": "/tmp/mc.sock", "weight": 0}
  ])"));
  const auto& s = only_pool(config).servers;
  REQUIRE(s.size() == 3);
  CHECK(s[0].host == "10.0.0.1");
  CHECK(s[0].port == 11211);
  CHECK(s[0].weight == 1);
  CHECK(s[0].name.empty());
  CHECK(s[1].host == "10.0.0.2");
  CHECK(s[1].port == 11212);
  CHECK(s[1].weight == 4);
  CHECK(s[1].name == "second");
  CHECK(s[2].host == "/tmp/mc.sock");
  CHECK(s[2].port == 0);
  CHECK(s[2].weight == 0);
  CHECK(s[2].name == "third");
}

TEST_CASE("config: server order is kept (placement depends on it)") {
  const Config config =
      parse_ok(pool_doc("", R"(["10.0.0.9:1 z", "10.0.0.1:1 a", "10.0.0.5:1 m", "10.0.0.2:1 b"])"));
  const auto& s = only_pool(config).servers;
  REQUIRE(s.size() == 4);
  CHECK(s[0].name == "z");
  CHECK(s[1].name == "a");
  CHECK(s[2].name == "m");
  CHECK(s[3].name == "b");
}

TEST_CASE("config: ketama names of parsed servers follow twemproxy") {
  const Config config = parse_ok(pool_doc(
      "", R"(["10.0.0.1:11211", "10.0.0.2:11212:3", "10.0.0.3:11213:1 named", "/s.sock"])"));
  const auto& s = only_pool(config).servers;
  REQUIRE(s.size() == 4);
  CHECK(s[0].ketama_name() == "10.0.0.1");  // port 11211 is left out (libmemcached)
  CHECK(s[1].ketama_name() == "10.0.0.2:11212");
  CHECK(s[2].ketama_name() == "named");
  CHECK(s[3].ketama_name() == "/s.sock:");
  CHECK(s[1].address() == "10.0.0.2:11212");
  CHECK(s[3].address() == "/s.sock");
}

TEST_CASE("config: weight limits") {
  CHECK(only_pool(parse_ok(pool_doc("", R"(["10.0.0.1:1:1000000"])"))).servers[0].weight ==
        1000000);
  CHECK(parse_error(pool_doc("", R"(["10.0.0.1:1:1000001"])")) ==
        R"(pools.cache.servers[0]: "10.0.0.1:1:1000001" is not host:port[:weight] [name])");
  CHECK(parse_error(pool_doc("", R"([{"address": "10.0.0.1:1", "weight": 1000001}])")) ==
        "pools.cache.servers[0].weight: 1000001 is out of range [0, 1000000]");
  CHECK(parse_error(pool_doc("", R"(["10.0.0.1:1:0", {"address": "10.0.0.2:1", "weight": 0}])")) ==
        "pools.cache.servers: every server has weight 0: no key could be placed");
}

TEST_CASE("config: unix socket listen") {
  const Config config = parse_ok(
      R"({"pools": {"s": {"protocol": "memcached", "listen": "/tmp/dproxy.sock",
                          "servers": ["/tmp/mc.sock"]}}})");
  const PoolConfig& p = only_pool(config);
  CHECK(p.listen.is_unix);
  CHECK(p.listen.host == "/tmp/dproxy.sock");
  CHECK(p.listen.port == 0);
  CHECK(p.listen.to_string() == "/tmp/dproxy.sock");
}

TEST_CASE("config: several pools") {
  const Config config = parse_ok(R"({"pools": {
      "sessions": {"protocol": "memcached", "listen": "127.0.0.1:22122", "servers": ["10.0.0.1:1"]},
      "cache": {"protocol": "memcached", "listen": "127.0.0.1:22121", "servers": ["10.0.0.2:1"]}
  }})");
  REQUIRE(config.pools.size() == 2);
  bool saw_cache = false, saw_sessions = false;
  for (const auto& p : config.pools) {
    if (p.name == "cache") {
      saw_cache = true;
      CHECK(p.listen.port == 22121);
      CHECK(p.servers[0].host == "10.0.0.2");
    } else if (p.name == "sessions") {
      saw_sessions = true;
      CHECK(p.listen.port == 22122);
      CHECK(p.servers[0].host == "10.0.0.1");
    }
  }
  CHECK(saw_cache);
  CHECK(saw_sessions);
}

TEST_CASE("config: top-level errors") {
  CHECK(parse_error("[]") == "(top level): expected an object, got array");
  CHECK(parse_error("{}") == R"((top level): missing required key "pools")");
  CHECK(parse_error(R"({"pools": {}})") == "pools: no pools defined");
  CHECK(parse_error(R"({"pools": []})") ==
        "pools: expected an object keyed by pool name, got array");
  CHECK(parse_error(R"({"pool": {}})") == R"(pool: unknown top-level key (did you mean "pools"?))");
  CHECK(parse_error(R"({"pools": {"cache": 3}})") == "pools.cache: expected an object, got number");
}

TEST_CASE("config: invalid JSON") {
  const std::string e = parse_error(R"({"pools": {)");
  CHECK(e.rfind("invalid JSON: ", 0) == 0);
  CHECK(parse_error("").rfind("invalid JSON: ", 0) == 0);
  CHECK(parse_error(R"({"pools": {}} x)").rfind("invalid JSON: ", 0) == 0);
}

TEST_CASE("config: missing and unknown pool keys") {
  CHECK(parse_error(R"({"pools": {"cache": {"listen": "127.0.0.1:1", "servers": ["a:1"]}}})") ==
        R"(pools.cache: missing required key "protocol")");
  CHECK(parse_error(R"({"pools": {"cache": {"protocol": "memcached", "servers": ["a:1"]}}})") ==
        R"(pools.cache: missing required key "listen")");
  CHECK(
      parse_error(R"({"pools": {"cache": {"protocol": "memcached", "listen": "127.0.0.1:1"}}})") ==
      R"(pools.cache: missing required key "servers")");
  CHECK(parse_error(pool_doc(R"("hahs": "md5", )")) ==
        R"(pools.cache.hahs: unknown key (did you mean "hash"?))");
  CHECK(parse_error(pool_doc(R"("colour": "red", )")) ==
        "pools.cache.colour: unknown key (expected protocol, listen, policy, hash, hash_tag, "
        "timeout_ms, connect_timeout_ms, server_failure_limit, server_retry_timeout_ms, "
        "auto_eject_hosts, client_connections, server_connections, "
        "server_connections_per_process, backlog, preconnect, tcp_keepalive, max_value_bytes, "
        "sasl, servers, client_password, server_password, server_user, db, "
        "max_dedicated_connections, "
        "children, write_ack, read, "
        "failover_on_miss, reply, cluster_refresh_ms, read_from, tls, server_tls)");
  CHECK(parse_error(pool_doc("", "[]")) == "pools.cache.servers: a pool needs at least one server");
  CHECK(parse_error(pool_doc("", R"({"a": "10.0.0.1:1"})")) ==
        "pools.cache.servers: expected an array, got object");
}

TEST_CASE("config: bad enumerations") {
  CHECK(parse_error(pool_doc("").replace(pool_doc("").find("memcached"), 9, "memcache")) ==
        R"(pools.cache.protocol: "memcache" is not a protocol (expected "memcached" or "redis"))");
  CHECK(parse_error(pool_doc(R"("policy": "consistent", )")) ==
        R"(pools.cache.policy: "consistent" is not a policy (expected ketama, modula, random, )"
        R"(replicated, fanout, redis_cluster))");
  CHECK(parse_error(pool_doc(R"("policy": "fanout", )")) ==
        R"(pools.cache.servers: a fanout route takes "children", not "servers")");
  CHECK(parse_error(pool_doc(R"("hash": "sha1", )")) ==
        R"(pools.cache.hash: "sha1" is not a hash (expected one of one_at_a_time, md5, crc16, )"
        R"(crc32, crc32a, fnv1_64, fnv1a_64, fnv1_32, fnv1a_32, hsieh, murmur, jenkins))");
  CHECK(parse_error(pool_doc(R"("hash": 5, )")) ==
        "pools.cache.hash: expected a string, got number");
}

TEST_CASE("config: hash_tag must be two characters") {
  CHECK(parse_error(pool_doc(R"("hash_tag": "{", )")) ==
        R"(pools.cache.hash_tag: "{" must be exactly two characters, e.g. "{}")");
  CHECK(parse_error(pool_doc(R"("hash_tag": "{}}", )")) ==
        R"(pools.cache.hash_tag: "{}}" must be exactly two characters, e.g. "{}")");
  CHECK(parse_error(pool_doc(R"("hash_tag": "", )")) ==
        R"(pools.cache.hash_tag: "" must be exactly two characters, e.g. "{}")");
}

TEST_CASE("config: bad server strings") {
  CHECK(parse_error(pool_doc("", R"(["10.0.0.1:11211", "10.0.0.2:11211", "10.0.0.1:abc"])")) ==
        R"(pools.cache.servers[2]: "10.0.0.1:abc" is not host:port[:weight] [name])");
  for (const char* bad :
       {"10.0.0.1", "10.0.0.1:0", "10.0.0.1:65536", "10.0.0.1:1:x", "10.0.0.1:1:2:3", ":11211",
        "10.0.0.1:1 a b", "10.0.0.1:1 ", "/a.sock:1:2", "/a.sock:x", ""}) {
    INFO(bad);
    CHECK(parse_error(pool_doc("", std::string("[\"") + bad + "\"]")) ==
          std::string("pools.cache.servers[0]: \"") + bad + "\" is not host:port[:weight] [name]");
  }
  CHECK(parse_error(pool_doc("", "[true]")) ==
        "pools.cache.servers[0]: expected a server string or object, got boolean");
}

TEST_CASE("config: bad server objects") {
  CHECK(parse_error(pool_doc("", R"([{"address": "10.0.0.1:1", "wieght": 2}])")) ==
        "pools.cache.servers[0].wieght: unknown key (expected address, weight, name)");
  CHECK(parse_error(pool_doc("", R"([{"weight": 2}])")) ==
        R"(pools.cache.servers[0]: missing required key "address")");
  CHECK(parse_error(pool_doc("", R"([{"address": "10.0.0.1:1:2"}])")) ==
        R"(pools.cache.servers[0].address: "10.0.0.1:1:2" is not host:port or a socket path )"
        "(weight and name have keys of their own)");
  CHECK(parse_error(pool_doc("", R"([{"address": "10.0.0.1:1 n"}])")) ==
        R"(pools.cache.servers[0].address: "10.0.0.1:1 n" is not host:port or a socket path )"
        "(weight and name have keys of their own)");
  CHECK(parse_error(pool_doc("", R"([{"address": "10.0.0.1:1", "name": ""}])")) ==
        R"(pools.cache.servers[0].name: "" must be non-empty and contain no whitespace)");
  CHECK(parse_error(pool_doc("", R"([{"address": "10.0.0.1:1", "weight": "2"}])")) ==
        "pools.cache.servers[0].weight: expected a non-negative integer, got string");
}

TEST_CASE("config: duplicates") {
  CHECK(parse_error(pool_doc("", R"(["10.0.0.1:1 a", "10.0.0.2:1 b", "10.0.0.1:1:3 c"])")) ==
        R"(pools.cache.servers[2]: duplicate server address "10.0.0.1:1")");
  CHECK(parse_error(pool_doc("", R"(["10.0.0.1:1 a", {"address": "10.0.0.2:1", "name": "a"}])")) ==
        R"(pools.cache.servers[1]: duplicate server name "a")");
  CHECK(parse_error(pool_doc("", R"(["/tmp/a.sock", "/tmp/a.sock:2"])")) ==
        R"(pools.cache.servers[1]: duplicate server address "/tmp/a.sock")");
  CHECK(parse_error(R"({"pools": {
      "a": {"protocol": "memcached", "listen": "127.0.0.1:22121", "servers": ["10.0.0.1:1"]},
      "b": {"protocol": "memcached", "listen": "127.0.0.1:22121", "servers": ["10.0.0.1:1"]}}})") ==
        R"(pools.b.listen: "127.0.0.1:22121" is already used by another pool)");
}

TEST_CASE("config: listen errors") {
  for (const char* bad :
       {"127.0.0.1", "127.0.0.1:0", "127.0.0.1:65536", ":22121", "sock", "127.0.0.1:x"}) {
    INFO(bad);
    CHECK(parse_error(R"({"pools": {"c": {"protocol": "memcached", "listen": ")" +
                      std::string(bad) + R"(", "servers": ["10.0.0.1:1"]}}})") ==
          std::string("pools.c.listen: \"") + bad +
              "\" is not ip:port, [ipv6]:port or an absolute unix socket path");
  }
}

TEST_CASE("config: integer options") {
  CHECK(parse_error(pool_doc(R"("timeout_ms": -5, )")) ==
        "pools.cache.timeout_ms: expected a non-negative integer, got -5");
  CHECK(parse_error(pool_doc(R"("timeout_ms": "100", )")) ==
        "pools.cache.timeout_ms: expected a non-negative integer, got string");
  CHECK(parse_error(pool_doc(R"("timeout_ms": 1.5, )")) ==
        "pools.cache.timeout_ms: expected a non-negative integer, got 1.5");
  CHECK(only_pool(parse_ok(pool_doc(R"("timeout_ms": 0, )"))).timeout_ms == 0);  // no timeout
  CHECK(parse_error(pool_doc(R"("timeout_ms": 3600001, )")) ==
        "pools.cache.timeout_ms: 3600001 is out of range [0, 3600000]");
  CHECK(only_pool(parse_ok(pool_doc(R"("timeout_ms": 3600000, )"))).timeout_ms == 3600000);
  CHECK(parse_error(pool_doc(R"("server_connections": 65, )")) ==
        "pools.cache.server_connections: 65 is out of range [1, 64]");
  CHECK(parse_error(pool_doc(R"("max_value_bytes": 0, )")) ==
        "pools.cache.max_value_bytes: 0 is out of range [1, 536870912]");
}

TEST_CASE("config: memcached SASL credentials") {
  const auto pool = only_pool(parse_ok(pool_doc(R"("sasl": {"app": "s3cret", "b": "x y"}, )")));
  REQUIRE(pool.sasl_users.size() == 2);
  CHECK(pool.sasl_users[0] == std::pair<std::string, std::string>("app", "s3cret"));
  CHECK(parse_error(pool_doc(R"("sasl": {}, )"))
            .starts_with("pools.cache.sasl: expected an object of user names and their passwords"));
  CHECK(parse_error(pool_doc(R"("sasl": {"app": ""}, )")) ==
        "pools.cache.sasl.app: must not be empty");
  CHECK(parse_error(pool_doc(R"("sasl": {"app": 5}, )")).starts_with("pools.cache.sasl.app: "));
  CHECK(parse_error(R"({"pools": {"r": {"protocol": "redis", "listen": "127.0.0.1:6380",
      "sasl": {"a": "b"}, "servers": ["10.0.0.1:6379"]}}})") ==
        "pools.r.sasl: only a memcached pool takes this key");
}

TEST_CASE("config: redis pools and their redis-only keys") {
  auto config = parse_ok(R"({"pools": {"r": {"protocol": "redis", "listen": "127.0.0.1:6380",
      "client_password": "pw", "server_password": "spw", "db": 3,
      "servers": ["10.0.0.1:6379"]}}})");
  REQUIRE(config.pools.size() == 1);
  const auto& r = config.pools[0];
  CHECK(r.protocol == dproxy::core::Protocol::kRedis);
  CHECK(r.client_password == "pw");
  CHECK(r.server_password == "spw");
  CHECK(r.db == 3);
  CHECK(r.max_value_bytes == 512u * 1024 * 1024);  // Redis's own bulk limit by default
  CHECK(parse_error(pool_doc(R"("db": 1, )")) ==
        "pools.cache.db: only a redis pool takes this key");
  CHECK(parse_error(pool_doc(R"("client_password": "x", )")) ==
        "pools.cache.client_password: only a redis pool takes this key");
  CHECK(parse_error(R"({"pools": {"r": {"protocol": "redis", "listen": "127.0.0.1:6380",
      "server_password": "", "servers": ["10.0.0.1:6379"]}}})") ==
        "pools.r.server_password: must not be empty (leave the key out instead)");
}

TEST_CASE("config: backend credentials in both protocols, and the setup they send") {
  auto config = parse_ok(pool_doc(R"("server_user": "dp", "server_password": "pw x", )"));
  const auto& mc = config.pools[0];
  CHECK(mc.server_user == "dp");
  uint32_t replies = 0;
  CHECK(dproxy::core::backend_setup(mc, 0, replies) == "set auth 0 0 7\r\ndp pw x\r\n");
  CHECK(replies == 1);
  CHECK(parse_error(pool_doc(R"("server_password": "pw", )")) ==
        "pools.cache.server_password: a memcached pool needs server_user too (memcached's ASCII "
        "authentication sends both)");
  CHECK(parse_error(pool_doc(R"("server_user": "dp", )")) ==
        "pools.cache.server_user: needs server_password");
  CHECK(parse_error(pool_doc(R"("server_user": "d p", "server_password": "pw", )")) ==
        "pools.cache.server_user: must not hold a space (memcached's authentication separates "
        "user and password by one)");
  auto redis = parse_ok(R"({"pools": {"r": {"protocol": "redis", "listen": "127.0.0.1:6380",
      "server_user": "alice", "server_password": "spw", "db": 2,
      "servers": ["10.0.0.1:6379"]}}})");
  CHECK(dproxy::core::backend_setup(redis.pools[0], 2, replies) ==
        "*3\r\n$4\r\nAUTH\r\n$5\r\nalice\r\n$3\r\nspw\r\n*2\r\n$6\r\nSELECT\r\n$1\r\n2\r\n");
  CHECK(replies == 2);
  auto plain = parse_ok(pool_doc(""));
  CHECK(dproxy::core::backend_setup(plain.pools[0], 0, replies).empty());
  CHECK(replies == 0);
}

TEST_CASE("config: load_config reads files and prefixes errors with the path") {
  char dir_template[] = "/tmp/dproxy-config-test-XXXXXX";
  REQUIRE(mkdtemp(dir_template) != nullptr);
  const std::string dir = dir_template;
  const std::string good = dir + "/good.json";
  const std::string bad = dir + "/bad.json";
  const std::string missing = dir + "/missing.json";
  {
    std::ofstream(good) << pool_doc(R"("hash": "md5", )");
    std::ofstream(bad) << pool_doc(R"("hash": "md6", )");
  }
  Config config;
  std::string error;
  CHECK(load_config(good, config, error));
  CHECK(error.empty());
  CHECK(only_pool(config).hash == HashKind::kMd5);

  Config config2;
  CHECK_FALSE(load_config(bad, config2, error));
  CHECK(error.rfind(bad + ": pools.cache.hash: \"md6\" is not a hash (expected one of ", 0) == 0);
  CHECK(config2.pools.empty());

  CHECK_FALSE(load_config(missing, config2, error));
  CHECK(error == missing + ": cannot read config file: No such file or directory");

  std::remove(good.c_str());
  std::remove(bad.c_str());
  ::rmdir(dir.c_str());
}

TEST_CASE("config: describe_config summary") {
  const Config config = parse_ok(R"({"pools": {"cache": {
      "protocol": "memcached", "listen": "127.0.0.1:22121", "policy": "modula", "hash": "md5",
      "hash_tag": "{}", "timeout_ms": 250,
      "servers": ["10.0.0.1:11211:2 alpha", {"address": "/tmp/mc.sock", "weight": 3}]}}})");
  CHECK(describe_config(config) ==
        "stats: listen=127.0.0.1:22222 (default)\n"
        "pool cache: protocol=memcached listen=127.0.0.1:22121 policy=modula hash=md5 "
        "hash_tag={} timeout_ms=250 connect_timeout_ms=1000 server_failure_limit=2 "
        "server_retry_timeout_ms=30000 auto_eject_hosts=false client_connections=0 "
        "server_connections=1 max_value_bytes=1048576 servers=2\n"
        "  10.0.0.1:11211 weight=2 name=alpha\n"
        "  /tmp/mc.sock weight=3\n");
}

TEST_CASE("config: route trees") {
  auto config = parse_ok(R"({"pools": {"r": {"protocol": "memcached", "listen": "127.0.0.1:1",
      "policy": "replicated", "write_ack": "majority", "read": "round_robin",
      "failover_on_miss": true, "children": [
        "10.0.0.1:11211",
        {"address": "10.0.0.2:11211", "name": "b"},
        {"policy": "ketama", "hash": "md5", "servers": ["10.0.1.1:1 s1", "10.0.1.2:1 s2"]}]}}})");
  const auto& p = config.pools[0];
  CHECK(p.route.policy == "replicated");
  CHECK(p.route.write_ack == dproxy::routing::AckMode::kMajority);
  CHECK(p.route.read == dproxy::routing::ReadMode::kRoundRobin);
  CHECK(p.route.failover_on_miss);
  REQUIRE(p.route.children.size() == 3);
  CHECK(p.servers.size() == 4);
  CHECK(p.route.children[0].servers == std::vector<uint32_t>{0});
  CHECK(p.route.children[1].servers == std::vector<uint32_t>{1});
  CHECK(p.route.children[2].servers == std::vector<uint32_t>{2, 3});
  CHECK(p.route.children[2].hash == HashKind::kMd5);
  CHECK(p.server_paths[3] == "pools.r.children[2].servers[1]");

  auto tree = [](const std::string& route) {
    return parse_error(R"({"pools": {"r": {"protocol": "memcached", "listen": "127.0.0.1:1", )" +
                       route + "}}}");
  };
  CHECK(tree(R"("policy": "replicated", "children": [])") ==
        "pools.r.children: a replicated route needs at least one child");
  CHECK(tree(R"("policy": "fanout")") == R"(pools.r: missing required key "children")");
  CHECK(tree(R"("policy": "ketama", "write_ack": "all", "servers": ["10.0.0.1:1"])") ==
        "pools.r.write_ack: only a replicated route takes write_ack (this one is ketama)");
  CHECK(tree(R"("policy": "fanout", "write_ack": "all", "children": ["10.0.0.1:1"])") ==
        "pools.r.write_ack: only a replicated route takes write_ack (this one is fanout)");
  CHECK(tree(R"("policy": "replicated", "reply": "all", "children": ["10.0.0.1:1"])") ==
        "pools.r.reply: only a fanout route takes reply (this one is replicated)");
  CHECK(tree(R"("policy": "replicated", "write_ack": "most", "children": ["10.0.0.1:1"])") ==
        R"(pools.r.write_ack: "most" is not one of all, majority, one)");
  CHECK(
      tree(
          R"("policy": "replicated", "children": [{"policy": "fanout", "children": ["10.0.0.1:1"]}])") ==
      "pools.r.children[0].policy: a replicated or fanout route cannot be nested inside another "
      "replicated or fanout route (children are servers or ketama/modula/random routes)");
  CHECK(
      tree(
          R"("policy": "replicated", "children": [{"policy": "ketamma", "servers": ["10.0.0.1:1"]}])") ==
      R"(pools.r.children[0].policy: "ketamma" is not a policy (expected ketama, modula, random, )"
      R"(replicated, fanout, redis_cluster))");
  CHECK(tree(R"("policy": "replicated", "children": [{"policy": "ketama", "severs": []}])") ==
        "pools.r.children[0].severs: unknown key in a route (expected policy, hash, servers, "
        "children, write_ack, read, failover_on_miss, reply)");
  CHECK(tree(R"("policy": "replicated", "children": [42])") ==
        R"(pools.r.children[0]: expected a server ("host:port" or {"address": ...}) or a route )"
        R"(({"policy": ...}), got number)");
  CHECK(tree(R"("policy": "replicated", "children": ["10.0.0.1:1", "10.0.0.1:1"])") ==
        R"(pools.r.children[1]: duplicate server address "10.0.0.1:1")");
  CHECK(tree(R"("policy": "ketama", "children": ["10.0.0.1:1"])") ==
        R"(pools.r.children: a ketama route takes "servers", not "children")");
}

TEST_CASE("config: redis_cluster pools") {
  auto config = parse_ok(R"({"pools": {"c": {"protocol": "redis", "listen": "127.0.0.1:1",
      "policy": "redis_cluster", "cluster_refresh_ms": 2500, "read_from": "replica",
      "servers": ["10.0.0.1:7000", "10.0.0.2:7000"]}}})");
  const auto& c = only_pool(config);
  CHECK(c.route.policy == "redis_cluster");
  CHECK(c.servers.size() == 2);
  CHECK(c.cluster_refresh_ms == 2500);
  CHECK(c.read_from == dproxy::core::ReadFrom::kReplica);
  CHECK(describe_config(config).find("policy=redis_cluster") != std::string::npos);
  CHECK(describe_config(config).find("cluster_refresh_ms=2500 read_from=replica") !=
        std::string::npos);
  auto defaults = parse_ok(R"({"pools": {"c": {"protocol": "redis", "listen": "127.0.0.1:1",
      "policy": "redis_cluster", "servers": ["10.0.0.1:7000"]}}})");
  CHECK(only_pool(defaults).cluster_refresh_ms == 10000);
  CHECK(only_pool(defaults).read_from == dproxy::core::ReadFrom::kMaster);

  auto cluster = [](const std::string& extra, const std::string& protocol = "redis") {
    return parse_error(R"({"pools": {"c": {"protocol": ")" + protocol +
                       R"(", "listen": "127.0.0.1:1", "policy": "redis_cluster", )" + extra +
                       R"("servers": ["10.0.0.1:7000"]}}})");
  };
  const std::string own_rule =
      "a redis_cluster pool places keys by Redis Cluster's own rule (CRC16 of the key or of its "
      "{tag}, modulo 16384 slots); remove this key";
  CHECK(cluster(R"("hash": "md5", )") == "pools.c.hash: " + own_rule);
  CHECK(cluster(R"("hash_tag": "{}", )") == "pools.c.hash_tag: " + own_rule);
  CHECK(cluster("", "memcached") ==
        R"(pools.c.policy: a redis_cluster pool takes protocol "redis")");
  CHECK(cluster(R"("auto_eject_hosts": true, )") ==
        "pools.c.auto_eject_hosts: a redis_cluster pool follows the cluster's own failover; "
        "auto_eject_hosts does not apply");
  CHECK(cluster(R"("db": 1, )") == "pools.c.db: Redis Cluster has only database 0");
  CHECK(cluster(R"("read_from": "slave", )") ==
        R"(pools.c.read_from: "slave" is not one of master, replica, any)");
  CHECK(cluster(R"("cluster_refresh_ms": 10, )") ==
        "pools.c.cluster_refresh_ms: 10 is out of range [100, 3600000]");
  CHECK(cluster(R"("children": ["10.0.0.2:1"], )") ==
        R"(pools.c.children: a redis_cluster route takes "servers", not "children")");
  // Cluster options on other pools, and the policy as a child route.
  CHECK(parse_error(pool_doc(R"("read_from": "any", )")) ==
        "pools.cache.read_from: only a redis_cluster pool takes this key");
  CHECK(parse_error(pool_doc(R"("cluster_refresh_ms": 1000, )")) ==
        "pools.cache.cluster_refresh_ms: only a redis_cluster pool takes this key");
  CHECK(parse_error(R"({"pools": {"r": {"protocol": "redis", "listen": "127.0.0.1:1",
      "policy": "replicated", "children": [{"policy": "redis_cluster", "servers": ["10.0.0.1:1"]}]}}})") ==
        "pools.r.children[0].policy: redis_cluster is a pool policy; it cannot be a child route");
}

TEST_CASE("config: the stats listener") {
  const std::string pools =
      R"("pools": {"cache": {"protocol": "memcached", "listen": "127.0.0.1:22121", )"
      R"("servers": ["10.0.0.1:11211"]}})";
  const Config defaults = parse_ok("{" + pools + "}");
  CHECK(defaults.stats_enabled);
  CHECK_FALSE(defaults.stats_configured);
  CHECK(defaults.stats_listen.to_string() == "127.0.0.1:22222");

  const Config set = parse_ok(R"({"stats": {"listen": "127.0.0.1:9999"}, )" + pools + "}");
  CHECK(set.stats_configured);
  CHECK(set.stats_listen.to_string() == "127.0.0.1:9999");
  CHECK_FALSE(parse_ok(R"({"stats": {"enabled": false}, )" + pools + "}").stats_enabled);

  CHECK(parse_error(R"({"stats": 22222, )" + pools + "}") ==
        R"(stats: expected an object like {"listen": "127.0.0.1:22222"}, got number)");
  CHECK(parse_error(R"({"stats": {"port": 1}, )" + pools + "}") ==
        "stats.port: unknown key (expected listen, enabled)");
  CHECK(parse_error(R"({"stats": {"enabled": "no"}, )" + pools + "}") ==
        "stats.enabled: expected true or false, got string");
  CHECK(parse_error(R"({"stats": {"listen": "/tmp/s.sock"}, )" + pools + "}") ==
        "stats.listen: the stats listener takes ip:port");
  CHECK(parse_error(R"({"stats": {"listen": "127.0.0.1:22121"}, )" + pools + "}") ==
        R"(stats.listen: "127.0.0.1:22121" is a pool's listen address)");
  // A pool on the default stats address: the error says where the address comes from.
  CHECK(parse_error(R"({"pools": {"c": {"protocol": "memcached", "listen": "127.0.0.1:22222", )"
                    R"("servers": ["10.0.0.1:11211"]}}})") ==
        R"(stats: "127.0.0.1:22222" is a pool's listen address (the stats listener's default))");
  // ... which disabling the stats listener allows.
  CHECK_FALSE(parse_ok(R"({"stats": {"enabled": false}, "pools": {"c": {"protocol": "memcached", )"
                       R"("listen": "127.0.0.1:22222", "servers": ["10.0.0.1:11211"]}}})")
                  .stats_enabled);
}

TEST_CASE("config: each pool keeps its JSON text (reload compares it)") {
  const Config a = parse_ok(pool_doc(R"("timeout_ms": 100, )"));
  const Config b = parse_ok(pool_doc(R"("timeout_ms": 100, )"));
  const Config c = parse_ok(pool_doc(R"("timeout_ms": 200, )"));
  CHECK_FALSE(only_pool(a).source.empty());
  CHECK(only_pool(a).source == only_pool(b).source);
  CHECK(only_pool(a).source != only_pool(c).source);
}

TEST_CASE("config: tls and server_tls") {
  const PoolConfig p = only_pool(parse_ok(pool_doc(
      R"("tls": {"cert": "/c.pem", "key": "/k.pem", "ca": "/ca.pem", "verify_client": true,
                  "min_version": "1.3", "ciphers": "HIGH", "ciphersuites": "TLS_AES_128_GCM_SHA256"},
         "server_tls": {"ca": "/ca.pem", "server_name": "cache.internal"}, )")));
  CHECK(p.tls.enabled);
  CHECK(p.tls.cert == "/c.pem");
  CHECK(p.tls.key == "/k.pem");
  CHECK(p.tls.ca == "/ca.pem");
  CHECK(p.tls.verify);
  CHECK(p.tls.min_version == "1.3");
  CHECK(p.tls.ciphers == "HIGH");
  CHECK(p.server_tls.enabled);
  CHECK(p.server_tls.verify);  // on unless "verify": false
  CHECK(p.server_tls.server_name == "cache.internal");
  const PoolConfig none = only_pool(parse_ok(pool_doc("")));
  CHECK(!none.tls.enabled);
  CHECK(!none.server_tls.enabled);
  CHECK(!only_pool(parse_ok(pool_doc(R"("tls": {"cert": "/c", "key": "/k"}, )"))).tls.verify);

  CHECK(parse_error(pool_doc(R"("tls": {"key": "/k"}, )")) ==
        "pools.cache.tls: missing required key \"cert\" (the proxy's certificate)");
  CHECK(parse_error(pool_doc(R"("tls": {"cert": "/c"}, )")) ==
        "pools.cache.tls: missing required key \"key\" (the certificate's private key)");
  CHECK(parse_error(pool_doc(R"("tls": {"cert": "/c", "key": "/k", "verify_client": true}, )")) ==
        "pools.cache.tls.verify_client: needs \"ca\" (the CA certificates client certificates "
        "must chain to)");
  CHECK(parse_error(pool_doc(R"("tls": {"cert": "/c", "key": "/k", "min_version": "1.1"}, )")) ==
        "pools.cache.tls.min_version: \"1.1\" is not one of \"1.2\", \"1.3\"");
  CHECK(parse_error(pool_doc(R"("tls": "on", )")).find("pools.cache.tls: expected an object") == 0);
  CHECK(parse_error(pool_doc(R"("server_tls": {"cert": "/c"}, )")) ==
        "pools.cache.server_tls: \"cert\" needs \"key\"");
  CHECK(parse_error(pool_doc(R"("server_tls": {"verify_client": true}, )"))
            .find("pools.cache.server_tls.verify_client: unknown key") == 0);
  CHECK(parse_error(pool_doc(R"("tls": {"cert": "", "key": "/k"}, )")) ==
        "pools.cache.tls.cert: must not be empty (leave the key out instead)");
}
