// Unit tests for Redis Cluster's slot rule, CLUSTER SLOTS parsing and redirection errors.

#include "routing/cluster_slots.h"

#include <doctest/doctest.h>

#include <string>

namespace {

using dproxy::routing::cluster_hash_part;
using dproxy::routing::ClusterReply;
using dproxy::routing::crc16_xmodem;
using dproxy::routing::key_slot;
using dproxy::routing::parse_cluster_redirect;
using dproxy::routing::parse_cluster_slots;
using dproxy::routing::SlotRange;

std::string bulk(const std::string& s) {
  return "$" + std::to_string(s.size()) + "\r\n" + s + "\r\n";
}

// A node entry as Redis 7 sends it: [ip, port, id, {metadata}].
std::string node(const std::string& ip, int port, const std::string& id = "abc") {
  return "*4\r\n" + bulk(ip) + ":" + std::to_string(port) + "\r\n" + bulk(id) + "*0\r\n";
}

}  // namespace

TEST_CASE("cluster: CRC16 XMODEM golden values") {
  CHECK(crc16_xmodem("123456789") == 0x31C3);  // the Redis Cluster specification's check value
  CHECK(crc16_xmodem("") == 0);
  CHECK(crc16_xmodem("A") == 0x58E5);
}

TEST_CASE("cluster: key slots") {
  // Values redis-server 7.0 answers to CLUSTER KEYSLOT.
  CHECK(key_slot("foo") == 12182);
  CHECK(key_slot("bar") == 5061);
  CHECK(key_slot("hello") == 866);
  CHECK(key_slot("123456789") == (0x31C3 & 16383));
  CHECK(key_slot("") == 0);
}

TEST_CASE("cluster: hash tags") {
  CHECK(cluster_hash_part("{user1000}.following") == "user1000");
  CHECK(key_slot("{user1000}.following") == key_slot("{user1000}.followers"));
  CHECK(key_slot("{user1000}.following") == key_slot("user1000"));
  CHECK(cluster_hash_part("foo{}{bar}") == "foo{}{bar}");  // empty first section: whole key
  CHECK(cluster_hash_part("foo{{bar}}zap") == "{bar");     // first '{', then the next '}'
  CHECK(cluster_hash_part("foo{bar}{zap}") == "bar");      // only the first section
  CHECK(cluster_hash_part("foo{bar") == "foo{bar");        // no closing brace
  CHECK(cluster_hash_part("foo}bar{") == "foo}bar{");
  CHECK(cluster_hash_part("{}") == "{}");
  CHECK(cluster_hash_part("a{b}") == "b");
}

TEST_CASE("cluster: CLUSTER SLOTS reply") {
  std::string reply = "*2\r\n";
  reply += "*4\r\n:0\r\n:5460\r\n" + node("127.0.0.1", 30001) + node("127.0.0.1", 30004);
  reply += "*3\r\n:5461\r\n:16383\r\n" + node("", 30002);
  std::vector<SlotRange> ranges;
  std::string error;
  REQUIRE(parse_cluster_slots(reply, "10.1.2.3", ranges, error));
  REQUIRE(ranges.size() == 2);
  CHECK(ranges[0].first == 0);
  CHECK(ranges[0].last == 5460);
  CHECK(ranges[0].master == "127.0.0.1:30001");
  CHECK(ranges[0].replicas == std::vector<std::string>{"127.0.0.1:30004"});
  CHECK(ranges[1].first == 5461);
  CHECK(ranges[1].last == 16383);
  CHECK(ranges[1].master == "10.1.2.3:30002");  // unknown endpoint: the host that was asked
  CHECK(ranges[1].replicas.empty());

  SUBCASE("older servers: [ip, port] and [ip, port, id] nodes; IPv6") {
    std::string old = "*1\r\n*4\r\n:7\r\n:9\r\n*2\r\n" + bulk("::1") + ":6379\r\n" + "*3\r\n" +
                      bulk("10.0.0.2") + ":6380\r\n" + bulk("id") + "";
    REQUIRE(parse_cluster_slots(old, "h", ranges, error));
    REQUIRE(ranges.size() == 1);
    CHECK(ranges[0].master == "[::1]:6379");
    CHECK(ranges[0].replicas == std::vector<std::string>{"10.0.0.2:6380"});
  }
  SUBCASE("empty map (a cluster with no slots assigned)") {
    REQUIRE(parse_cluster_slots("*0\r\n", "h", ranges, error));
    CHECK(ranges.empty());
  }
  SUBCASE("errors") {
    CHECK_FALSE(parse_cluster_slots("-ERR This instance has cluster support disabled\r\n", "h",
                                    ranges, error));
    CHECK(error == "CLUSTER SLOTS failed: ERR This instance has cluster support disabled");
    CHECK_FALSE(parse_cluster_slots("+OK\r\n", "h", ranges, error));
    CHECK(error == "CLUSTER SLOTS reply is not an array");
    CHECK_FALSE(parse_cluster_slots("*1\r\n*3\r\n:5\r\n:4\r\n" + node("a", 1), "h", ranges, error));
    CHECK(error == "CLUSTER SLOTS entry 0 has no valid slot range");
    CHECK_FALSE(
        parse_cluster_slots("*1\r\n*3\r\n:0\r\n:16384\r\n" + node("a", 1), "h", ranges, error));
    CHECK_FALSE(parse_cluster_slots("*1\r\n*2\r\n:0\r\n:1\r\n", "h", ranges, error));
    CHECK_FALSE(
        parse_cluster_slots("*1\r\n*3\r\n:0\r\n:1\r\n*2\r\n:1\r\n:2\r\n", "h", ranges, error));
    CHECK(error == "CLUSTER SLOTS entry 0 has a node that is not [ip, port, ...]");
    CHECK_FALSE(parse_cluster_slots("*1\r\n*3\r\n:0\r\n:1\r\n" + node("a", 0), "h", ranges, error));
    CHECK(ranges.empty());
  }
}

TEST_CASE("cluster: redirection errors") {
  auto r = parse_cluster_redirect("-MOVED 3999 127.0.0.1:6381\r\n");
  CHECK(r.kind == ClusterReply::kMoved);
  CHECK(r.slot == 3999);
  CHECK(r.address == "127.0.0.1:6381");
  r = parse_cluster_redirect("-ASK 16383 10.0.0.5:7000\r\n");
  CHECK(r.kind == ClusterReply::kAsk);
  CHECK(r.slot == 16383);
  CHECK(r.address == "10.0.0.5:7000");
  r = parse_cluster_redirect("-MOVED 0 :6380\r\n");  // unknown endpoint: same host
  CHECK(r.kind == ClusterReply::kMoved);
  CHECK(r.address == ":6380");
  r = parse_cluster_redirect("-MOVED 1 [::1]:6380\r\n");
  CHECK(r.kind == ClusterReply::kMoved);
  CHECK(r.address == "[::1]:6380");
  CHECK(
      parse_cluster_redirect("-TRYAGAIN Multiple keys request during rehashing of slot\r\n").kind ==
      ClusterReply::kTryAgain);
  CHECK(parse_cluster_redirect("-CLUSTERDOWN The cluster is down\r\n").kind ==
        ClusterReply::kClusterDown);
  CHECK(parse_cluster_redirect("-CLUSTERDOWN\r\n").kind == ClusterReply::kClusterDown);
  // Not redirections.
  CHECK(parse_cluster_redirect("-ERR unknown command\r\n").kind == ClusterReply::kOther);
  CHECK(parse_cluster_redirect("+MOVED 1 a:1\r\n").kind == ClusterReply::kOther);
  CHECK(parse_cluster_redirect("-MOVEDX 1 a:1\r\n").kind == ClusterReply::kOther);
  CHECK(parse_cluster_redirect("-MOVED 16384 a:1\r\n").kind == ClusterReply::kOther);
  CHECK(parse_cluster_redirect("-MOVED x a:1\r\n").kind == ClusterReply::kOther);
  CHECK(parse_cluster_redirect("-MOVED 1 a\r\n").kind == ClusterReply::kOther);
  CHECK(parse_cluster_redirect("-MOVED 1 a:\r\n").kind == ClusterReply::kOther);
  CHECK(parse_cluster_redirect("-MOVED 1\r\n").kind == ClusterReply::kOther);
  CHECK(parse_cluster_redirect("-ASK 99999999999 a:1\r\n").kind == ClusterReply::kOther);
  CHECK(parse_cluster_redirect("").kind == ClusterReply::kOther);
}
