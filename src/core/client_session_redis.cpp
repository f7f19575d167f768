// ClientSession: the Redis (RESP2) side. Routing by key, split/merge of multi-key commands,
// commands answered by dproxy, and rejections with an error naming the reason.

#include <chrono>
#include <cstring>

#include "core/backend/cluster_runtime.h"
#include "core/backend/pool_runtime.h"
#include "core/backend/server_connection.h"
#include "core/client_session.h"
#include "core/stats.h"
#include "core/worker.h"
#include "protocol/resp/reply_parser.h"
#include "protocol/resp/reply_writer.h"
#include "routing/cluster_slots.h"

namespace dproxy::core {

namespace resp = protocol::resp;
using protocol::Request;
using resp::Routing;

void ClientSession::redis_error(std::string_view message) {
  ReplySlot* slot = ready_slot("-");
  slot->data.append(message);
  slot->data.append("\r\n");
}

void ClientSession::resume_input() {
  if (!input_held_ || reads_pending_ > 0 || select_pending_) return;
  input_held_ = false;
  if (!closed_ && !resume_posted_) {
    resume_posted_ = true;
    asio::post(socket_.get_executor(), [self = shared_from_this()] {
      self->resume_posted_ = false;
      self->process();
      self->start_read();
    });
  }
}

void ClientSession::select_db(int32_t db) {
  PoolRuntime& pool_rt = pool();
  const auto n = static_cast<uint32_t>(pool_rt.server_count());
  uint32_t server = static_cast<uint32_t>(id_ % n);
  for (uint32_t i = 0; i < n && pool_rt.is_down(server); ++i) server = (server + 1) % n;
  if (pool_rt.is_down(server)) {
    ready_slot(pool_rt.down_error(server));
    return;
  }
  // SELECT n then SELECT <pool db>, appended at once: the shared connection is back in the
  // pool's database before anything else runs on it.
  ServerConnection& conn = pool_rt.connection(server, id_);
  ReplySlot* slot = new_slot(ReplySlot::Kind::kSelect);
  slot->child = static_cast<uint32_t>(db);
  slot->outstanding = 1;
  const std::string wanted = std::to_string(db);
  const std::string back = std::to_string(pool_rt.config().db);
  const std::string_view select_wanted[] = {"SELECT", wanted};
  const std::string_view select_back[] = {"SELECT", back};
  auto self = shared_from_this();
  resp::append_command(conn.out(), select_wanted);
  conn.push(self, slot, 0, protocol::memcache::ReplyKind::kLine);
  resp::append_command(conn.out(), select_back);
  conn.push(self, slot, kIgnoredFrag, protocol::memcache::ReplyKind::kLine);
  select_pending_ = true;
  input_held_ = true;  // what follows SELECT waits for its answer
}

void ClientSession::on_select_reply(ReplySlot* slot, std::string_view bytes, bool is_error) {
  if (!is_error) {
    const auto db = static_cast<int32_t>(slot->child);
    db_ = db == static_cast<int64_t>(pool().config().db) ? -1 : db;
  }
  slot->data.assign(bytes);
  slot->done = true;
  select_pending_ = false;
  resume_input();
  drain();
}

void ClientSession::crossslot_error(const resp::CommandInfo& cmd) {
  ReplySlot* slot = ready_slot("-CROSSSLOT dproxy: the keys of ");
  resp::append_upper_name(slot->data, cmd.name);
  slot->data.append(
      " map to different servers; keep them together with a hash tag, e.g. "
      "{user1}.a and {user1}.b");
  if (pool().config().hash_tag.empty()) slot->data.append(" (set the pool's hash_tag)");
  slot->data.append("\r\n");
}

void ClientSession::redis_no_key_error(const resp::CommandInfo& cmd) {
  // A command that routes by key but names none (EVAL with numkeys 0, ...).
  ReplySlot* slot = ready_slot("-ERR dproxy: ");
  resp::append_upper_name(slot->data, cmd.name);
  slot->data.append(
      " names no key, so there is no server to route it to (pass at least one key)\r\n");
}

void ClientSession::execute_redis(const resp::CommandInfo& cmd, const Request& req) {
  if (cmd.routing == Routing::kBroadcast) {
    sharded_.redis_broadcast(cmd, req);  // every pool kind
    return;
  }
  if (pool().cluster() != nullptr) {
    cluster_.dispatch(cmd, req);  // session/cluster_execution.cpp
    return;
  }
  if (pool().route_kind() != routing::Route::Kind::kShard) {
    if (key_idx_.empty() && cmd.routing != Routing::kNoKeyForward) {
      redis_no_key_error(cmd);
      return;
    }
    routed_.dispatch_redis(cmd, req);  // session/routed_execution.cpp
    return;
  }
  sharded_.dispatch_redis(cmd, req);  // session/sharded_execution.cpp
}

void ClientSession::redis_forward_any(const Request& req) {
  if (pool().cluster() != nullptr) {
    static const resp::CommandInfo kAnyMaster = [] {
      resp::CommandInfo c = *resp::find_command("time");
      c.flags &= ~resp::kCmdReadonly;  // a master, never a replica
      return c;
    }();
    key_idx_.clear();
    cluster_.dispatch(kAnyMaster, req);
    return;
  }
  if (pool().route_kind() != routing::Route::Kind::kShard) {
    sharded_.redis_forward(req,
                           pool().first_child_servers()[id_ % pool().first_child_servers().size()]);
    return;
  }
  sharded_.redis_forward(req, static_cast<uint32_t>(id_ % pool().server_count()));
}

void ClientSession::send_transaction(const std::shared_ptr<ClientSession>& self,
                                     ServerConnection& conn, ReplySlot* slot) {
  constexpr auto kLine = protocol::memcache::ReplyKind::kLine;
  conn.out().append(slot->frame);
  conn.push(self, slot, kQueuedFrag, kLine);  // MULTI's +OK
  for (uint32_t i = 0; i < slot->acks_needed; ++i) conn.push(self, slot, kQueuedFrag, kLine);
  conn.push(self, slot, kExecFrag, kLine);
}

bool ClientSession::cluster_transaction_reply(ReplySlot* slot, uint16_t frag,
                                              std::string_view bytes) {
  ClusterRuntime* cluster = pool().cluster();
  if (frag == kQueuedFrag) {
    if (cluster != nullptr && slot->acks == 0 && bytes.starts_with("-MOVED ")) {
      const routing::ClusterRedirect r = routing::parse_cluster_redirect(bytes);
      const uint32_t node = r.kind == routing::ClusterReply::kMoved
                                ? cluster->node_at(r.address, slot->child)
                                : ClusterRuntime::kNoNode;
      if (node != ClusterRuntime::kNoNode) {
        ClusterStats::bump(cluster->stats().moved);
        cluster->moved(r.slot, node);
        slot->acks = node + 1;
      }
    }
    return true;
  }
  // EXEC's reply. (A client gone meanwhile: nothing of its transaction ran, nor will.)
  if (cluster == nullptr || closed_ || slot->acks == 0 ||
      slot->tried >= ClusterExecution::kMaxRedirects || !bytes.starts_with("-EXECABORT"))
    return false;
  slot->child = slot->acks - 1;
  slot->acks = 0;
  ++slot->tried;
  send_transaction(shared_from_this(), cluster->connection(slot->child, id_, resp3_), slot);
  return true;
}

void ClientSession::cluster_retry(ReplySlot* slot, uint16_t frag) {
  cluster_.retry(slot, frag);
}

}  // namespace dproxy::core
