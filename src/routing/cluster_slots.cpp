#include "routing/cluster_slots.h"

#include <array>

#include "protocol/resp/reply_parser.h"

namespace dproxy::routing {
namespace {

constexpr std::array<uint16_t, 256> make_crc16_table() {
  std::array<uint16_t, 256> table{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t crc = i << 8;
    for (int bit = 0; bit < 8; ++bit) crc = (crc & 0x8000) ? (crc << 1) ^ 0x1021 : crc << 1;
    table[i] = static_cast<uint16_t>(crc);
  }
  return table;
}

constexpr std::array<uint16_t, 256> kCrc16Table = make_crc16_table();

// The payload of a complete bulk string element ("$<n>\r\n<bytes>\r\n"); false otherwise.
bool bulk_payload(std::string_view element, std::string_view& out) {
  if (element.size() < 4 || element[0] != '$') return false;
  size_t eol = element.find("\r\n");
  int64_t n = 0;
  if (eol == std::string_view::npos ||
      !protocol::resp::parse_int64(element.substr(1, eol - 1), n) || n < 0 ||
      eol + 2 + static_cast<size_t>(n) + 2 != element.size())
    return false;
  out = element.substr(eol + 2, static_cast<size_t>(n));
  return true;
}

bool integer_element(std::string_view element, int64_t& out) {
  return protocol::resp::parse_integer_reply(element, out);
}

// One node entry [ip, port, id, ...] -> "host:port".
bool parse_node(std::string_view element, std::string_view default_host, std::string& out) {
  protocol::resp::ArrayReader node(element);
  std::string_view ip_el, port_el, ip;
  int64_t port = 0;
  if (!node.ok() || node.size() < 2 || !node.next(ip_el) || !node.next(port_el) ||
      !bulk_payload(ip_el, ip) || !integer_element(port_el, port) || port <= 0 || port > 65535)
    return false;
  if (ip.empty() || ip == "?") ip = default_host;
  out.clear();
  if (ip.find(':') != std::string_view::npos) {
    out.push_back('[');
    out.append(ip);
    out.push_back(']');
  } else {
    out.append(ip);
  }
  out.push_back(':');
  out.append(std::to_string(port));
  return true;
}

}  // namespace

uint16_t crc16_xmodem(std::string_view bytes) {
  uint16_t crc = 0;
  for (unsigned char c : bytes)
    crc = static_cast<uint16_t>((crc << 8) ^ kCrc16Table[((crc >> 8) ^ c) & 0xff]);
  return crc;
}

std::string_view cluster_hash_part(std::string_view key) {
  size_t open = key.find('{');
  if (open == std::string_view::npos) return key;
  size_t close = key.find('}', open + 1);
  if (close == std::string_view::npos || close == open + 1) return key;
  return key.substr(open + 1, close - open - 1);
}

bool parse_cluster_slots(std::string_view reply, std::string_view default_host,
                         std::vector<SlotRange>& out, std::string& error) {
  out.clear();
  auto bad = [&](const std::string& what) {
    out.clear();
    error = what;
    return false;
  };
  if (!reply.empty() && reply[0] == '-') {
    std::string_view line = reply.substr(1);
    while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.remove_suffix(1);
    return bad("CLUSTER SLOTS failed: " + std::string(line));
  }
  protocol::resp::ArrayReader ranges(reply);
  if (!ranges.ok() || ranges.size() < 0) return bad("CLUSTER SLOTS reply is not an array");
  std::string_view entry;
  while (ranges.next(entry)) {
    protocol::resp::ArrayReader fields(entry);
    std::string_view first_el, last_el, node_el;
    int64_t first = 0, last = 0;
    if (!fields.ok() || fields.size() < 3 || !fields.next(first_el) || !fields.next(last_el) ||
        !integer_element(first_el, first) || !integer_element(last_el, last) || first < 0 ||
        last < first || last >= static_cast<int64_t>(kClusterSlots))
      return bad("CLUSTER SLOTS entry " + std::to_string(out.size()) + " has no valid slot range");
    SlotRange range;
    range.first = static_cast<uint16_t>(first);
    range.last = static_cast<uint16_t>(last);
    bool have_master = false;
    while (fields.next(node_el)) {
      std::string address;
      if (!parse_node(node_el, default_host, address))
        return bad("CLUSTER SLOTS entry " + std::to_string(out.size()) +
                   " has a node that is not [ip, port, ...]");
      if (!have_master) {
        range.master = std::move(address);
        have_master = true;
      } else {
        range.replicas.push_back(std::move(address));
      }
    }
    if (!fields.ok())
      return bad("CLUSTER SLOTS entry " + std::to_string(out.size()) + " is malformed");
    out.push_back(std::move(range));
  }
  if (!ranges.ok()) return bad("CLUSTER SLOTS reply is malformed");
  return true;
}

ClusterRedirect parse_cluster_redirect(std::string_view reply) {
  ClusterRedirect r;
  if (reply.empty() || reply[0] != '-') return r;
  std::string_view line = reply.substr(1);
  size_t eol = line.find('\r');
  if (eol != std::string_view::npos) line = line.substr(0, eol);
  auto word_is = [&](std::string_view word) {
    return line.starts_with(word) && (line.size() == word.size() || line[word.size()] == ' ');
  };
  if (word_is("TRYAGAIN")) {
    r.kind = ClusterReply::kTryAgain;
    return r;
  }
  if (word_is("CLUSTERDOWN")) {
    r.kind = ClusterReply::kClusterDown;
    return r;
  }
  ClusterReply kind;
  if (word_is("MOVED")) {
    kind = ClusterReply::kMoved;
    line.remove_prefix(6);
  } else if (word_is("ASK")) {
    kind = ClusterReply::kAsk;
    line.remove_prefix(4);
  } else {
    return r;
  }
  size_t space = line.find(' ');
  if (space == std::string_view::npos || space == 0) return r;
  uint32_t slot = 0;
  for (char c : line.substr(0, space)) {
    if (c < '0' || c > '9' || slot >= kClusterSlots) return r;
    slot = slot * 10 + static_cast<uint32_t>(c - '0');
  }
  std::string_view address = line.substr(space + 1);
  size_t colon = address.rfind(':');
  if (slot >= kClusterSlots || colon == std::string_view::npos || colon + 1 == address.size() ||
      address.find(' ') != std::string_view::npos)
    return r;
  for (char c : address.substr(colon + 1)) {
    if (c < '0' || c > '9') return r;
  }
  r.kind = kind;
  r.slot = static_cast<uint16_t>(slot);
  r.address = address;
  return r;
}

}  // namespace dproxy::routing
