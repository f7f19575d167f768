// RedisTransaction: MULTI ... EXEC. See redis_transaction.h.

#include "core/session/redis_transaction.h"

#include "core/backend/cluster_runtime.h"
#include "core/backend/pool_runtime.h"
#include "core/backend/server_connection.h"
#include "core/client_session.h"
#include "protocol/resp/reply_writer.h"
#include "routing/cluster_slots.h"

namespace dproxy::core {

namespace resp = protocol::resp;
using protocol::Request;
using resp::Routing;

namespace {
constexpr std::string_view kMulti = "*1\r\n$5\r\nMULTI\r\n";
constexpr std::string_view kExec = "*1\r\n$4\r\nEXEC\r\n";
constexpr size_t kKeptBlockCapacity = 64 << 10;
}  // namespace

void RedisTransaction::begin() {
  state_ = State::kQueuing;
  aborted_ = false;
  place_ = s_.dedicated_.watched_place();  // a WATCH decides where the transaction runs
  count_ = 0;
  block_.clear();
  s_.ready_slot("+OK\r\n");
}

void RedisTransaction::reset() {
  state_ = State::kNone;
  aborted_ = false;
  place_ = -1;
  count_ = 0;
  block_.clear();
  if (block_.capacity() > kKeptBlockCapacity) std::string().swap(block_);
}

void RedisTransaction::queue_error(const resp::CommandInfo& cmd, std::string_view why) {
  ReplySlot* slot = s_.ready_slot("-ERR dproxy: ");
  resp::append_upper_name(slot->data, cmd.name);
  slot->data.append(" is not supported inside MULTI (");
  slot->data.append(why);
  slot->data.append(")\r\n");
  aborted_ = true;
}

void RedisTransaction::command(const resp::CommandInfo& cmd, const Request& req) {
  const std::string_view name = cmd.name;
  switch (cmd.routing) {
    case Routing::kLocal:
      // What the backend answers the same way is queued; what would change the state of a
      // shared backend connection (AUTH, HELLO, SELECT, CLIENT SETNAME) is not.
      if (name == "ping" || name == "echo" || name == "info" || name == "command" ||
          name.starts_with("command|")) {
        queue(req);
      } else {
        queue_error(cmd, "it would change the state of a shared backend connection");
      }
      return;
    case Routing::kRejected:
      if (name == "unwatch") {
        queue(req);  // nothing is watched on a shared connection: a no-op there
      } else {
        queue_error(cmd, cmd.reject_reason);
      }
      return;
    case Routing::kBroadcast:
      queue_error(cmd, "it needs every server, and a transaction runs on one");
      return;
    default:
      if (same_place(req)) queue(req);
      return;
  }
}

bool RedisTransaction::same_place(const Request& req) {
  PoolRuntime& pool = s_.pool();
  const bool cluster = pool.cluster() != nullptr;
  for (uint32_t idx : s_.key_idx_) {
    const std::string_view key = req.args[idx];
    const int64_t place = cluster ? routing::key_slot(key) : pool.server_for(key);
    if (place_ < 0) place_ = place;
    if (place == place_) continue;
    aborted_ = true;
    if (cluster) {
      s_.redis_error("CROSSSLOT Keys in request don't hash to the same slot");
      return false;
    }
    ReplySlot* slot = s_.ready_slot(
        "-CROSSSLOT dproxy: the keys of this transaction map to different servers; keep them "
        "together with a hash tag, e.g. {user1}.a and {user1}.b");
    if (pool.config().hash_tag.empty()) slot->data.append(" (set the pool's hash_tag)");
    slot->data.append("\r\n");
    return false;
  }
  return true;
}

void RedisTransaction::queue(const Request& req) {
  if (block_.size() + req.frame.size() > kMaxQueuedBytes) {
    s_.redis_error("ERR dproxy: transaction too large (over 64 MiB queued), discarded at EXEC");
    aborted_ = true;
    return;
  }
  // Multibulk frames are queued byte for byte; an inline command is encoded as multibulk.
  if (!req.frame.empty() && req.frame[0] == '*') {
    block_.append(req.frame);
  } else {
    resp::append_command(block_, req.args);
  }
  ++count_;
  s_.ready_slot("+QUEUED\r\n");
}

void RedisTransaction::discard() {
  reset();
  s_.dedicated_.drop_watch();  // DISCARD forgets the WATCH too
  s_.ready_slot("+OK\r\n");
}

void RedisTransaction::exec_watched() {
  // On the WATCH's connection, even when empty: the server answers a nil EXEC when a watched
  // key changed.
  ServerConnection& conn = s_.dedicated_.watched_connection();
  ReplySlot* slot = s_.new_slot(ReplySlot::Kind::kForward);
  slot->outstanding = 1;
  slot->dedicated = true;
  slot->child = s_.dedicated_.watched_server();
  send_block(conn, slot);
  s_.dedicated_.exec_sent();
  reset();
}

void RedisTransaction::send_block(ServerConnection& conn, ReplySlot* slot, bool follow_moved) {
  // MULTI, the commands and EXEC are appended at once: nothing of another client can come
  // between them on the connection. Only EXEC's reply (the results, or EXECABORT when the
  // server refused a queued command) reaches the client, which had +QUEUED from dproxy.
  if (follow_moved) {
    slot->frame.assign(kMulti);
    slot->frame.append(block_);
    slot->frame.append(kExec);
    slot->acks_needed = count_;
    slot->acks = 0;
    ClientSession::send_transaction(s_.shared_from_this(), conn, slot);
    return;
  }
  auto self = s_.shared_from_this();
  constexpr auto kLine = protocol::memcache::ReplyKind::kLine;
  conn.out().append(kMulti);
  conn.push(self, slot, ClientSession::kIgnoredFrag, kLine);
  conn.out().append(block_);
  for (uint32_t i = 0; i < count_; ++i) conn.push(self, slot, ClientSession::kIgnoredFrag, kLine);
  conn.out().append(kExec);
  conn.push(self, slot, 0, kLine);
}

void RedisTransaction::exec() {
  if (aborted_) {
    reset();
    s_.dedicated_.drop_watch();
    s_.redis_error("EXECABORT Transaction discarded because of previous errors.");
    return;
  }
  if (s_.dedicated_.watching()) {
    exec_watched();
    return;
  }
  if (count_ == 0) {
    reset();
    s_.ready_slot("*0\r\n");
    return;
  }
  PoolRuntime& pool = s_.pool();
  ServerConnection* conn;
  uint32_t sent_to = 0;  // redis_cluster: the node
  if (ClusterRuntime* cluster = pool.cluster()) {
    // The master of the transaction's slot (a keyless transaction: any master). A slot that
    // moved meanwhile makes the server refuse the queued commands with MOVED and EXEC answer
    // EXECABORT: the transaction is then sent again to the node the MOVED named (nothing of
    // it ran), up to 5 times (ClientSession::cluster_transaction_reply).
    const auto& masters = cluster->masters();
    const uint32_t node = place_ >= 0 ? cluster->master_for(static_cast<uint16_t>(place_), s_.id_)
                                      : masters[s_.id_ % masters.size()];
    conn = &cluster->connection(node, s_.id_, s_.resp3_);
    sent_to = node;
  } else {
    const auto n = static_cast<uint32_t>(pool.server_count());
    const uint32_t server =
        place_ >= 0 ? static_cast<uint32_t>(place_) % n : static_cast<uint32_t>(s_.id_ % n);
    if (pool.is_down(server)) {
      reset();
      s_.ready_slot(pool.down_error(server));
      return;
    }
    conn = &pool.connection(server, s_.id_, s_.db_, s_.resp3_);
  }
  ReplySlot* slot = s_.new_slot(ReplySlot::Kind::kForward);
  slot->outstanding = 1;
  slot->child = sent_to;
  send_block(*conn, slot, pool.cluster() != nullptr);
  reset();
}

}  // namespace dproxy::core
