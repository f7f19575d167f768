#include "core/backend/cluster_runtime.h"

#include <algorithm>
#include <charconv>

#include "core/backend/backend_setup.h"
#include "core/backend/oneshot_exchange.h"
#include "core/log.h"
#include "core/worker.h"
#include "protocol/resp/reply_writer.h"
#include "routing/cluster_slots.h"

namespace dproxy::core {

using Clock = std::chrono::steady_clock;
using Endpoint = asio::generic::stream_protocol::endpoint;

namespace {

constexpr std::chrono::milliseconds kMinRefreshInterval{100};
constexpr std::chrono::milliseconds kRefreshRetryAfterFailure{500};
constexpr size_t kMaxQueryReplyBytes = 64 << 20;

// "ip:port" or "[ipv6]:port" -> (host, endpoint). False for anything else (a host name).
bool parse_ip_address(std::string_view address, std::string& host, Endpoint& endpoint) {
  size_t colon = address.rfind(':');
  if (colon == std::string_view::npos || colon == 0) return false;
  std::string_view h = address.substr(0, colon), p = address.substr(colon + 1);
  if (h.size() > 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
  unsigned port = 0;
  auto [end, ec] = std::from_chars(p.data(), p.data() + p.size(), port);
  if (ec != std::errc() || end != p.data() + p.size() || port == 0 || port > 65535) return false;
  asio::error_code err;
  asio::ip::address ip = asio::ip::make_address(std::string(h), err);
  if (err) return false;
  host.assign(h);
  endpoint = asio::ip::tcp::endpoint(ip, static_cast<uint16_t>(port));
  return true;
}

}  // namespace

ClusterRuntime::ClusterRuntime(Worker& worker, const PoolConfig& config, ClusterStats& stats,
                               const std::vector<Endpoint>& seeds, PoolSlot& slot)
    : worker_(worker),
      slot_(slot),
      config_(config),
      stats_(stats),
      slot_master_(routing::kClusterSlots, kNoNode),
      slot_scratch_(routing::kClusterSlots, -1),
      periodic_timer_(worker.io()),
      delay_timer_(worker.io()),
      retry_timer_(worker.io()) {
  setup_ = backend_setup(config, 0, setup_replies_);  // AUTH; a cluster has database 0 only
  setup3_ = backend_setup(config, 0, setup3_replies_, true);
  query_ = setup_;
  query_replies_ = setup_replies_ + 1;
  query_.append("*2\r\n$7\r\nCLUSTER\r\n$5\r\nSLOTS\r\n");
  if (config.read_from != ReadFrom::kMaster) {
    // Every node connection may serve replica reads (roles change at failover).
    setup_.append("*1\r\n$8\r\nREADONLY\r\n");
    ++setup_replies_;
    setup3_.append("*1\r\n$8\r\nREADONLY\r\n");
    ++setup3_replies_;
  }
  for (size_t i = 0; i < config.servers.size(); ++i) {
    const auto& s = config.servers[i];
    uint32_t node = add_node(s.address(), s.host, seeds[i]);
    seeds_.push_back(node);
  }
  masters_ = seeds_;
  // The first refresh runs as soon as the worker's loop does; then every cluster_refresh_ms.
  asio::post(worker.io(), [this, alive = alive_] {
    if (!*alive) return;
    request_refresh();
    arm_periodic();
  });
}

ClusterRuntime::~ClusterRuntime() {
  *alive_ = false;
  periodic_timer_.cancel();
  delay_timer_.cancel();
  retry_timer_.cancel();
}

uint32_t ClusterRuntime::add_node(std::string address, std::string host, Endpoint endpoint) {
  auto node = std::make_unique<Node>();
  node->address = std::move(address);
  node->host = std::move(host);
  node->endpoint = std::move(endpoint);
  nodes_.push_back(std::move(node));
  return static_cast<uint32_t>(nodes_.size() - 1);
}

uint32_t ClusterRuntime::node_at(std::string_view address, uint32_t relative_to) {
  std::string full;
  if (!address.empty() && address[0] == ':') {
    // Redis sends ":port" when it does not know the node's address: the host it asked.
    const std::string& host = nodes_[relative_to]->host;
    if (host.find(':') != std::string::npos) {
      full = "[" + host + "]";
    } else {
      full = host;
    }
    full.append(address);
    address = full;
  }
  for (uint32_t i = 0; i < nodes_.size(); ++i) {
    if (nodes_[i]->address == address) return i;
  }
  std::string host;
  Endpoint endpoint;
  if (!parse_ip_address(address, host, endpoint)) {
    LOG_WARN("pool %s: cluster node address \"%.*s\" is not ip:port; ignored", config_.name.c_str(),
             static_cast<int>(address.size()), address.data());
    return kNoNode;
  }
  LOG_DEBUG("pool %s: cluster node %.*s discovered", config_.name.c_str(),
            static_cast<int>(address.size()), address.data());
  return add_node(std::string(address), std::move(host), std::move(endpoint));
}

ServerConnection& ClusterRuntime::connection(uint32_t node, uint64_t spread, bool resp3) {
  Node& n = *nodes_[node];
  auto& conns = resp3 ? n.conns3 : n.conns;
  if (conns.empty()) {
    for (uint32_t c = 0; c < config_.server_connections; ++c) {
      conns.push_back(std::make_unique<ServerConnection>(
          worker_, n.endpoint, n.address, config_, nullptr, node, resp3 ? setup3_ : setup_,
          resp3 ? setup3_replies_ : setup_replies_, &slot_));
    }
  }
  return *conns[spread % conns.size()];
}

std::unique_ptr<ServerConnection> ClusterRuntime::make_dedicated(uint32_t node, bool resp3) {
  const Node& n = *nodes_[node];
  return std::make_unique<ServerConnection>(worker_, n.endpoint, n.address, config_, nullptr, node,
                                            resp3 ? setup3_ : setup_,
                                            resp3 ? setup3_replies_ : setup_replies_, &slot_);
}

uint32_t ClusterRuntime::master_for(uint16_t slot, uint64_t spread) const {
  uint32_t m = slot_master_[slot];
  if (m != kNoNode) return m;
  return seeds_[spread % seeds_.size()];
}

uint32_t ClusterRuntime::node_for(uint16_t slot, bool read, uint64_t spread) const {
  uint32_t m = slot_master_[slot];
  if (m == kNoNode) return seeds_[spread % seeds_.size()];
  if (!read || config_.read_from == ReadFrom::kMaster) return m;
  const auto& replicas = nodes_[m]->replicas;
  if (replicas.empty()) return m;
  if (config_.read_from == ReadFrom::kReplica) return replicas[spread % replicas.size()];
  size_t k = spread % (replicas.size() + 1);
  return k == replicas.size() ? m : replicas[k];
}

void ClusterRuntime::moved(uint16_t slot, uint32_t node) {
  if (slot_master_[slot] != node) {
    slot_master_[slot] = node;
    ++version_;
    stats_.raise_version(version_);
  }
  if (refreshing_) moves_during_refresh_.emplace_back(slot, node);
  request_refresh();
}

void ClusterRuntime::request_refresh() {
  if (refreshing_) {
    refresh_again_ = true;
    return;
  }
  auto now = Clock::now();
  if (now < next_refresh_allowed_) {
    if (delay_armed_) return;
    delay_armed_ = true;
    delay_timer_.expires_at(next_refresh_allowed_);
    delay_timer_.async_wait([this, alive = alive_](const asio::error_code& ec) {
      if (!*alive || ec) return;
      delay_armed_ = false;
      request_refresh();
    });
    return;
  }
  start_refresh();
}

void ClusterRuntime::arm_periodic() {
  periodic_timer_.expires_after(std::chrono::milliseconds(config_.cluster_refresh_ms));
  periodic_timer_.async_wait([this, alive = alive_](const asio::error_code& ec) {
    if (!*alive || ec) return;
    request_refresh();
    arm_periodic();
  });
}

void ClusterRuntime::start_refresh() {
  refreshing_ = true;
  refresh_again_ = false;
  next_refresh_allowed_ = Clock::now() + kMinRefreshInterval;
  moves_during_refresh_.clear();
  // Masters first (they know the latest slot owners), then every other known node; start at a
  // rotating position so one dead node is not always asked first.
  candidates_.clear();
  const size_t round = refresh_round_++;
  for (size_t i = 0; i < masters_.size(); ++i)
    candidates_.push_back(masters_[(round + i) % masters_.size()]);
  for (size_t i = 0; i < nodes_.size(); ++i) {
    auto n = static_cast<uint32_t>((round + i) % nodes_.size());
    if (std::find(candidates_.begin(), candidates_.end(), n) == candidates_.end())
      candidates_.push_back(n);
  }
  query(0);
}

void ClusterRuntime::query(size_t i) {
  if (i >= candidates_.size()) {
    refreshing_ = false;
    ClusterStats::bump(stats_.refresh_failures);
    LOG_WARN("pool %s: cluster slot map refresh failed: no node answered CLUSTER SLOTS",
             config_.name.c_str());
    next_refresh_allowed_ = Clock::now() + kRefreshRetryAfterFailure;
    request_refresh();
    return;
  }
  const uint32_t node = candidates_[i];
  auto limit = std::chrono::milliseconds(
      config_.connect_timeout_ms +
      (config_.timeout_ms != 0 ? config_.timeout_ms : config_.connect_timeout_ms));
  std::make_shared<OneshotExchange>(
      worker_.io(), nodes_[node]->endpoint, query_, query_replies_, Protocol::kRedis, limit,
      kMaxQueryReplyBytes,
      OneshotExchange::Tls{config_.server_tls.enabled, slot_.tls, nodes_[node]->host,
                           [this, alive = alive_](bool ok) {
                             if (!*alive) return;
                             ++(ok ? slot_.counters.server_tls_handshakes
                                   : slot_.counters.server_tls_handshake_failures);
                           }},
      [this, alive = alive_, node, i](OneshotExchange::Outcome outcome, std::string_view reply) {
        if (!*alive) return;
        if (outcome != OneshotExchange::Outcome::kReply) {
          if (outcome == OneshotExchange::Outcome::kMalformed) reply = "malformed reply";
          LOG_DEBUG("pool %s: CLUSTER SLOTS to %s failed: %.*s", config_.name.c_str(),
                    nodes_[node]->address.c_str(), static_cast<int>(reply.size()), reply.data());
        } else if (apply(reply, node)) {
          refreshing_ = false;
          ClusterStats::bump(stats_.refreshes);
          if (refresh_again_) request_refresh();
          return;
        }
        query(i + 1);
      })
      ->run();
}

bool ClusterRuntime::apply(std::string_view reply, uint32_t from) {
  std::vector<routing::SlotRange> ranges;
  std::string error;
  if (!routing::parse_cluster_slots(reply, nodes_[from]->host, ranges, error)) {
    LOG_WARN("pool %s: node %s: %s", config_.name.c_str(), nodes_[from]->address.c_str(),
             error.c_str());
    return false;
  }
  if (ranges.empty()) return false;  // a node that has not joined the cluster (yet)
  std::vector<uint32_t> map(routing::kClusterSlots, kNoNode);
  std::vector<std::vector<uint32_t>> replicas(nodes_.size());
  for (const auto& range : ranges) {
    uint32_t master = node_at(range.master, from);
    if (master == kNoNode) continue;
    std::fill(map.begin() + range.first, map.begin() + range.last + 1, master);
    if (replicas.size() < nodes_.size()) replicas.resize(nodes_.size());
    for (const auto& r : range.replicas) {
      uint32_t rn = node_at(r, from);
      if (rn == kNoNode) continue;
      if (replicas.size() < nodes_.size()) replicas.resize(nodes_.size());
      auto& list = replicas[master];
      if (std::find(list.begin(), list.end(), rn) == list.end()) list.push_back(rn);
    }
  }
  replicas.resize(nodes_.size());
  // A MOVED that arrived while this answer was on its way is newer than it.
  for (auto [slot, node] : moves_during_refresh_) map[slot] = node;
  moves_during_refresh_.clear();
  bool changed = map != slot_master_;
  for (uint32_t n = 0; n < nodes_.size(); ++n) {
    if (nodes_[n]->replicas != replicas[n]) {
      changed = true;
      nodes_[n]->replicas = std::move(replicas[n]);
    }
  }
  if (!changed) return true;
  slot_master_.swap(map);
  masters_.clear();
  size_t covered = 0, replica_count = 0;
  for (uint32_t m : slot_master_) {
    if (m == kNoNode) continue;
    ++covered;
    if (std::find(masters_.begin(), masters_.end(), m) == masters_.end()) masters_.push_back(m);
  }
  std::sort(masters_.begin(), masters_.end(),
            [this](uint32_t a, uint32_t b) { return nodes_[a]->address < nodes_[b]->address; });
  for (uint32_t m : masters_) replica_count += nodes_[m]->replicas.size();
  if (masters_.empty()) masters_ = seeds_;
  ++version_;
  stats_.raise_version(version_);
  LOG_INFO(
      "pool %s: worker %u: cluster slot map v%llu from %s: %zu masters, %zu replicas, %zu/%u "
      "slots covered",
      config_.name.c_str(), worker_.index(), static_cast<unsigned long long>(version_),
      nodes_[from]->address.c_str(), masters_.size(), replica_count, covered,
      routing::kClusterSlots);
  return true;
}

void ClusterRuntime::retry_later(std::shared_ptr<ReplySink> session, ReplySlot* slot, uint16_t frag,
                                 std::chrono::milliseconds delay) {
  retries_.push_back(Retry{std::move(session), slot, frag, Clock::now() + delay});
  arm_retry_timer();
}

void ClusterRuntime::arm_retry_timer() {
  if (retries_.empty()) return;
  auto earliest = retries_[0].due;
  for (const auto& r : retries_) earliest = std::min(earliest, r.due);
  if (retry_armed_ && retry_timer_at_ <= earliest) return;
  retry_armed_ = true;
  retry_timer_at_ = earliest;
  retry_timer_.expires_at(earliest);
  retry_timer_.async_wait([this, alive = alive_](const asio::error_code& ec) {
    if (!*alive || ec == asio::error::operation_aborted) return;
    retry_armed_ = false;
    on_retry_timer();
  });
}

void ClusterRuntime::on_retry_timer() {
  auto now = Clock::now();
  due_scratch_.clear();
  size_t kept = 0;
  for (auto& r : retries_) {
    if (r.due <= now) {
      due_scratch_.push_back(std::move(r));
    } else {
      retries_[kept++] = std::move(r);
    }
  }
  retries_.resize(kept);
  std::vector<Retry> due;
  due.swap(due_scratch_);  // a retry may queue new retries
  for (auto& r : due) r.session->cluster_retry(r.slot, r.frag);
  due.clear();
  due_scratch_.swap(due);
  arm_retry_timer();
}

size_t ClusterRuntime::buffer_bytes() const {
  size_t n = 0;
  for (const auto& node : nodes_) {
    for (const auto& c : node->conns) n += c->buffer_bytes();
    for (const auto& c : node->conns3) n += c->buffer_bytes();
  }
  return n;
}

size_t ClusterRuntime::pending() const {
  size_t n = retries_.size();
  for (const auto& node : nodes_) {
    for (const auto& c : node->conns) n += c->pending();
    for (const auto& c : node->conns3) n += c->pending();
  }
  return n;
}

bool ClusterRuntime::busy() const {
  if (!retries_.empty()) return true;
  for (const auto& node : nodes_) {
    for (const auto& c : node->conns)
      if (c->busy()) return true;
    for (const auto& c : node->conns3)
      if (c->busy()) return true;
  }
  return false;
}

}  // namespace dproxy::core
