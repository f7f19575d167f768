// Unit tests for nutcracker YAML configs: key mapping, nutcracker's defaults, errors naming
// the key, and the new pool keys those need (listen mode, timeout 0, IPv6 servers).

#include <doctest/doctest.h>

#include <string>

#include "core/config.h"

namespace {

using dproxy::core::Config;
using dproxy::core::is_yaml_config;
using dproxy::core::nutcracker_yaml_to_json;
using dproxy::core::parse_config;
using dproxy::core::yaml_error_path;

Config yaml_ok(const std::string& yaml) {
  std::string json, error;
  INFO("yaml: " << yaml);
  bool converted = nutcracker_yaml_to_json(yaml, json, error);
  INFO("error: " << error);
  REQUIRE(converted);
  Config config;
  bool parsed = parse_config(json, config, error);
  INFO("json: " << json << " error: " << error);
  REQUIRE(parsed);
  return config;
}

std::string yaml_error(const std::string& yaml) {
  std::string json, error;
  INFO("yaml: " << yaml);
  CHECK_FALSE(nutcracker_yaml_to_json(yaml, json, error));
  CHECK(error.find('\n') == std::string::npos);
  return error;
}

}  // namespace

TEST_CASE("yaml: a minimal nutcracker pool gets nutcracker's defaults") {
  const Config c =
      yaml_ok("alpha:\n  listen: 127.0.0.1:22121\n  servers:\n   - 10.0.0.1:11211:1\n");
  REQUIRE(c.pools.size() == 1);
  const auto& p = c.pools[0];
  CHECK(p.name == "alpha");
  CHECK(p.protocol == dproxy::core::Protocol::kMemcached);
  CHECK(p.route.policy == "ketama");
  CHECK(p.hash == dproxy::routing::HashKind::kFnv1a_64);
  CHECK(p.timeout_ms == 0);  // nutcracker waits forever without `timeout`
  CHECK(p.backlog == 512);
  CHECK_FALSE(p.preconnect);
  CHECK_FALSE(p.tcp_keepalive);
  CHECK_FALSE(p.auto_eject_hosts);
  CHECK(p.server_retry_timeout_ms == 30000);
  CHECK(p.server_failure_limit == 2);
  CHECK(p.client_connections == 0);
  CHECK(p.server_connections_per_process == 1);
}

TEST_CASE("yaml: every nutcracker key maps to its dproxy key") {
  const Config c = yaml_ok(R"(beta:
  listen: /tmp/beta.sock 0660
  client_connections: 10
  tcpkeepalive: true
  hash: murmur
  hash_tag: "{}"
  distribution: modula
  timeout: 400
  backlog: 64
  preconnect: true
  redis: true
  redis_auth: pw
  redis_db: 2
  server_connections: 3
  auto_eject_hosts: true
  server_retry_timeout: 700
  server_failure_limit: 5
  servers:
   - 10.0.0.1:6379:2 one
   - 10.0.0.2:6379:1 two
)");
  const auto& p = c.pools.at(0);
  CHECK(p.listen.is_unix);
  CHECK(p.listen.host == "/tmp/beta.sock");
  CHECK(p.listen.mode == 0660);
  CHECK(p.client_connections == 10);
  CHECK(p.tcp_keepalive);
  CHECK(p.hash == dproxy::routing::HashKind::kMurmur);
  CHECK(p.hash_tag == "{}");
  CHECK(p.route.policy == "modula");
  CHECK(p.timeout_ms == 400);
  CHECK(p.connect_timeout_ms == 400);
  CHECK(p.backlog == 64);
  CHECK(p.preconnect);
  CHECK(p.protocol == dproxy::core::Protocol::kRedis);
  CHECK(p.client_password == "pw");
  CHECK(p.server_password == "pw");
  CHECK(p.db == 2);
  CHECK(p.server_connections_per_process == 3);
  CHECK(p.auto_eject_hosts);
  CHECK(p.server_retry_timeout_ms == 700);
  CHECK(p.server_failure_limit == 5);
  REQUIRE(p.servers.size() == 2);
  CHECK(p.servers[0].name == "one");
  CHECK(p.servers[0].weight == 2);
}

TEST_CASE("yaml: server_connections counts per process") {
  Config c =
      yaml_ok("a:\n  listen: 127.0.0.1:1\n  server_connections: 5\n  servers: [\"h:1:1\"]\n");
  dproxy::core::ConfigOverrides o;
  o.threads = 2;
  dproxy::core::apply_overrides(c, o);
  CHECK(c.pools[0].server_connections == 3);  // ceil(5 / 2) per worker thread
  o.threads = 8;
  dproxy::core::apply_overrides(c, o);
  CHECK(c.pools[0].server_connections == 1);
}

TEST_CASE("yaml: errors name the nutcracker key") {
  CHECK(yaml_error("a:\n  listen: 127.0.0.1:1\n  servers: [\"h:1:1\"]\n  dyn_port: 8101\n")
            .starts_with("a.dyn_port (line 4): unknown key: not a nutcracker 0.5 pool key"));
  CHECK(yaml_error("a:\n  listen: 127.0.0.1:1\n  servers: [\"h:1:1\"]\n  preconnect: yes\n") ==
        "a.preconnect (line 4): expected true or false, got \"yes\"");
  CHECK(yaml_error("a:\n  listen: 127.0.0.1:1\n  servers: [\"h:1:1\"]\n  timeout: 1s\n") ==
        "a.timeout (line 4): expected an integer, got \"1s\"");
  CHECK(yaml_error("a:\n  servers: [\"h:1:1\"]\n") ==
        "a (line 2): missing required key \"listen\"");
  CHECK(yaml_error("a:\n  listen: 127.0.0.1:1\n  redis_auth: pw\n  servers: [\"h:1:1\"]\n")
            .starts_with("a.redis_auth"));
  CHECK(yaml_error("a: [1, 2]\n").starts_with("a (line 1): expected a pool"));
  CHECK(
      yaml_error("a:\n  listen: x\n  listen: y\n").starts_with("a.listen (line 3): duplicate key"));
  CHECK(yaml_error("a:\n  listen: [\n").starts_with("invalid YAML: "));
  CHECK(yaml_error("").starts_with("(top level): expected nutcracker pools"));
}

TEST_CASE("yaml: parse_config errors are given back under the nutcracker key") {
  CHECK(yaml_error_path("pools.web.policy: \"x\" is not a policy") ==
        "web.distribution: \"x\" is not a policy");
  CHECK(yaml_error_path("pools.web.timeout_ms: 0 is out of range") ==
        "web.timeout: 0 is out of range");
  CHECK(yaml_error_path("pools.web.servers[1]: bad") == "web.servers[1]: bad");
  CHECK(yaml_error_path("pools.web: missing") == "web: missing");
}

TEST_CASE("yaml: which files are YAML") {
  CHECK(is_yaml_config("/etc/nutcracker/nutcracker.yml", "{"));
  CHECK(is_yaml_config("x.yaml", ""));
  CHECK_FALSE(is_yaml_config("pools.json", "alpha:"));
  CHECK(is_yaml_config("pools.conf", "\n# nutcracker\nalpha:\n"));
  CHECK_FALSE(is_yaml_config("pools.conf", "  \n{\"pools\": {}}"));
  CHECK_FALSE(is_yaml_config("pools.conf", "\xEF\xBB\xBF{\"pools\": {}}"));
}

TEST_CASE("config: listen mode, timeout 0 and IPv6 server literals in JSON") {
  Config c;
  std::string error;
  REQUIRE(parse_config(
      R"({"pools": {"a": {"protocol": "memcached", "listen": "/tmp/a.sock 0666",
          "timeout_ms": 0, "servers": ["[::1]:11211:2 six", {"address": "[fe80::1]:11212"}]}}})",
      c, error));
  const auto& p = c.pools[0];
  CHECK(p.listen.mode == 0666);
  CHECK(p.listen.host == "/tmp/a.sock");
  CHECK(p.timeout_ms == 0);
  CHECK(p.servers[0].host == "::1");
  CHECK(p.servers[0].port == 11211);
  CHECK(p.servers[0].weight == 2);
  CHECK(p.servers[0].address() == "[::1]:11211");
  CHECK(p.servers[1].host == "fe80::1");
  Config bad;
  CHECK_FALSE(parse_config(
      R"({"pools": {"a": {"protocol": "memcached", "listen": "/tmp/a.sock rw", "servers": ["h:1"]}}})",
      bad, error));
  CHECK(error.starts_with("pools.a.listen: \"/tmp/a.sock rw\" is not a unix socket path"));
  CHECK_FALSE(parse_config(
      R"({"pools": {"a": {"protocol": "memcached", "listen": "127.0.0.1:1", "servers": ["[::g]:1"]}}})",
      bad, error));
  CHECK(error == R"(pools.a.servers[0]: "[::g]:1": "::g" is not an IPv6 address)");
  CHECK_FALSE(parse_config(
      R"({"pools": {"a": {"protocol": "memcached", "listen": "127.0.0.1:1", "server_connections": 2,
          "server_connections_per_process": 2, "servers": ["h:1"]}}})",
      bad, error));
  CHECK(error.starts_with("pools.a.server_connections_per_process: give server_connections"));
}

TEST_CASE("config: resolve_interval_ms") {
  const std::string pools =
      R"("pools": {"a": {"protocol": "memcached", "listen": "127.0.0.1:1", "servers": ["h:1"]}})";
  Config c;
  std::string error;
  REQUIRE(parse_config("{" + pools + "}", c, error));
  CHECK(c.resolve_interval_ms == 30000);
  Config set;
  REQUIRE(parse_config(R"({"resolve_interval_ms": 0, )" + pools + "}", set, error));
  CHECK(set.resolve_interval_ms == 0);
  Config bad;
  CHECK_FALSE(parse_config(R"({"resolve_interval": 5, )" + pools + "}", bad, error));
  CHECK(error ==
        R"(resolve_interval: unknown top-level key (did you mean "resolve_interval_ms"?))");
}
