// Tests for the ketama, modula and random distributions.

#include "routing/distribution.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "routing/hash.h"
#include "routing/ketama.h"
#include "routing/server_order.h"

namespace {

using dproxy::routing::DistributionKind;
using dproxy::routing::hash_key;
using dproxy::routing::HashKind;
using dproxy::routing::KetamaDistribution;
using dproxy::routing::make_distribution;
using dproxy::routing::placement_hash;
using dproxy::routing::ServerSpec;
using dproxy::routing::twemproxy_server_order;

ServerSpec tcp(uint16_t port, uint32_t weight, std::string name = "") {
  return ServerSpec{"127.0.0.1", port, weight, std::move(name)};
}

ServerSpec unix_socket(std::string path, uint32_t weight, std::string name = "") {
  return ServerSpec{std::move(path), 0, weight, std::move(name)};
}

// The pools used to collect the golden placements below, in nutcracker config syntax.
std::vector<ServerSpec> golden_pool(std::string_view config) {
  if (config == "named_weighted") {
    // 127.0.0.1:21001:1 alpha / 127.0.0.1:21002:2 / 127.0.0.1:21003:3 gamma / 127.0.0.1:21004:1
    return {tcp(21001, 1, "alpha"), tcp(21002, 2), tcp(21003, 3, "gamma"), tcp(21004, 1)};
  }
  if (config == "port11211") {
    // 127.0.0.1:11211:1 / 127.0.0.1:21002:1 / 127.0.0.1:21003:3
    return {tcp(11211, 1), tcp(21002, 1), tcp(21003, 3)};
  }
  if (config == "unix") {
    // /tmp/dproxy-golden/mc1.sock:1 / /tmp/dproxy-golden/mc2.sock:2 sockbeta / 127.0.0.1:21003:1
    return {unix_socket("/tmp/dproxy-golden/mc1.sock", 1),
            unix_socket("/tmp/dproxy-golden/mc2.sock", 2, "sockbeta"), tcp(21003, 1)};
  }
  if (config == "float_edge5") {
    // Weights whose point counts twemproxy's float arithmetic rounds down (see below).
    return {tcp(21001, 1), tcp(21002, 2), tcp(21003, 3), tcp(21004, 4), tcp(21005, 15)};
  }
  // many_weighted: 127.0.0.1:2100N:N+1, servers 0, 3 and 6 named nodeN.
  std::vector<ServerSpec> servers;
  for (uint16_t i = 0; i < 8; ++i) {
    servers.push_back(tcp(static_cast<uint16_t>(21001 + i), i + 1u,
                          i % 3 == 0 ? "node" + std::to_string(i) : std::string()));
  }
  return servers;
}

const std::vector<std::string>& golden_keys() {
  static const std::vector<std::string> kKeys = {
      "a",
      "foo",
      "bar",
      "hello",
      "key:1",
      "key:2",
      "key:3",
      "key:42",
      "user:1000",
      "session:abcdef",
      "The_quick_brown_fox",
      "\x80",
      "\xff\xfe\xfd",
      "caf\xc3\xa9",
      "\xe9t\xe9",
      "a{b}c",
      "1234567890123",
      std::string(64, 'x'),
      std::string(250, 'k'),
      "0",
      "-1",
      "memcached",
      "nutcracker",
      "dproxy",
  };
  return kKeys;
}

struct PlacementGolden {
  std::string_view config;
  DistributionKind distribution;
  HashKind hash;
  // Server index (position in the config's server list) for each of golden_keys().
  std::string_view owners;
};

// Taken from nutcracker 0.5.0's placement (Debian 0.5.0+dfsg-2, amd64): every key was set
// through a nutcracker pool with the configuration above and looked up on each memcached
// backend directly. The same method agreed with this implementation on 480,000 keys over
// 10 configurations x 12 hashes x {ketama, modula}.
// Regenerate or check: /usr/bin/python3 scripts/nutcracker_golden.py [--check] placements
constexpr PlacementGolden kPlacements[] = {
    {"named_weighted", DistributionKind::kKetama, HashKind::kOneAtATime,
     "202112232210111212220131"},
    {"named_weighted", DistributionKind::kKetama, HashKind::kMd5, "022012123303011022223212"},
    {"named_weighted", DistributionKind::kKetama, HashKind::kCrc16, "020022222220003212101223"},
    {"named_weighted", DistributionKind::kKetama, HashKind::kCrc32, "000000000000000000000000"},
    {"named_weighted", DistributionKind::kKetama, HashKind::kCrc32a, "113122021312012233201331"},
    {"named_weighted", DistributionKind::kKetama, HashKind::kFnv1_64, "200233312223130233222123"},
    {"named_weighted", DistributionKind::kKetama, HashKind::kFnv1a_64, "232222212303232112122222"},
    {"named_weighted", DistributionKind::kKetama, HashKind::kFnv1_32, "120133310121232322113122"},
    {"named_weighted", DistributionKind::kKetama, HashKind::kFnv1a_32, "023220223221232212121221"},
    {"named_weighted", DistributionKind::kKetama, HashKind::kHsieh, "331220212133323210021212"},
    {"named_weighted", DistributionKind::kKetama, HashKind::kMurmur, "100310022211011002212222"},
    {"named_weighted", DistributionKind::kKetama, HashKind::kJenkins, "222320111211023131223212"},
    {"named_weighted", DistributionKind::kModula, HashKind::kOneAtATime,
     "021222210122222202210003"},
    {"named_weighted", DistributionKind::kModula, HashKind::kMd5, "312120110103213122212112"},
    {"named_weighted", DistributionKind::kModula, HashKind::kCrc16, "223222003112121011111002"},
    {"named_weighted", DistributionKind::kModula, HashKind::kCrc32, "123223112111022312313212"},
    {"named_weighted", DistributionKind::kModula, HashKind::kCrc32a, "120213222201112012113000"},
    {"named_weighted", DistributionKind::kModula, HashKind::kFnv1_64, "230121113321201011222101"},
    {"named_weighted", DistributionKind::kModula, HashKind::kFnv1a_64, "201201122020123032212122"},
    {"named_weighted", DistributionKind::kModula, HashKind::kFnv1_32, "221130201012211113201221"},
    {"named_weighted", DistributionKind::kModula, HashKind::kFnv1a_32, "122203100012220232202132"},
    {"named_weighted", DistributionKind::kModula, HashKind::kHsieh, "221102002322311221222112"},
    {"named_weighted", DistributionKind::kModula, HashKind::kMurmur, "310212222321321220022222"},
    {"named_weighted", DistributionKind::kModula, HashKind::kJenkins, "113022122102033222222311"},
    {"port11211", DistributionKind::kKetama, HashKind::kFnv1a_64, "002222212201212022102220"},
    {"unix", DistributionKind::kKetama, HashKind::kFnv1a_64, "111000010111211121111011"},
    {"float_edge5", DistributionKind::kKetama, HashKind::kFnv1a_64, "434433344343244444444204"},
    {"many_weighted", DistributionKind::kKetama, HashKind::kFnv1a_64, "677555567453373723765765"},
    {"port11211", DistributionKind::kModula, HashKind::kFnv1a_64, "122222200010212201212222"},
    {"unix", DistributionKind::kModula, HashKind::kFnv1a_64, "102011011110010111000111"},
    {"many_weighted", DistributionKind::kModula, HashKind::kFnv1a_64, "775267716762567315774676"},
};

}  // namespace

TEST_CASE("placement matches nutcracker 0.5.0 golden vectors") {
  for (const PlacementGolden& golden : kPlacements) {
    const std::vector<ServerSpec> servers = golden_pool(golden.config);
    const auto distribution = make_distribution(golden.distribution, servers);
    REQUIRE(golden.owners.size() == golden_keys().size());
    for (size_t i = 0; i < golden_keys().size(); ++i) {
      CAPTURE(golden.config);
      CAPTURE(static_cast<int>(golden.distribution));
      CAPTURE(static_cast<int>(golden.hash));
      CAPTURE(golden_keys()[i]);
      const uint32_t expected = static_cast<uint32_t>(golden.owners[i] - '0');
      CHECK(distribution->pick(hash_key(golden.hash, golden_keys()[i])) == expected);
    }
  }
}

TEST_CASE("the empty key dispatches on hash 0, like nutcracker") {
  // nutcracker 0.5.0, redis pool of 127.0.0.1:21101..21104 with weights 1..4: `SET "" v`
  // lands on server 3 with ketama and server 0 with modula, for every hash.
  const std::vector<ServerSpec> servers = {tcp(21101, 1), tcp(21102, 2), tcp(21103, 3),
                                           tcp(21104, 4)};
  const auto ketama = make_distribution(DistributionKind::kKetama, servers);
  const auto modula = make_distribution(DistributionKind::kModula, servers);
  for (HashKind kind : {HashKind::kMd5, HashKind::kFnv1a_64, HashKind::kJenkins}) {
    CHECK(ketama->pick(placement_hash(kind, "")) == 3u);
    CHECK(modula->pick(placement_hash(kind, "")) == 0u);
  }
}

TEST_CASE("ketama gives 160 points per server at equal weights") {
  const std::vector<ServerSpec> servers = {tcp(1, 1), tcp(2, 1), tcp(3, 1)};
  const KetamaDistribution ketama(servers);
  std::map<uint32_t, int> per_server;
  for (const auto& point : ketama.points()) ++per_server[point.server_index];
  CHECK(ketama.points().size() == 480);
  CHECK(per_server[0] == 160);
  CHECK(per_server[1] == 160);
  CHECK(per_server[2] == 160);
}

TEST_CASE("ketama point counts use twemproxy's float rounding") {
  // Exact arithmetic would give 32, 64, 96, 128 and 480 points; single-precision floats land
  // just below each whole number of 4-point groups, so twemproxy loses one group on four of
  // the servers. nutcracker placement confirms this (the float_edge5 golden vectors).
  const KetamaDistribution ketama(golden_pool("float_edge5"));
  std::map<uint32_t, int> per_server;
  for (const auto& point : ketama.points()) ++per_server[point.server_index];
  CHECK(per_server[0] == 28);
  CHECK(per_server[1] == 60);
  CHECK(per_server[2] == 92);
  CHECK(per_server[3] == 124);
  CHECK(per_server[4] == 480);
}

TEST_CASE("ketama gives no points to a server whose share rounds to zero groups") {
  const KetamaDistribution ketama(std::vector<ServerSpec>{tcp(1, 1000), tcp(2, 1)});
  for (const auto& point : ketama.points()) CHECK(point.server_index == 0u);
  CHECK(ketama.points().size() == 316);
}

TEST_CASE("ketama continuum is sorted and dispatch is lower_bound with wrap-around") {
  const KetamaDistribution ketama(golden_pool("named_weighted"));
  const auto points = ketama.points();
  REQUIRE(points.size() > 2);
  for (size_t i = 1; i < points.size(); ++i) CHECK(points[i - 1].value <= points[i].value);
  // A hash equal to a point belongs to that point's server; one past it to the next point's.
  for (size_t i = 0; i + 1 < points.size(); i += 37) {
    if (points[i].value == points[i + 1].value) continue;
    CHECK(ketama.pick(points[i].value) == points[i].server_index);
    CHECK(ketama.pick(points[i].value + 1) == points[i + 1].server_index);
  }
  CHECK(ketama.pick(0) == points.front().server_index);
  if (points.back().value != UINT32_MAX) {
    CHECK(ketama.pick(points.back().value + 1) == points.front().server_index);
    CHECK(ketama.pick(UINT32_MAX) == points.front().server_index);
  }
}

TEST_CASE("weight 0 servers receive no keys and do not shift the others") {
  std::vector<ServerSpec> with_zero = golden_pool("named_weighted");
  with_zero.insert(with_zero.begin() + 1, tcp(29999, 0, "ghost"));
  const std::vector<ServerSpec> without = golden_pool("named_weighted");
  for (DistributionKind kind : {DistributionKind::kKetama, DistributionKind::kModula}) {
    const auto a = make_distribution(kind, with_zero);
    const auto b = make_distribution(kind, without);
    for (uint32_t i = 0; i < 2000; ++i) {
      const uint32_t hash = hash_key(HashKind::kFnv1a_64, "key" + std::to_string(i));
      const uint32_t index = a->pick(hash);
      REQUIRE(index != 1u);
      CHECK((index == 0 ? 0u : index - 1) == b->pick(hash));
    }
  }
}

TEST_CASE("modula lays out weight slots in twemproxy's server order") {
  // Servers are ordered by ketama name: shorter first, then bytewise.
  const std::vector<ServerSpec> servers = {tcp(21001, 1, "b"), tcp(21002, 2), tcp(21003, 1, "a")};
  const std::vector<uint32_t> order = twemproxy_server_order(servers);
  CHECK(order == std::vector<uint32_t>{2, 0, 1});
  const auto modula = make_distribution(DistributionKind::kModula, servers);
  // Slots: 0 -> "a" (index 2), 1 -> "b" (index 0), 2 and 3 -> "127.0.0.1:21002" (index 1).
  CHECK(modula->pick(0) == 2u);
  CHECK(modula->pick(1) == 0u);
  CHECK(modula->pick(2) == 1u);
  CHECK(modula->pick(3) == 1u);
  CHECK(modula->pick(4) == 2u);
  CHECK(modula->pick(UINT32_MAX) == 1u);  // 4294967295 % 4 == 3
}

TEST_CASE("server order sorts by name length before content") {
  const std::vector<ServerSpec> servers = {tcp(21002, 1), tcp(11211, 1), tcp(21001, 1),
                                           ServerSpec{"localhost", 21000, 1, ""}};
  // Names: "127.0.0.1:21002", "127.0.0.1", "127.0.0.1:21001", "localhost:21000".
  CHECK(twemproxy_server_order(servers) == std::vector<uint32_t>{1, 2, 0, 3});
}

TEST_CASE("random picks only weighted servers, roughly by weight") {
  const std::vector<ServerSpec> servers = {tcp(1, 1), tcp(2, 0), tcp(3, 3)};
  const auto random = make_distribution(DistributionKind::kRandom, servers);
  std::array<int, 3> counts = {0, 0, 0};
  for (int i = 0; i < 40000; ++i) ++counts.at(random->pick(0));
  CHECK(counts[1] == 0);
  CHECK(counts[0] > 8000);
  CHECK(counts[0] < 12000);
  CHECK(counts[2] > 28000);
}

TEST_CASE("a single server gets every key") {
  const std::vector<ServerSpec> servers = {tcp(5, 3, "only")};
  for (DistributionKind kind :
       {DistributionKind::kKetama, DistributionKind::kModula, DistributionKind::kRandom}) {
    const auto distribution = make_distribution(kind, servers);
    for (uint32_t hash : {0u, 1u, 12345u, 0x80000000u, UINT32_MAX}) {
      CHECK(distribution->pick(hash) == 0u);
    }
  }
}

TEST_CASE("ketama: the bucketed pick finds the first point >= hash, as a binary search does") {
  const std::vector<std::vector<ServerSpec>> pools = {
      {tcp(21001, 1)},
      {tcp(21001, 1), tcp(21002, 1), tcp(21003, 1), tcp(21004, 1)},
      golden_pool("named_weighted"),
      golden_pool("float_edge5"),
      golden_pool("many_weighted"),
  };
  for (const auto& servers : pools) {
    const KetamaDistribution ketama(servers);
    const auto points = ketama.points();
    REQUIRE(!points.empty());
    const auto reference = [&](uint32_t hash) {
      auto it = std::lower_bound(
          points.begin(), points.end(), hash,
          [](const KetamaDistribution::Point& point, uint32_t h) { return point.value < h; });
      return it == points.end() ? points.front().server_index : it->server_index;
    };
    std::vector<uint32_t> hashes = {0, 1, 0xffffffffu, 0x80000000u, 0x7fffffffu};
    for (const auto& point : points) {
      hashes.push_back(point.value);
      hashes.push_back(point.value - 1);
      hashes.push_back(point.value + 1);
    }
    uint32_t x = 12345;
    for (int i = 0; i < 20000; ++i) {
      x = x * 1664525u + 1013904223u;
      hashes.push_back(x);
    }
    for (uint32_t h : hashes) {
      CAPTURE(h);
      REQUIRE(ketama.pick(h) == reference(h));
    }
  }
}
