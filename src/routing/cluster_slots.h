#pragma once
// Redis Cluster's key -> slot rule, the CLUSTER SLOTS reply and the cluster redirection errors
// (MOVED / ASK / TRYAGAIN / CLUSTERDOWN), as pure functions. No sockets.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace dproxy::routing {

inline constexpr uint32_t kClusterSlots = 16384;

// CRC16-CCITT (XMODEM: polynomial 0x1021, initial value 0, no reflection), the checksum Redis
// Cluster uses for key slots. crc16_xmodem("123456789") == 0x31C3.
uint16_t crc16_xmodem(std::string_view bytes);

// The part of `key` Redis Cluster hashes: the bytes between the first '{' and the next '}' when
// that section is non-empty, otherwise the whole key.
std::string_view cluster_hash_part(std::string_view key);

// The hash slot (0..16383) of `key`: CRC16 of cluster_hash_part(key) modulo 16384.
inline uint16_t key_slot(std::string_view key) {
  return static_cast<uint16_t>(crc16_xmodem(cluster_hash_part(key)) & (kClusterSlots - 1));
}

// One entry of a CLUSTER SLOTS reply: a slot range, its master and its replicas, each as
// "host:port" ("[v6]:port" for an IPv6 address).
struct SlotRange {
  uint16_t first = 0;
  uint16_t last = 0;
  std::string master;
  std::vector<std::string> replicas;
};

// Parses a complete CLUSTER SLOTS reply (RESP2 bytes): an array of [start, end, master node,
// replica nodes...], each node [ip, port, id, (metadata)...]. A node whose ip is empty or "?"
// (an endpoint the replying node does not know) gets `default_host` (the host that was asked).
// Returns false with `error` set for an error reply or any other shape; `out` is then empty.
bool parse_cluster_slots(std::string_view reply, std::string_view default_host,
                         std::vector<SlotRange>& out, std::string& error);

// What a Redis Cluster error reply asks the client to do.
enum class ClusterReply : uint8_t {
  kOther,        // not a cluster redirection: the reply is final
  kMoved,        // -MOVED <slot> <host:port>: the slot lives there now (update the map)
  kAsk,          // -ASK <slot> <host:port>: this request only: ASKING, then the request there
  kTryAgain,     // -TRYAGAIN ...: a multi-key request during a slot migration; retry later
  kClusterDown,  // -CLUSTERDOWN ...: the cluster cannot serve the slot now; retry later
};

struct ClusterRedirect {
  ClusterReply kind = ClusterReply::kOther;
  uint16_t slot = 0;         // kMoved / kAsk
  std::string_view address;  // kMoved / kAsk: "host:port", or ":port" (the same host)
};

// Classifies a complete reply (its bytes, starting with '-' for an error). Never allocates;
// `address` points into `reply`. A MOVED/ASK with a malformed slot or address is kOther.
ClusterRedirect parse_cluster_redirect(std::string_view reply);

}  // namespace dproxy::routing
