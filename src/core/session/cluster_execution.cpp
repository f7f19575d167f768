// ClusterExecution: requests of redis_cluster pools. Keys route by hash slot (CRC16 of the key or
// its {tag}, modulo 16384) to the slot's master, or to a replica for reads with read_from
// replica/any. Every fragment keeps its command bytes until its reply is final:
//   -MOVED <slot> <addr>   the map is updated, the fragment re-sent there
//   -ASK <slot> <addr>     ASKING + the fragment to <addr>, for this request only
//                          (after kMaxRedirects hops in a row: a backoff retry, as TRYAGAIN)
//   -TRYAGAIN/-CLUSTERDOWN re-sent after a backoff (<= kMaxRetries), then the error is final
//   connection failure     the map is refreshed; a request never written (connect failed) or
//                          a read is retried like TRYAGAIN, other writes fail (maybe applied)
//   replica failure        a read goes back to the slot's master
// Multi-key MGET/MSET/DEL/UNLINK/EXISTS/TOUCH are split by slot (a cluster node refuses keys of
// several slots in one command) and merged as in sharded pools.

#include "core/session/cluster_execution.h"

#include "core/backend/cluster_runtime.h"
#include "core/backend/pool_runtime.h"
#include "core/backend/server_connection.h"
#include "core/client_session.h"
#include "core/stats.h"
#include "core/worker.h"
#include "protocol/resp/reply_writer.h"
#include "routing/cluster_slots.h"

namespace dproxy::core {

namespace resp = protocol::resp;
using protocol::Request;
using resp::Routing;
using routing::ClusterReply;

namespace {

constexpr uint8_t kMaxRetries = 10;  // backoff 10, 20, 40 ... 500 ms: about 2.6 s in total

std::chrono::milliseconds retry_delay(uint8_t attempt) {
  return std::chrono::milliseconds(std::min<uint32_t>(10u << std::min<uint8_t>(attempt, 8), 500));
}

// Multibulk frames are kept byte for byte; an inline command is re-encoded as multibulk.
void assign_request(std::string& out, const Request& req) {
  out.clear();
  if (!req.frame.empty() && req.frame[0] == '*') {
    out.append(req.frame);
  } else {
    resp::append_command(out, req.args);
  }
}

}  // namespace

void ClusterExecution::dispatch(const resp::CommandInfo& cmd, const Request& req) {
  const auto& args = req.args;
  ClusterRuntime& cluster = *s_.pool().cluster();
  const bool read = (cmd.flags & resp::kCmdReadonly) != 0 && (cmd.flags & resp::kCmdWrite) == 0;
  uint16_t hslot = 0;
  bool keyed = true;
  switch (cmd.routing) {
    case Routing::kNoKeyForward:
      keyed = false;  // TIME, LOLWUT, ... HELP: any master answers
      break;
    case Routing::kSingleKey:
      if (s_.key_idx_.empty()) break;
      hslot = routing::key_slot(args[s_.key_idx_[0]]);
      break;
    case Routing::kMultiKeySplit:
      if (s_.key_idx_.empty()) break;
      split(cmd, req, read);
      return;
    case Routing::kSameServer:
      if (s_.key_idx_.empty()) break;
      hslot = routing::key_slot(args[s_.key_idx_[0]]);
      for (size_t i = 1; i < s_.key_idx_.size(); ++i) {
        if (routing::key_slot(args[s_.key_idx_[i]]) != hslot) {
          // Redis Cluster's own error.
          s_.redis_error("CROSSSLOT Keys in request don't hash to the same slot");
          return;
        }
      }
      break;
    default:
      break;
  }
  if (keyed && s_.key_idx_.empty()) {
    ReplySlot* slot = s_.ready_slot("-ERR dproxy: ");
    resp::append_upper_name(slot->data, cmd.name);
    slot->data.append(
        " names no key, so there is no server to route it to (pass at least one key)\r\n");
    return;
  }
  ReplySlot* slot = s_.new_slot(ReplySlot::Kind::kForward);
  slot->outstanding = 1;
  fragments(slot, 1);
  slot->cluster_read = read;
  assign_request(slot->frag_frames[0], req);
  uint32_t node;
  if (keyed) {
    slot->frag_hslot[0] = hslot;
    node = cluster.node_for(hslot, read, s_.read_turn_++);
  } else {
    const auto& masters = cluster.masters();
    node = masters[s_.read_turn_++ % masters.size()];
  }
  send(slot, 0, node, false);
}

void ClusterExecution::fragments(ReplySlot* slot, size_t n) {
  // NOTE: the slot keeps the runtime its fragments were sent with: after a config reload the
  // pool's new runtime serves new requests, the old one (kept while busy) finishes these.
  slot->cluster = s_.pool().cluster();
  if (slot->frag_frames.size() < n) slot->frag_frames.resize(n);
  for (size_t f = 0; f < n; ++f) slot->frag_frames[f].clear();
  slot->frag_hslot.assign(n, 0);
  slot->frag_node.assign(n, ClusterRuntime::kNoNode);
  slot->frag_redirects.assign(n, 0);
  slot->frag_retries.assign(n, 0);
}

void ClusterExecution::split(const resp::CommandInfo& cmd, const Request& req, bool read) {
  const auto& args = req.args;
  const bool pairs = resp::key_value_pairs(cmd);  // MSET k v [k v ...]: a key's value follows it
  ClusterRuntime& cluster = *s_.pool().cluster();
  std::vector<int32_t>& frag_of_slot = cluster.slot_scratch();
  s_.frag_servers_.clear();  // here: the hash slot of each fragment
  ReplySlot* slot = s_.new_slot(ReplySlot::Kind::kRespMerge);
  for (uint32_t idx : s_.key_idx_) {
    const uint16_t hslot = routing::key_slot(args[idx]);
    int32_t f = frag_of_slot[hslot];
    if (f < 0) {
      f = static_cast<int32_t>(s_.frag_servers_.size());
      frag_of_slot[hslot] = f;
      s_.frag_servers_.push_back(hslot);
    }
    slot->key_frag.push_back(static_cast<uint16_t>(f));
  }
  for (uint32_t hslot : s_.frag_servers_) frag_of_slot[hslot] = -1;  // all -1 again
  const size_t nfrags = s_.frag_servers_.size();
  slot->cluster_read = read;
  if (nfrags == 1) {
    slot->kind = ReplySlot::Kind::kForward;
    slot->outstanding = 1;
    fragments(slot, 1);
    assign_request(slot->frag_frames[0], req);
    slot->frag_hslot[0] = static_cast<uint16_t>(s_.frag_servers_[0]);
    send(slot, 0, cluster.node_for(slot->frag_hslot[0], read, s_.read_turn_++), false);
    return;
  }
  s_.expect_resp_fragments(slot, cmd.merge, nfrags);
  fragments(slot, nfrags);
  const uint64_t spread = s_.read_turn_++;
  for (size_t f = 0; f < nfrags; ++f) {
    s_.sharded_.append_split_part(slot->frag_frames[f], slot, req, f, pairs);
    const auto hslot = static_cast<uint16_t>(s_.frag_servers_[f]);
    slot->frag_hslot[f] = hslot;
    send(slot, static_cast<uint16_t>(f), cluster.node_for(hslot, read, spread), false);
  }
}

void ClusterExecution::send(ReplySlot* slot, uint16_t frag, uint32_t node, bool asking) {
  ClusterRuntime* const cluster = slot->cluster;
  ServerConnection* conn = &cluster->connection(node, s_.id_, s_.resp3_);
  if (conn->failing()) {
    // The node failed moments ago. A read for a replica goes to the master; anything else
    // waits for a refreshed map (a failover?) rather than fail at once.
    cluster->request_refresh();
    const uint16_t hslot = slot->frag_hslot[frag];
    if (slot->cluster_read && !asking && !cluster->is_master_of(node, hslot)) {
      const uint32_t master = cluster->master_for(hslot, s_.id_);
      if (master != node) {
        ClusterStats::bump(cluster->stats().replica_fallbacks);
        node = master;
        conn = &cluster->connection(node, s_.id_, s_.resp3_);
      }
    }
    if (conn->failing() && slot->frag_retries[frag] < kMaxRetries) {
      slot->frag_node[frag] = node;
      ClusterStats::bump(cluster->stats().retries);
      cluster->retry_later(s_.shared_from_this(), slot, frag,
                           retry_delay(slot->frag_retries[frag]++));
      return;
    }
  }
  if (asking) {
    conn->out().append(kAsking);
    conn->push(s_.shared_from_this(), slot, ClientSession::kIgnoredFrag,
               protocol::memcache::ReplyKind::kLine);
  }
  slot->frag_node[frag] = node;
  conn->out().append(slot->frag_frames[frag]);
  conn->push(s_.shared_from_this(), slot, frag, protocol::memcache::ReplyKind::kLine);
}

void ClusterExecution::retry(ReplySlot* slot, uint16_t frag) {
  ClusterRuntime* const cluster = slot->cluster;
  slot->frag_redirects[frag] = 0;
  send(slot, frag, cluster->node_for(slot->frag_hslot[frag], slot->cluster_read, s_.read_turn_++),
       false);
}

bool ClusterExecution::intercept(ReplySlot* slot, uint16_t frag, std::string_view& bytes) {
  ClusterRuntime* const cluster = slot->cluster;
  ClusterStats& stats = cluster->stats();
  const uint32_t from = slot->frag_node[frag];
  const uint16_t hslot = slot->frag_hslot[frag];
  auto retry = [&]() {
    if (slot->frag_retries[frag] >= kMaxRetries) {
      ClusterStats::bump(stats.gave_up);
      return false;  // the client gets the last error
    }
    ClusterStats::bump(stats.retries);
    cluster->retry_later(s_.shared_from_this(), slot, frag,
                         retry_delay(slot->frag_retries[frag]++));
    return true;
  };
  auto to_master = [&]() {
    // A replica that fails (or is not ready) sends the read back to the slot's master.
    if (!slot->cluster_read || cluster->is_master_of(from, hslot)) return false;
    // (Bounded: the master never sends a read back here; its failures go through retry().)
    const uint32_t master = cluster->master_for(hslot, s_.id_);
    if (master == from) return false;
    ClusterStats::bump(stats.replica_fallbacks);
    send(slot, frag, master, false);
    return true;
  };
  const routing::ClusterRedirect r = routing::parse_cluster_redirect(bytes);
  switch (r.kind) {
    case ClusterReply::kMoved:
    case ClusterReply::kAsk: {
      const bool ask = r.kind == ClusterReply::kAsk;
      ClusterStats::bump(ask ? stats.ask : stats.moved);
      const uint32_t node = cluster->node_at(r.address, from);
      if (node == ClusterRuntime::kNoNode) return false;  // the client gets the redirection
      if (!ask) cluster->moved(r.slot, node);
      if (++slot->frag_redirects[frag] > kMaxRedirects) {
        // Nodes that disagree for a moment (a slot handed over while SETSLOT NODE has not
        // reached every node yet): wait, then start again from the map.
        if (retry()) return true;
        error_.assign("-ERR dproxy: slot ");
        error_.append(std::to_string(r.slot));
        error_.append(" was redirected ");
        error_.append(std::to_string(kMaxRedirects));
        error_.append(" times in a row (last: ");
        std::string_view line = bytes.substr(1);
        while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.remove_suffix(1);
        error_.append(line);
        error_.append("); the cluster's slot map keeps changing\r\n");
        bytes = error_;
        return false;
      }
      send(slot, frag, node, ask);
      return true;
    }
    case ClusterReply::kClusterDown:
      cluster->request_refresh();
      return retry();
    case ClusterReply::kTryAgain:
      return retry();
    case ClusterReply::kOther:
      break;
  }
  if (bytes.starts_with("-ERR dproxy: backend ")) {
    // The connection failed or timed out: the map may be stale (a failover).
    cluster->request_refresh();
    if (to_master()) return true;
    // A request that was never written (the connect failed) is safe to send again, and so is
    // a read whose connection was lost (not one that timed out: it would wait twice as long).
    if (bytes.find(" connect failed") != std::string_view::npos ||
        bytes.find(" connect timed out") != std::string_view::npos ||
        (slot->cluster_read && bytes.find(" timed out") == std::string_view::npos))
      return retry();
    return false;
  }
  if (bytes.starts_with("-LOADING") || bytes.starts_with("-MASTERDOWN")) return to_master();
  return false;
}

void ClusterExecution::append_info(std::string& text) {
  ClusterRuntime* const cluster = s_.pool().cluster();
  const ClusterStats& s = cluster->stats();
  auto line = [&](const char* name, uint64_t value) {
    text += name;
    text += ':';
    text += std::to_string(value);
    text += "\r\n";
  };
  const PoolConfig& config = s_.pool().config();
  text += "cluster_read_from:";
  text += config.read_from == ReadFrom::kMaster    ? "master"
          : config.read_from == ReadFrom::kReplica ? "replica"
                                                   : "any";
  text += "\r\n";
  line("cluster_refresh_ms", config.cluster_refresh_ms);
  line("cluster_slot_map_version", s.slot_map_version.load(std::memory_order_relaxed));
  line("cluster_refreshes", s.refreshes.load(std::memory_order_relaxed));
  line("cluster_refresh_failures", s.refresh_failures.load(std::memory_order_relaxed));
  line("cluster_moved", s.moved.load(std::memory_order_relaxed));
  line("cluster_ask", s.ask.load(std::memory_order_relaxed));
  line("cluster_retries", s.retries.load(std::memory_order_relaxed));
  line("cluster_replica_fallbacks", s.replica_fallbacks.load(std::memory_order_relaxed));
  line("cluster_gave_up", s.gave_up.load(std::memory_order_relaxed));
  // This worker thread's view.
  line("cluster_masters", cluster->masters().size());
  line("cluster_known_nodes", cluster->node_count());
}

}  // namespace dproxy::core
