// RedisFrontEnd: RESP2 clients. See redis_front_end.h.

#include "core/session/redis_front_end.h"

#include <unistd.h>

#include <chrono>
#include <cstring>

#include "core/backend/cluster_runtime.h"
#include "core/backend/pool_runtime.h"
#include "core/client_session.h"
#include "core/stats.h"
#include "core/worker.h"
#include "protocol/resp/reply_writer.h"

namespace dproxy::core {

namespace resp = protocol::resp;
using protocol::ParseResult;
using protocol::Request;
using resp::Routing;

namespace {

const auto kProcessStart = std::chrono::steady_clock::now();

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

// Appends client bytes to a one-line error as Redis does: CR and LF become spaces, so the
// error can never be mistaken for more than one reply.
void append_one_line(std::string& out, std::string_view bytes) {
  for (char c : bytes) out.push_back(c == '\r' || c == '\n' ? ' ' : c);
}

// Redis's rule for CLIENT SETNAME / HELLO SETNAME: printable ASCII without spaces.
bool valid_client_name(std::string_view name) {
  for (char c : name) {
    if (c < '!' || c > '~') return false;
  }
  return true;
}

}  // namespace

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
  if (!req.args.empty()) dispatch_command(req);
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
    case resp::KeyStatus::kRejectedOption: {
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
  if (!authenticated_ && cmd->name != "auth" && cmd->name != "hello" && cmd->name != "quit") {
    s_.redis_error("NOAUTH Authentication required.");
    return;
  }
  if (txn_.state() != RedisTransaction::State::kNone) [[unlikely]] {
    transaction_command(*cmd, req);
    return;
  }
  if (pubsub_.subscribed()) [[unlikely]] {
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
  // Sharded and redis_cluster pools run what needs one server: transactions, WATCH and blocking
  // commands (on a dedicated connection, session/dedicated.h).
  PoolRuntime& pool = s_.pool();
  const bool sharded =
      pool.cluster() == nullptr && pool.route_kind() == routing::Route::Kind::kShard;
  const bool one_server = sharded || pool.cluster() != nullptr;
  if (sharded && pool.server_count() == 1 && transparent(cmd)) {
    // A pool of one server: no placement can be wrong, so it answers as itself.
    s_.redis_forward(req, 0);
    return;
  }
  if (one_server && name == "move") {
    // MOVE key db: within the key's server (a later SELECT db finds it there).
    static const resp::CommandInfo kMove = [] {
      resp::CommandInfo c = *resp::find_command("move");
      c.routing = Routing::kSingleKey;
      return c;
    }();
    s_.execute_redis(kMove, req);
    return;
  }
  if (sharded && name == "swapdb") {
    // Every server swaps, so every key's database changes together.
    static const resp::CommandInfo kSwapdb = [] {
      resp::CommandInfo c = *resp::find_command("swapdb");
      c.routing = Routing::kBroadcast;
      c.merge = resp::Merge::kAllOk;
      return c;
    }();
    s_.execute_redis(kSwapdb, req);
    return;
  }
  if (one_server && name == "watch") {
    s_.dedicated_.watch(cmd, req);
    return;
  }
  if (one_server && cmd.reject_reason == resp::reasons::kBlocking && name != "wait") {
    s_.dedicated_.blocking(cmd, req);
    return;
  }
  if (one_server && cmd.reject_reason == resp::reasons::kPubSub) {
    RedisPubSub::Kind kind;
    if (RedisPubSub::kind_of(name, kind)) {
      pubsub_.command(kind, std::span<const std::string_view>(req.args).subspan(1));
      return;
    }
    if (name == "publish" || name == "spublish") {
      publish(cmd, req);
      return;
    }
  }
  if (name == "multi") {
    if (one_server) {
      txn_.begin();
      return;
    }
    // Replicated and fanout pools: the commands a client queues after this MULTI are refused
    // up to its EXEC or DISCARD.
    txn_.refuse();
  } else if (name == "exec" || name == "discard") {
    ReplySlot* slot = s_.ready_slot("-ERR ");
    resp::append_upper_name(slot->data, name);
    slot->data.append(" without MULTI\r\n");
    return;
  } else if (name == "unwatch") {
    if (s_.dedicated_.watching()) {
      s_.dedicated_.unwatch(req);
    } else {
      s_.ready_slot("+OK\r\n");  // nothing is watched
    }
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
         name != "client|kill" && name != "replicaof" && name != "slaveof" && name != "failover";
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
    if (status == resp::KeyStatus::kOk || status == resp::KeyStatus::kBadNumkeys) {
      // (a malformed numkeys is the command's own error at EXEC, as in Redis)
      if (status != resp::KeyStatus::kOk) s_.key_idx_.clear();
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

bool RedisFrontEnd::auth(std::string_view user, std::string_view password, bool password_only) {
  const std::string& expected = s_.pool().config().client_password;
  if (expected.empty()) {
    // As Redis 7 with no password: the default user is "nopass" and takes any password.
    if (iequals(user, "default") && !password_only) return true;
    if (password_only) {
      s_.redis_error(
          "ERR AUTH <password> called without any password configured for the default user. "
          "Are you sure your configuration is correct?");
    } else {
      s_.redis_error("WRONGPASS invalid username-password pair or user is disabled.");
    }
    return false;
  }
  if (!iequals(user, "default") || password != expected) {
    s_.redis_error("WRONGPASS invalid username-password pair or user is disabled.");
    return false;
  }
  authenticated_ = true;
  return true;
}

void RedisFrontEnd::local(const resp::CommandInfo& cmd, const Request& req) {
  const auto& args = req.args;
  std::string_view name = cmd.name;
  if (name == "ping") {
    if (args.size() > 2) {
      s_.redis_error("ERR wrong number of arguments for 'ping' command");
    } else if (args.size() == 2) {
      resp::append_bulk(s_.ready_slot("")->data, args[1]);
    } else {
      s_.ready_slot("+PONG\r\n");
    }
  } else if (name == "echo") {
    resp::append_bulk(s_.ready_slot("")->data, args[1]);
  } else if (name == "quit") {
    ReplySlot* slot = s_.ready_slot("+OK\r\n");
    slot->close_after = true;
    s_.stop_input_ = true;
  } else if (name == "auth") {
    bool ok = args.size() == 2   ? auth("default", args[1], true)
              : args.size() == 3 ? auth(args[1], args[2], false)
                                 : (s_.redis_error("ERR syntax error"), false);
    if (ok) s_.ready_slot("+OK\r\n");
  } else if (name == "hello") {
    hello(args);
  } else if (name == "select") {
    select(args[1]);
  } else if (name == "client|setname") {
    if (!valid_client_name(args[2])) {
      s_.redis_error("ERR Client names cannot contain spaces, newlines or special characters.");
      return;
    }
    client_name_.assign(args[2]);
    s_.ready_slot("+OK\r\n");
  } else if (name == "client|getname") {
    ReplySlot* slot = s_.ready_slot("");
    if (client_name_.empty()) {
      resp::append_null_bulk(slot->data);
    } else {
      resp::append_bulk(slot->data, client_name_);
    }
  } else if (name == "client|id") {
    resp::append_integer(s_.ready_slot("")->data, static_cast<int64_t>(s_.id_));
  } else if (name == "info") {
    info_reply(req);
  } else if (name == "command" || name.starts_with("command|")) {
    command_reply(req);
  } else {
    ReplySlot* slot = s_.ready_slot("-ERR dproxy: ");
    resp::append_upper_name(slot->data, name);
    slot->data.append(" is not supported\r\n");
  }
}

void RedisFrontEnd::select(std::string_view arg) {
  int64_t db = 0;
  if (!resp::parse_int64(arg, db)) {
    s_.redis_error("ERR value is not an integer or out of range");
    return;
  }
  PoolRuntime& pool = s_.pool();
  if (pool.cluster() != nullptr) {
    if (db == 0) {
      s_.ready_slot("+OK\r\n");
    } else {
      s_.redis_error("ERR SELECT is not allowed in cluster mode");  // Redis Cluster's reply
    }
    return;
  }
  if (db < 0 || db > INT32_MAX) {
    s_.redis_error("ERR DB index is out of range");
    return;
  }
  if (db == pool.config().db) {
    s_.db_ = -1;  // the pool's own connections
    s_.ready_slot("+OK\r\n");
    return;
  }
  s_.select_db(static_cast<int32_t>(db));
}

void RedisFrontEnd::client_setinfo(const Request& req) {
  const auto& args = req.args;
  if (args.size() != 4) {
    s_.redis_error("ERR wrong number of arguments for 'client|setinfo' command");
    return;
  }
  if (!iequals(args[2], "lib-name") && !iequals(args[2], "lib-ver")) {
    ReplySlot* slot = s_.ready_slot("-ERR Unrecognized option '");
    append_one_line(slot->data, args[2].substr(0, 128));
    slot->data.append("'\r\n");
    return;
  }
  for (char c : args[3]) {
    if (c < '!' || c > '~') {
      ReplySlot* slot = s_.ready_slot("-ERR ");
      append_one_line(slot->data, args[2].substr(0, 128));
      slot->data.append(" cannot contain spaces, newlines or special characters.\r\n");
      return;
    }
  }
  s_.ready_slot("+OK\r\n");
}

void RedisFrontEnd::hello(std::span<const std::string_view> args) {
  size_t i = 1;
  if (args.size() > 1) {
    int64_t version = 0;
    if (!resp::parse_int64(args[1], version)) {
      s_.redis_error("ERR Protocol version is not an integer or out of range");
      return;
    }
    if (version == 3) {
      s_.redis_error("NOPROTO sorry, this protocol version is not supported.");
      return;
    }
    if (version != 2) {
      s_.redis_error("NOPROTO unsupported protocol version");
      return;
    }
    i = 2;
  }
  std::string_view new_name;
  bool set_name = false;
  for (; i < args.size(); ++i) {
    if (iequals(args[i], "auth") && i + 2 < args.size()) {
      if (!auth(args[i + 1], args[i + 2], false)) return;
      i += 2;
    } else if (iequals(args[i], "setname") && i + 1 < args.size()) {
      new_name = args[++i];
      if (!valid_client_name(new_name)) {
        s_.redis_error("ERR Client names cannot contain spaces, newlines or special characters.");
        return;
      }
      set_name = true;
    } else {
      ReplySlot* slot = s_.ready_slot("-ERR Syntax error in HELLO option '");
      append_one_line(slot->data, args[i].substr(0, 128));
      slot->data.append("'\r\n");
      return;
    }
  }
  if (!authenticated_) {
    // Redis 7.0's wording.
    s_.redis_error(
        "NOAUTH HELLO must be called with the client already authenticated, otherwise the "
        "HELLO AUTH <user> <pass> option can be used to authenticate the client and select "
        "the RESP protocol version at the same time");
    return;
  }
  if (set_name) client_name_.assign(new_name);
  std::string& out = s_.ready_slot("*14\r\n")->data;
  resp::append_bulk(out, "server");
  resp::append_bulk(out, "dproxy");
  resp::append_bulk(out, "version");
  resp::append_bulk(out, DPROXY_VERSION);
  resp::append_bulk(out, "proto");
  resp::append_integer(out, 2);
  resp::append_bulk(out, "id");
  resp::append_integer(out, static_cast<int64_t>(s_.id_));
  resp::append_bulk(out, "mode");
  resp::append_bulk(out, "proxy");
  resp::append_bulk(out, "role");
  resp::append_bulk(out, "master");
  resp::append_bulk(out, "modules");
  resp::append_array_header(out, 0);
}

void RedisFrontEnd::command_reply(const Request& req) {
  const auto& args = req.args;
  std::string_view sub = args.size() > 1 ? args[1] : std::string_view();
  auto commands = resp::all_commands();
  if (args.size() == 1) {
    std::string& out = s_.ready_slot("")->data;
    resp::append_array_header(out, commands.size());
    for (const auto& c : commands) out.append(c.info_reply);
  } else if (iequals(sub, "count")) {
    resp::append_integer(s_.ready_slot("")->data, static_cast<int64_t>(commands.size()));
  } else if (iequals(sub, "list")) {
    auto subcommands = resp::all_subcommands();
    std::string& out = s_.ready_slot("")->data;
    resp::append_array_header(out, commands.size() + subcommands.size());
    for (const auto& c : commands) resp::append_bulk(out, c.name);
    for (const auto& c : subcommands) resp::append_bulk(out, c.name);
  } else if (iequals(sub, "info") || iequals(sub, "docs")) {
    const bool docs = iequals(sub, "docs");
    std::string& out = s_.ready_slot("")->data;
    if (args.size() == 2) {
      resp::append_array_header(out, docs ? commands.size() * 2 : commands.size());
      for (const auto& c : commands) out.append(docs ? c.docs_reply : c.info_reply);
      return;
    }
    size_t found = 0;
    std::string body;
    for (size_t i = 2; i < args.size(); ++i) {
      const resp::CommandInfo* c = resp::find_command_by_full_name(args[i]);
      if (c != nullptr) {
        body.append(docs ? c->docs_reply : c->info_reply);
        ++found;
      } else if (!docs) {
        resp::append_null_bulk(body);  // what Redis 7.0 answers for an unknown name
        ++found;
      }
    }
    resp::append_array_header(out, docs ? found * 2 : found);
    out.append(body);
  } else if (iequals(sub, "getkeys") || iequals(sub, "getkeysandflags")) {
    if (args.size() < 3) {
      s_.redis_error("ERR wrong number of arguments for 'command|getkeys' command");
      return;
    }
    std::span<const std::string_view> target(args.data() + 2, args.size() - 2);
    const resp::CommandInfo* c = resp::find_command(target[0]);
    if (c != nullptr && c->has_subcommands && target.size() > 1)
      c = resp::find_subcommand(*c, target[1]);
    if (c == nullptr) {
      s_.redis_error("ERR Invalid command specified");
      return;
    }
    std::vector<uint32_t> idx;
    if (resp::find_keys(*c, target, idx) != resp::KeyStatus::kOk) {
      s_.redis_error("ERR Invalid number of arguments specified for command");
      return;
    }
    if (idx.empty()) {
      s_.redis_error("ERR The command has no key arguments");
      return;
    }
    std::string& out = s_.ready_slot("")->data;
    resp::append_array_header(out, idx.size());
    for (uint32_t i : idx) resp::append_bulk(out, target[i]);
  } else {
    ReplySlot* slot = s_.ready_slot("-ERR unknown subcommand '");
    append_one_line(slot->data, sub.substr(0, 128));
    slot->data.append("'. Try COMMAND HELP.\r\n");
  }
}

void RedisFrontEnd::info_reply(const Request& req) {
  const PoolConfig& config = s_.pool().config();
  auto uptime = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() -
                                                                 kProcessStart)
                    .count();
  // Sections: "INFO" / default / all / everything: every one; else those named.
  bool want_server = req.args.size() < 2, want_clients = want_server, want_dproxy = want_server;
  for (size_t i = 1; i < req.args.size(); ++i) {
    const std::string_view a = req.args[i];
    const bool every = iequals(a, "all") || iequals(a, "everything") || iequals(a, "default");
    want_server = want_server || every || iequals(a, "server");
    want_clients = want_clients || every || iequals(a, "clients");
    want_dproxy = want_dproxy || every || iequals(a, "dproxy");
  }
  std::string text;
  if (want_server) {
    // What health checks and client libraries read (Sidekiq: redis_version): the pool's
    // lowest backend version (from each connection's INFO server), else the command table's.
    text += "# Server\r\nredis_version:";
    const uint32_t v = s_.pool().health().lowest_redis_version();
    if (v != 0) {
      text += std::to_string(v >> 16) + "." + std::to_string(v >> 8 & 0xff) + "." +
              std::to_string(v & 0xff);
    } else {
      text += resp::redis_version();
    }
    const std::string listen = config.listen.to_string();
    const size_t colon = listen.rfind(':');
    text +=
        "\r\nredis_mode:standalone\r\nproxy:dproxy\r\nprocess_id:" + std::to_string(::getpid()) +
        "\r\ntcp_port:" +
        (colon == std::string::npos ? std::string("0") : listen.substr(colon + 1)) +
        "\r\nuptime_in_seconds:" + std::to_string(uptime) +
        "\r\nuptime_in_days:" + std::to_string(uptime / 86400) + "\r\n";
  }
  if (want_clients) {
    text += "# Clients\r\nconnected_clients:" + std::to_string(s_.clients_.count.load()) + "\r\n";
  }
  if (!want_dproxy) {
    resp::append_bulk(s_.ready_slot("")->data, text);
    return;
  }
  text += "# dproxy\r\ndproxy_version:" DPROXY_VERSION "\r\n";
  text += "uptime_in_seconds:" + std::to_string(uptime) + "\r\n";
  text += "pool:" + config.name + "\r\n";
  text += "pool_listen:" + config.listen.to_string() + "\r\n";
  text += "pool_servers:" + std::to_string(config.servers.size()) + "\r\n";
  for (size_t i = 0; i < config.servers.size(); ++i) {
    const auto& s = config.servers[i];
    text += "server" + std::to_string(i) + ":address=" + s.address() +
            ",weight=" + std::to_string(s.weight) + ",name=" + s.name + "\r\n";
  }
  if (s_.pool().cluster() != nullptr) s_.append_cluster_info(text);
  text += "redis_commands_table:" + std::string(resp::redis_version()) + "\r\n";
  // The traffic figures are summed over every worker thread: the reply waits for them.
  ReplySlot* slot = s_.new_slot(ReplySlot::Kind::kReady);
  s_.worker_.collect_stats(
      s_.socket_.get_executor(), [self = s_.shared_from_this(), slot, text = std::move(text)](
                                     const StatsSnapshot& snap, const ProcessInfo& info) {
        std::string body = text + format_redis_info(snap, info, self->slot_.name);
        slot->data.clear();
        resp::append_bulk(slot->data, body);
        slot->done = true;
        self->drain();
      });
}

}  // namespace dproxy::core
