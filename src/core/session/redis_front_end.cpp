// RedisFrontEnd: RESP2 and RESP3 clients. See redis_front_end.h.

#include "core/session/redis_front_end.h"

#include <cstring>

#include "core/backend/cluster_runtime.h"
#include "core/backend/pool_runtime.h"
#include "core/client_session.h"
#include "core/session/redis_text.h"
#include "core/stats.h"
#include "core/worker.h"
#include "protocol/resp/reply_writer.h"

namespace dproxy::core {

namespace resp = protocol::resp;
using protocol::ParseResult;
using protocol::Request;
using resp::Routing;

using redis_text::append_one_line;
using redis_text::iequals;

RedisFrontEnd::RedisFrontEnd(ClientSession& session, const PoolConfig& config)
    : s_(session),
      parser_(resp::RequestLimits{config.max_value_bytes, 1024 * 1024, 64 * 1024}),
      authenticated_(config.client_password.empty()),
      txn_(session),
      pubsub_(session) {}

ParseResult RedisFrontEnd::parse(std::string_view in, Request& req) {
  return parser_.parse(in, req);
}

ReplySlot* RedisFrontEnd::refuse(const ParseResult& r, const Request&) {
  return s_.ready_slot(r.error);
}

void RedisFrontEnd::dispatch(const Request& req) {
  if (req.args.empty()) return;
  if (!reply_off_ && !skip_next_) [[likely]] {
    dispatch_command(req);
    return;
  }
  // CLIENT REPLY OFF / SKIP: this command runs, its reply is dropped (CLIENT REPLY ON clears
  // suppress_current_ to be answered).
  suppress_current_ = true;
  skip_next_ = false;
  const size_t before = s_.slots_.size();
  dispatch_command(req);
  if (suppress_current_ && s_.slots_.size() > before) s_.slots_.back()->noreply = true;
}

bool RedisFrontEnd::is_read(const Request& req) const {
  if (req.args.empty()) return true;
  // Anything but a read-only command is not a read (commands that touch no backend lose
  // nothing by waiting).
  const resp::CommandInfo* cmd = req.args[0] == last_command_name_ && last_command_ != nullptr
                                     ? last_command_
                                     : resp::find_command(req.args[0]);
  return cmd != nullptr && cmd->has(resp::kCmdReadonly) && !cmd->has(resp::kCmdWrite);
}

std::string_view RedisFrontEnd::request_too_large_reply() const {
  return "-ERR dproxy: request too large\r\n";
}

void RedisFrontEnd::unknown_command(const Request& req) {
  const auto& args = req.args;
  // Redis 7's own wording and truncation: the name up to 128 bytes, then arguments until the
  // list reaches 128 bytes.
  ReplySlot* slot = s_.ready_slot("-ERR unknown command '");
  append_one_line(slot->data, args[0].substr(0, 128));
  slot->data.append("', with args beginning with: ");
  size_t list_start = slot->data.size();
  for (size_t i = 1; i < args.size(); ++i) {
    size_t used = slot->data.size() - list_start;
    if (used >= 128) break;
    slot->data.push_back('\'');
    append_one_line(slot->data, args[i].substr(0, 128 - used));
    slot->data.append("' ");
  }
  slot->data.append("\r\n");
}

void RedisFrontEnd::unknown_subcommand(const resp::CommandInfo& cmd, const Request& req) {
  ReplySlot* slot = s_.ready_slot("-ERR unknown subcommand '");
  append_one_line(slot->data, req.args[1].substr(0, 128));
  slot->data.append("'. Try ");
  resp::append_upper_name(slot->data, cmd.name);
  slot->data.append(" HELP.\r\n");
}

__attribute__((always_inline)) inline const resp::CommandInfo* RedisFrontEnd::lookup(
    const Request& req) {
  const auto& args = req.args;
  // Clients tend to repeat a command: remember the last lookup (exact bytes).
  const resp::CommandInfo* cmd;
  if (args[0] == last_command_name_ && last_command_ != nullptr) {
    cmd = last_command_;
  } else {
    cmd = resp::find_command(args[0]);
    if (cmd == nullptr) {
      unknown_command(req);
      return nullptr;
    }
    if (args[0].size() <= 32) {
      last_command_name_.assign(args[0]);
      last_command_ = cmd;
    }
  }
  // Latency is kept per top-level command (its index in the sorted command table).
  s_.cur_command_ = static_cast<uint16_t>(cmd - resp::all_commands().data());
  if (cmd->has_subcommands && args.size() >= 2) {
    const resp::CommandInfo* sub = resp::find_subcommand(*cmd, args[1]);
    if (sub == nullptr) {
      if (cmd->name == "client" && iequals(args[1], "setinfo")) {
        client_setinfo(req);  // Redis 7.2's, sent by its clients on connect
      } else {
        unknown_subcommand(*cmd, req);
      }
      return nullptr;
    }
    cmd = sub;
  }
  return cmd;
}

void RedisFrontEnd::key_error(const resp::CommandInfo& cmd, const Request& req,
                              resp::KeyStatus status) {
  switch (status) {
    case resp::KeyStatus::kOk:
      return;
    case resp::KeyStatus::kWrongArity: {
      ReplySlot* slot = s_.ready_slot("-ERR wrong number of arguments for '");
      slot->data.append(cmd.name);
      slot->data.append("' command\r\n");
      return;
    }
    case resp::KeyStatus::kBadNumkeys:
      // A malformed numkeys or STREAMS list: any server answers it with Redis's own error
      // (each command words it differently), and runs nothing.
      s_.redis_forward_any(req);
      return;
    case resp::KeyStatus::kBlockOption: {
      // XREAD/XREADGROUP ... BLOCK: a blocking command like BLPOP, on a dedicated connection
      // of the client's own where there is one server to block on.
      PoolRuntime& pool = s_.pool();
      if (pool.cluster() != nullptr || pool.route_kind() == routing::Route::Kind::kShard) {
        s_.dedicated_.blocking(cmd, req);
        return;
      }
      ReplySlot* slot = s_.ready_slot("-ERR dproxy: ");
      resp::append_upper_name(slot->data, cmd.name);
      slot->data.append(" with BLOCK is not supported (");
      slot->data.append(resp::reasons::kBlocking);
      slot->data.append(")\r\n");
      return;
    }
  }
}

__attribute__((always_inline)) inline bool RedisFrontEnd::keys(const resp::CommandInfo& cmd,
                                                               const Request& req) {
  const resp::KeyStatus status = resp::find_keys(cmd, req.args, s_.key_idx_);
  if (status == resp::KeyStatus::kOk) [[likely]]
    return true;
  key_error(cmd, req, status);
  return false;
}

inline void RedisFrontEnd::dispatch_command(const Request& req) {
  const resp::CommandInfo* cmd = lookup(req);
  if (cmd == nullptr) {
    txn_.abort();  // unknown command or subcommand (answered): inside MULTI, EXEC aborts
    return;
  }
  if (!authenticated_ && cmd->name != "auth" && cmd->name != "hello" && cmd->name != "quit" &&
      cmd->name != "reset") {
    s_.redis_error("NOAUTH Authentication required.");
    return;
  }
  if (txn_.state() != RedisTransaction::State::kNone) [[unlikely]] {
    transaction_command(*cmd, req);
    return;
  }
  if (pubsub_.subscribed() && !s_.resp3_) [[unlikely]] {
    subscribed_command(*cmd, req);
    return;
  }
  if (!keys(*cmd, req)) return;
  if (cmd->routing == Routing::kLocal) {
    local(*cmd, req);
    return;
  }
  if (cmd->routing == Routing::kRejected) {
    reject(*cmd, req);
    return;
  }
  s_.execute_redis(*cmd, req);
}

void RedisFrontEnd::reject(const resp::CommandInfo& cmd, const Request& req) {
  const std::string_view name = cmd.name;
  PoolRuntime& pool = s_.pool();
  const bool sharded =
      pool.cluster() == nullptr && pool.route_kind() == routing::Route::Kind::kShard;
  if (sharded && pool.server_count() == 1 && transparent(cmd)) {
    // A pool of one server: no placement can be wrong, so it answers as itself.
    s_.sharded_.redis_forward(req, 0);
    return;
  }
  // Sharded and redis_cluster pools run what needs one server.
  if ((sharded || pool.cluster() != nullptr) && one_server_command(cmd, req, sharded)) return;
  if (name == "reset") {
    reset();
    return;
  }
  if (name == "client|info") {
    client_info();
    return;
  }
  if (name == "client|reply") {
    client_reply(req);
    return;
  }
  if (name == "client|no-evict") {
    // Eviction of client connections is the server's business; dproxy's are shared.
    if (req.args.size() == 3 &&
        (redis_text::iequals(req.args[2], "on") || redis_text::iequals(req.args[2], "off"))) {
      s_.ready_slot("+OK\r\n");
    } else {
      s_.redis_error("ERR syntax error");
    }
    return;
  }
  if (name == "multi") {
    // Replicated and fanout pools: the commands a client queues after this MULTI are refused
    // up to its EXEC or DISCARD.
    txn_.refuse();
  } else if (name == "exec" || name == "discard") {
    ReplySlot* slot = s_.ready_slot("-ERR ");
    resp::append_upper_name(slot->data, name);
    slot->data.append(" without MULTI\r\n");
    return;
  } else if (name == "unwatch") {
    s_.ready_slot("+OK\r\n");  // nothing is watched
    return;
  }
  ReplySlot* slot = s_.ready_slot("-ERR dproxy: ");
  resp::append_upper_name(slot->data, name);
  slot->data.append(" is not supported (");
  slot->data.append(name == "multi"
                        ? std::string_view("transactions need one server, and replicated and "
                                           "fanout pools write to several")
                        : cmd.reject_reason);
  slot->data.append(")\r\n");
}

bool RedisFrontEnd::one_server_command(const resp::CommandInfo& cmd, const Request& req,
                                       bool sharded) {
  const std::string_view name = cmd.name;
  if (name == "move") {
    // MOVE key db: within the key's server (a later SELECT db finds it there).
    static const resp::CommandInfo kMove = [] {
      resp::CommandInfo c = *resp::find_command("move");
      c.routing = Routing::kSingleKey;
      return c;
    }();
    s_.execute_redis(kMove, req);
  } else if (sharded && name == "swapdb") {
    // Every server swaps, so every key's database changes together.
    static const resp::CommandInfo kSwapdb = [] {
      resp::CommandInfo c = *resp::find_command("swapdb");
      c.routing = Routing::kBroadcast;
      c.merge = resp::Merge::kAllOk;
      return c;
    }();
    s_.execute_redis(kSwapdb, req);
  } else if (name == "multi") {
    txn_.begin();
  } else if (name == "watch") {
    s_.dedicated_.watch(cmd, req);  // on a dedicated connection (session/dedicated.h)
  } else if (name == "unwatch" && s_.dedicated_.watching()) {
    s_.dedicated_.unwatch(req);
  } else if (cmd.reject_reason == resp::reasons::kBlocking && name != "wait") {
    s_.dedicated_.blocking(cmd, req);
  } else if (cmd.reject_reason == resp::reasons::kPubSub) {
    RedisPubSub::Kind kind;
    if (RedisPubSub::kind_of(name, kind)) {
      pubsub_.command(kind, std::span<const std::string_view>(req.args).subspan(1));
    } else if (name == "publish" || name == "spublish") {
      publish(cmd, req);
    } else {
      return false;
    }
  } else {
    return false;
  }
  return true;
}

bool RedisFrontEnd::transparent(const resp::CommandInfo& cmd) {
  // What a pool of one server forwards although dproxy refuses it elsewhere: scripts and
  // functions without keys, other databases, server administration. Not what would break the
  // proxy's own connections to it (SHUTDOWN, replication streams, CLIENT KILL) or needs a
  // connection of the client's own (MONITOR, WAIT, CLIENT state: still refused).
  const std::string_view name = cmd.name;
  const std::string_view reason = cmd.reject_reason;
  if (reason != resp::reasons::kNotRouted && reason != resp::reasons::kMultiDb &&
      reason != resp::reasons::kAdmin) {
    return false;
  }
  return name != "shutdown" && name != "sync" && name != "psync" && name != "replconf" &&
         name != "client|kill" && name != "client|no-evict" && name != "replicaof" &&
         name != "slaveof" && name != "failover";
}

void RedisFrontEnd::subscribed_command(const resp::CommandInfo& cmd, const Request& req) {
  const std::string_view name = cmd.name;
  RedisPubSub::Kind kind;
  if (RedisPubSub::kind_of(name, kind)) {
    if (keys(cmd, req)) {
      pubsub_.command(kind, std::span<const std::string_view>(req.args).subspan(1));
    }
    return;
  }
  if (name == "ping") {
    // Redis's subscribed-mode PING reply (RESP2): a two-element array.
    if (req.args.size() > 2) {
      s_.redis_error("ERR wrong number of arguments for 'ping' command");
      return;
    }
    std::string& out = s_.ready_slot("*2\r\n$4\r\npong\r\n")->data;
    resp::append_bulk(out, req.args.size() == 2 ? req.args[1] : std::string_view());
    return;
  }
  if (name == "quit") {
    local(cmd, req);
    return;
  }
  if (name == "reset") {
    reset();
    return;
  }
  ReplySlot* slot = s_.ready_slot("-ERR Can't execute '");
  slot->data.append(name);
  slot->data.append(
      "': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this "
      "context\r\n");
}

void RedisFrontEnd::publish(const resp::CommandInfo& cmd, const Request& req) {
  // Routed like a command whose first argument is its key.
  static const resp::CommandInfo kPublish = [] {
    resp::CommandInfo c = *resp::find_command("publish");
    c.routing = Routing::kSingleKey;
    return c;
  }();
  static const resp::CommandInfo kSpublish = [] {
    resp::CommandInfo c = *resp::find_command("spublish");
    c.routing = Routing::kSingleKey;
    return c;
  }();
  s_.key_idx_.assign(1, 1);
  s_.execute_redis(cmd.name == "publish" ? kPublish : kSpublish, req);
}

void RedisFrontEnd::transaction_command(const resp::CommandInfo& cmd, const Request& req) {
  const std::string_view name = cmd.name;
  if (name == "quit") {
    local(cmd, req);
    return;
  }
  if (name == "reset") {
    reset();  // not queued, as in Redis
    return;
  }
  if (txn_.state() == RedisTransaction::State::kRefused) {
    refused_transaction(cmd);
    return;
  }
  // Executed at once, as Redis does: MULTI / WATCH inside MULTI are errors that do not abort
  // the transaction; EXEC and DISCARD end it.
  if (name == "exec") {
    txn_.exec();
  } else if (name == "discard") {
    txn_.discard();
  } else if (name == "multi") {
    s_.redis_error("ERR MULTI calls can not be nested");
  } else if (name == "watch") {
    s_.redis_error("ERR WATCH inside MULTI is not allowed");
  } else if (cmd.has(resp::kCmdNoMulti)) {
    s_.redis_error("ERR Command not allowed inside a transaction");
    txn_.abort();
  } else {
    const resp::KeyStatus status = resp::find_keys(cmd, req.args, s_.key_idx_);
    if (status == resp::KeyStatus::kOk || status == resp::KeyStatus::kBadNumkeys ||
        status == resp::KeyStatus::kBlockOption) {
      // (a malformed numkeys is the command's own error at EXEC, as in Redis; XREAD ... BLOCK
      // inside a transaction does not block, as in Redis)
      if (status == resp::KeyStatus::kBadNumkeys) s_.key_idx_.clear();
      txn_.command(cmd, req);
    } else {
      key_error(cmd, req, status);
      txn_.abort();  // wrong arity: answered, as Redis answers at queue time
    }
  }
}

void RedisFrontEnd::refused_transaction(const resp::CommandInfo& cmd) {
  // Redis's own replies for a transaction that is discarded because a command could not be
  // queued; nothing of it reaches a backend.
  if (cmd.name == "exec" || cmd.name == "discard") {
    if (cmd.name == "exec") {
      s_.redis_error("EXECABORT Transaction discarded because of previous errors.");
    } else {
      s_.ready_slot("+OK\r\n");
    }
    txn_.reset();
    return;
  }
  if (cmd.name == "multi") {
    s_.redis_error("ERR MULTI calls can not be nested");
    return;
  }
  if (cmd.name == "watch") {
    s_.redis_error("ERR WATCH inside MULTI is not allowed");
    return;
  }
  ReplySlot* slot = s_.ready_slot("-ERR dproxy: ");
  resp::append_upper_name(slot->data, cmd.name);
  slot->data.append(
      " not queued: this transaction's MULTI was refused (transactions need one server, and "
      "replicated and fanout pools write to several), so EXEC will discard it\r\n");
}

}  // namespace dproxy::core
