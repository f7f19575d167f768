// DedicatedConnections: a Redis client's own backend connections. See dedicated.h.

#include "core/session/dedicated.h"

#include "core/backend/cluster_runtime.h"
#include "core/backend/pool_runtime.h"
#include "core/backend/server_connection.h"
#include "core/client_session.h"
#include "core/log.h"
#include "core/worker.h"
#include "protocol/resp/reply_writer.h"
#include "routing/cluster_slots.h"

namespace dproxy::core {

namespace resp = protocol::resp;
using protocol::Request;

void ClientSession::dedicated_taken() {
  clients_.dedicated.fetch_add(1);
  ++slot_.counters.dedicated_held;
}

void ClientSession::dedicated_returned() {
  clients_.dedicated.fetch_sub(1);
  --slot_.counters.dedicated_held;
}

DedicatedConnections::~DedicatedConnections() {
  // Normally released when the client closed; closed later in any case (the session may be
  // going inside a callback of one of these connections).
  for (auto& lease : leases_) {
    s_.dedicated_returned();
    close_later(s_, std::move(lease.conn));
  }
}

void DedicatedConnections::close_later(ClientSession& s, std::unique_ptr<ServerConnection> conn) {
  // Not now: this may run inside a callback of that very connection.
  s.worker_.drop_later(std::move(conn));
}

DedicatedConnections::Lease* DedicatedConnections::get(uint32_t server, bool answer_limit) {
  const int32_t db = s_.pool().cluster() != nullptr ? -1 : s_.db_;
  const bool resp3 = s_.resp3_;
  const uint64_t generation = s_.slot_.dedicated_idle.generation();
  for (auto& lease : leases_) {
    if (lease.server == server && lease.db == db && lease.resp3 == resp3 &&
        lease.generation == generation)
      return &lease;
  }
  const PoolConfig& config = s_.pool().config();
  if (s_.clients_.dedicated.load() >= config.max_dedicated_connections) {
    if (!answer_limit) return nullptr;
    ReplySlot* slot = s_.ready_slot(
        "-ERR dproxy: too many dedicated backend connections (the pool's "
        "max_dedicated_connections, ");
    slot->data.append(std::to_string(config.max_dedicated_connections));
    slot->data.append(", are held by clients in blocking commands or WATCH); try again later\r\n");
    return nullptr;
  }
  PoolRuntime& pool = s_.pool();
  ClusterRuntime* cluster = pool.cluster();
  const std::string address =
      cluster != nullptr ? cluster->address(server) : config.servers[server].address();
  std::unique_ptr<ServerConnection> conn = s_.slot_.dedicated_idle.take(address, db, resp3);
  if (!conn) {
    conn = cluster != nullptr ? cluster->make_dedicated(server, resp3)
                              : pool.make_dedicated(server, db, resp3);
    ++s_.slot_.counters.dedicated_opened;
  }
  s_.dedicated_taken();
  leases_.push_back(Lease{server, db, resp3, false, generation, std::move(conn)});
  return &leases_.back();
}

void DedicatedConnections::give_back(size_t i) {
  Lease& lease = leases_[i];
  s_.dedicated_returned();
  // put() takes the connection only when it keeps it.
  if (s_.closed_ ||
      !s_.slot_.dedicated_idle.put(lease.conn, lease.db, lease.resp3, lease.generation))
    close_later(s_, std::move(lease.conn));
  leases_.erase(leases_.begin() + static_cast<std::ptrdiff_t>(i));
}

void DedicatedConnections::on_reply(uint32_t server) {
  for (size_t i = 0; i < leases_.size(); ++i) {
    Lease& lease = leases_[i];
    if (lease.server != server || lease.pinned || lease.conn->busy()) continue;
    give_back(i);
    return;
  }
}

bool DedicatedConnections::waiting() const {
  for (const auto& lease : leases_) {
    if (lease.conn->busy()) return true;
  }
  return false;
}

void DedicatedConnections::release_all() {
  while (!leases_.empty()) {
    Lease& lease = leases_.back();
    if (lease.pinned || lease.conn->busy()) {
      // A blocked command or a WATCH: closing the connection ends it on the server.
      s_.dedicated_returned();
      close_later(s_, std::move(lease.conn));
      leases_.pop_back();
    } else {
      give_back(leases_.size() - 1);
    }
  }
  watched_place_ = -1;
}

DedicatedConnections::Lease* DedicatedConnections::watched() {
  for (auto& lease : leases_) {
    if (lease.pinned) return &lease;
  }
  return nullptr;
}

ServerConnection& DedicatedConnections::watched_connection() {
  return *watched()->conn;
}

uint32_t DedicatedConnections::watched_server() {
  return watched()->server;
}

void DedicatedConnections::exec_sent() {
  if (Lease* lease = watched()) lease->pinned = false;  // given back once EXEC's reply is in
  watched_place_ = -1;
}

void DedicatedConnections::protocol_changed(bool resp3) {
  Lease* lease = watched();
  if (lease == nullptr || lease->resp3 == resp3) return;
  lease->resp3 = resp3;
  lease->conn->out().append(resp3 ? std::string_view("*2\r\n$5\r\nHELLO\r\n$1\r\n3\r\n")
                                  : std::string_view("*2\r\n$5\r\nHELLO\r\n$1\r\n2\r\n"));
  lease->conn->push(s_.shared_from_this(), &ignored_slot_, ClientSession::kIgnoredFrag,
                    protocol::memcache::ReplyKind::kLine);
}

void DedicatedConnections::drop_watch() {
  for (size_t i = 0; i < leases_.size(); ++i) {
    Lease& lease = leases_[i];
    if (!lease.pinned) continue;
    lease.pinned = false;
    if (lease.conn->busy()) {
      // A reply of this client is still due on it (WATCH ... DISCARD in one batch): the server
      // forgets the WATCH with an UNWATCH behind it; the connection is given back after.
      static constexpr std::string_view kUnwatch = "*1\r\n$7\r\nUNWATCH\r\n";
      lease.conn->out().append(kUnwatch);
      lease.conn->push(s_.shared_from_this(), &ignored_slot_, ClientSession::kIgnoredFrag,
                       protocol::memcache::ReplyKind::kLine);
    } else {
      // Closing it is how the server forgets the WATCH.
      s_.dedicated_returned();
      close_later(s_, std::move(lease.conn));
      leases_.erase(leases_.begin() + static_cast<std::ptrdiff_t>(i));
    }
    break;
  }
  watched_place_ = -1;
}

int64_t DedicatedConnections::keys_server(const resp::CommandInfo& cmd, const Request& req,
                                          int64_t& place) {
  PoolRuntime& pool = s_.pool();
  ClusterRuntime* cluster = pool.cluster();
  place = -1;
  for (uint32_t idx : s_.key_idx_) {
    const std::string_view key = req.args[idx];
    const int64_t p = cluster != nullptr ? routing::key_slot(key) : pool.server_for(key);
    if (place < 0) place = p;
    if (p == place) continue;
    if (cluster != nullptr) {
      s_.redis_error("CROSSSLOT Keys in request don't hash to the same slot");
    } else {
      s_.crossslot_error(cmd);
    }
    return -1;
  }
  if (place < 0) {
    s_.redis_no_key_error(cmd);
    return -1;
  }
  if (cluster != nullptr) return cluster->master_for(static_cast<uint16_t>(place), s_.id_);
  if (pool.is_down(static_cast<uint32_t>(place))) {
    s_.ready_slot(pool.down_error(static_cast<uint32_t>(place)));
    return -1;
  }
  return place;
}

void DedicatedConnections::send(Lease& lease, const Request& req, bool blocking,
                                bool redirectable) {
  ReplySlot* slot = s_.new_slot(ReplySlot::Kind::kForward);
  slot->outstanding = 1;
  slot->dedicated = true;
  slot->child = lease.server;
  std::string& out = lease.conn->out();
  const size_t start = out.size();
  if (!req.frame.empty() && req.frame[0] == '*') {
    out.append(req.frame);
  } else {
    resp::append_command(out, req.args);
  }
  if (redirectable && s_.pool().cluster() != nullptr) {
    // Kept until the reply, in case the slot moves while the command waits.
    slot->frame.assign(out, start);
  }
  lease.conn->push(s_.shared_from_this(), slot, 0, protocol::memcache::ReplyKind::kLine, blocking);
}

void DedicatedConnections::blocking(const resp::CommandInfo& cmd, const Request& req) {
  int64_t place = -1;
  const int64_t server = keys_server(cmd, req, place);
  if (server < 0) return;
  Lease* lease = get(static_cast<uint32_t>(server));
  if (lease == nullptr) return;
  send(*lease, req, true, true);
}

bool DedicatedConnections::follow_redirect(ReplySlot* slot, std::string_view reply) {
  ClusterRuntime* const cluster = s_.pool().cluster();
  // (A reload may have replaced the runtime since: its node numbers then mean nothing here.)
  if (cluster == nullptr || slot->frame.empty() || slot->child >= cluster->node_count())
    return false;
  const routing::ClusterRedirect r = routing::parse_cluster_redirect(reply);
  const bool ask = r.kind == routing::ClusterReply::kAsk;
  if ((r.kind != routing::ClusterReply::kMoved && !ask) ||
      slot->tried >= ClusterExecution::kMaxRedirects)
    return false;  // the client gets the reply as it is
  const uint32_t from = slot->child;
  // A WATCH: its pin moves with it (an ASK would hold for one command, not for the
  // transaction that follows: the client gets it).
  const bool watch = watched() != nullptr && watched()->server == from;
  if (watch && ask) return false;
  const uint32_t node = cluster->node_at(r.address, from);
  if (node == ClusterRuntime::kNoNode) return false;
  ClusterStats::bump(ask ? cluster->stats().ask : cluster->stats().moved);
  if (!ask) cluster->moved(r.slot, node);
  Lease* lease = get(node, false);
  if (lease == nullptr) return false;  // no dedicated connection left: the redirection it is
  if (watch) {
    watched()->pinned = false;  // (get() may have moved the leases: looked up again)
    lease->pinned = true;
  }
  ++slot->tried;
  slot->child = node;
  std::string& out = lease->conn->out();
  auto self = s_.shared_from_this();
  if (ask) {
    out.append(ClusterExecution::kAsking);
    lease->conn->push(self, &ignored_slot_, ClientSession::kIgnoredFrag,
                      protocol::memcache::ReplyKind::kLine);
  }
  out.append(slot->frame);
  lease->conn->push(self, slot, 0, protocol::memcache::ReplyKind::kLine, !watch);
  on_reply(from);  // the old node's connection goes back once idle
  return true;
}

void DedicatedConnections::watch(const resp::CommandInfo& cmd, const Request& req) {
  int64_t place = -1;
  const int64_t server = keys_server(cmd, req, place);
  if (server < 0) return;
  if (watched_place_ >= 0 && place != watched_place_) {
    // Everything a client watches must live where its transaction will run.
    if (s_.pool().cluster() != nullptr) {
      s_.redis_error("CROSSSLOT Keys in request don't hash to the same slot");
    } else {
      s_.redis_error(
          "CROSSSLOT dproxy: these keys map to another server than the keys already watched; "
          "keep a transaction's keys together with a hash tag");
    }
    return;
  }
  Lease* lease = watched();
  if (lease == nullptr) lease = get(static_cast<uint32_t>(server));
  if (lease == nullptr) return;
  lease->pinned = true;
  watched_place_ = place;
  send(*lease, req, false, true);
}

void DedicatedConnections::unwatch(const Request& req) {
  Lease* lease = watched();
  lease->pinned = false;  // given back once UNWATCH's reply is in
  watched_place_ = -1;
  send(*lease, req, false, false);
}

size_t DedicatedConnections::buffer_bytes() const {
  size_t n = 0;
  for (const auto& l : leases_)
    if (l.conn) n += l.conn->buffer_bytes();
  return n;
}

}  // namespace dproxy::core
