#pragma once
// MULTI ... EXEC of one Redis client: queued by dproxy, checked at queue time the way Redis
// (and Redis Cluster) check it, and sent at EXEC to one server as one contiguous block on a
// shared backend connection, so nothing of another client can run inside it.

#include <cstdint>
#include <string>

#include "protocol/request.h"
#include "protocol/resp/command_table.h"

namespace dproxy::core {

class ClientSession;
class ServerConnection;
struct ReplySlot;

class RedisTransaction {
 public:
  enum class State : uint8_t {
    kNone,
    kQueuing,  // MULTI accepted: commands are queued here until EXEC / DISCARD
    kRefused,  // MULTI refused (a replicated / fanout pool): refuse up to EXEC / DISCARD
  };
  // Queued bytes above this abort the transaction (a client cannot grow dproxy's memory without
  // bound by never sending EXEC).
  static constexpr size_t kMaxQueuedBytes = 64 << 20;

  explicit RedisTransaction(ClientSession& session) : s_(session) {}

  State state() const { return state_; }
  // MULTI outside a transaction: "+OK", start queuing.
  void begin();
  // A command after MULTI, found in the command table (the front end answered an unknown one
  // and called abort()); queues it ("+QUEUED") or answers Redis's queue-time error.
  void command(const protocol::resp::CommandInfo& cmd, const protocol::Request& req);
  // EXEC / DISCARD inside the transaction.
  void exec();
  void discard();
  // A queue-time error was answered: EXEC will answer EXECABORT, as Redis does.
  void abort() {
    if (state_ == State::kQueuing) aborted_ = true;
  }
  // The session's MULTI was refused: every command up to EXEC / DISCARD is refused too.
  void refuse() { state_ = State::kRefused; }
  // Forgets the transaction (RESET, or after EXEC / DISCARD).
  void reset();

 private:
  // An error for a command that cannot be queued: answered, the transaction aborted.
  void queue_error(const protocol::resp::CommandInfo& cmd, std::string_view why);
  // True when every key of the request (the session's key_idx_) goes where the transaction's
  // first key went (the first key sets it); else answers CROSSSLOT and aborts.
  bool same_place(const protocol::Request& req);
  void queue(const protocol::Request& req);
  // EXEC after a WATCH: on the WATCH's dedicated connection.
  void exec_watched();
  // Appends MULTI, the queued commands and EXEC to `conn`; `slot` gets EXEC's reply.
  // `follow_moved` (redis_cluster, no WATCH): the block is kept in the slot, to be sent again
  // where a MOVED points (ClientSession::cluster_transaction_reply).
  void send_block(ServerConnection& conn, ReplySlot* slot, bool follow_moved = false);

  ClientSession& s_;
  State state_ = State::kNone;
  bool aborted_ = false;
  // Where the transaction goes: a sharded pool's server index, a redis_cluster pool's hash
  // slot; -1 until a command with a key is queued.
  int64_t place_ = -1;
  uint32_t count_ = 0;  // commands queued
  std::string block_;   // the queued commands, RESP-encoded, back to back
};

}  // namespace dproxy::core
