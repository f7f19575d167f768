// ClientSession: the Redis (RESP2) side. Routing by key, split/merge of multi-key commands,
// commands answered by dproxy, and rejections with an error naming the reason.

#include <chrono>
#include <cstring>

#include "core/backend/pool_runtime.h"
#include "core/backend/server_connection.h"
#include "core/client_session.h"
#include "core/stats.h"
#include "core/worker.h"
#include "protocol/resp/reply_parser.h"
#include "protocol/resp/reply_writer.h"

namespace dproxy::core {

namespace resp = protocol::resp;
using protocol::Request;
using resp::Routing;

namespace {

const auto kProcessStart = std::chrono::steady_clock::now();

// SCAN cursors: a backend cursor (up to 64 bits) times the server count plus the position.
__extension__ typedef unsigned __int128 U128;

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

// Appends `name` upper-cased ("client|setname" -> "CLIENT SETNAME").
void append_upper(std::string& out, std::string_view name) {
  for (char c : name) {
    if (c == '|') c = ' ';
    out.push_back(c >= 'a' && c <= 'z' ? static_cast<char>(c - 'a' + 'A') : c);
  }
}

// Redis's rule for CLIENT SETNAME / HELLO SETNAME: printable ASCII without spaces.
bool valid_client_name(std::string_view name) {
  for (char c : name) {
    if (c < '!' || c > '~') return false;
  }
  return true;
}

}  // namespace

void ClientSession::redis_error(std::string_view message) {
  ReplySlot* slot = ready_slot("-");
  slot->data.append(message);
  slot->data.append("\r\n");
}

void ClientSession::dispatch_redis(const Request& req) {
  const resp::CommandInfo* cmd = redis_lookup(req);
  if (cmd == nullptr) return;  // unknown command or subcommand: answered
  if (!authenticated_ && cmd->name != "auth" && cmd->name != "hello" && cmd->name != "quit") {
    redis_error("NOAUTH Authentication required.");
    return;
  }
  if (cmd->name == "exec" || cmd->name == "discard" || (in_refused_multi_ && cmd->name != "quit")) {
    refused_transaction(*cmd);
    return;
  }
  if (!redis_keys(*cmd, req)) return;
  if (cmd->routing == Routing::kBroadcast) {
    redis_broadcast(*cmd, req);
    return;
  }
  const bool remote = cmd->routing != Routing::kLocal && cmd->routing != Routing::kRejected;
  if (remote && pool().cluster() != nullptr) {
    dispatch_redis_cluster(*cmd, req);  // client_session_cluster.cpp
    return;
  }
  if (remote && pool().route_kind() != routing::Route::Kind::kShard) {
    if (key_idx_.empty() && cmd->routing != Routing::kNoKeyForward) {
      redis_no_key_error(*cmd);
      return;
    }
    dispatch_redis_routed(*cmd, req);  // client_session_routes.cpp
    return;
  }
  dispatch_redis_sharded(*cmd, req);
}

const resp::CommandInfo* ClientSession::redis_lookup(const Request& req) {
  const auto& args = req.args;
  // Clients tend to repeat a command: remember the last lookup (exact bytes).
  const resp::CommandInfo* cmd;
  if (args[0] == last_command_name_ && last_command_ != nullptr) {
    cmd = last_command_;
  } else {
    cmd = resp::find_command(args[0]);
    if (cmd != nullptr && args[0].size() <= 32) {
      last_command_name_.assign(args[0]);
      last_command_ = cmd;
    }
  }
  if (cmd == nullptr) {
    // Redis 7's own wording and truncation: the name up to 128 bytes, then arguments until the
    // list reaches 128 bytes.
    ReplySlot* slot = ready_slot("-ERR unknown command '");
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
    return nullptr;
  }
  // Latency is kept per top-level command (its index in the sorted command table).
  cur_command_ = static_cast<uint16_t>(cmd - resp::all_commands().data());
  if (cmd->has_subcommands && args.size() >= 2) {
    const resp::CommandInfo* sub = resp::find_subcommand(*cmd, args[1]);
    if (sub == nullptr) {
      ReplySlot* slot = ready_slot("-ERR unknown subcommand '");
      append_one_line(slot->data, args[1].substr(0, 128));
      slot->data.append("'. Try ");
      append_upper(slot->data, cmd->name);
      slot->data.append(" HELP.\r\n");
      return nullptr;
    }
    cmd = sub;
  }
  return cmd;
}

bool ClientSession::redis_keys(const resp::CommandInfo& cmd, const Request& req) {
  switch (resp::find_keys(cmd, req.args, key_idx_)) {
    case resp::KeyStatus::kOk:
      return true;
    case resp::KeyStatus::kWrongArity: {
      ReplySlot* slot = ready_slot("-ERR wrong number of arguments for '");
      slot->data.append(cmd.name);
      slot->data.append("' command\r\n");
      return false;
    }
    case resp::KeyStatus::kBadNumkeys: {
      ReplySlot* slot = ready_slot("-ERR dproxy: malformed key arguments for '");
      append_upper(slot->data, cmd.name);
      slot->data.append("' (check numkeys or the STREAMS list)\r\n");
      return false;
    }
    case resp::KeyStatus::kRejectedOption: {
      ReplySlot* slot = ready_slot("-ERR dproxy: ");
      append_upper(slot->data, cmd.name);
      slot->data.append(" with BLOCK is not supported (");
      slot->data.append(resp::reasons::kBlocking);
      slot->data.append(")\r\n");
      return false;
    }
  }
  return false;
}

void ClientSession::redis_no_key_error(const resp::CommandInfo& cmd) {
  // A command that routes by key but names none (EVAL with numkeys 0, ...).
  ReplySlot* slot = ready_slot("-ERR dproxy: ");
  append_upper(slot->data, cmd.name);
  slot->data.append(
      " names no key, so there is no server to route it to (pass at least one key)\r\n");
}

void ClientSession::dispatch_redis_sharded(const resp::CommandInfo& cmd, const Request& req) {
  const auto& args = req.args;
  switch (cmd.routing) {
    case Routing::kBroadcast:
      return;  // handled by dispatch_redis
    case Routing::kLocal:
      redis_local(cmd, req);
      return;
    case Routing::kRejected: {
      // The commands a client queues after this MULTI are refused up to its EXEC or DISCARD.
      if (cmd.name == "multi") in_refused_multi_ = true;
      ReplySlot* slot = ready_slot("-ERR dproxy: ");
      append_upper(slot->data, cmd.name);
      slot->data.append(" is not supported (");
      slot->data.append(cmd.reject_reason);
      slot->data.append(")\r\n");
      return;
    }
    case Routing::kNoKeyForward:
      // Any server gives the right answer.
      redis_forward(req, static_cast<uint32_t>(id_ % pool().server_count()));
      return;
    case Routing::kSingleKey:
      if (key_idx_.empty()) break;
      redis_forward(req, pool().server_for(args[key_idx_[0]]));
      return;
    case Routing::kMultiKeySplit:
      if (key_idx_.empty()) break;
      redis_split(cmd, req);
      return;
    case Routing::kSameServer: {
      if (key_idx_.empty()) break;
      uint32_t server = pool().server_for(args[key_idx_[0]]);
      for (size_t i = 1; i < key_idx_.size(); ++i) {
        if (pool().server_for(args[key_idx_[i]]) != server) {
          ReplySlot* slot = ready_slot("-CROSSSLOT dproxy: the keys of ");
          append_upper(slot->data, cmd.name);
          slot->data.append(
              " map to different servers; keep them together with a hash tag, e.g. "
              "{user1}.a and {user1}.b");
          if (pool().config().hash_tag.empty()) slot->data.append(" (set the pool's hash_tag)");
          slot->data.append("\r\n");
          return;
        }
      }
      redis_forward(req, server);
      return;
    }
  }
  redis_no_key_error(cmd);
}

void ClientSession::refused_transaction(const resp::CommandInfo& cmd) {
  // Redis's own replies for a transaction that is discarded because a command could not be
  // queued; nothing of it reaches a backend.
  if (cmd.name == "exec" || cmd.name == "discard") {
    if (!in_refused_multi_) {
      ReplySlot* slot = ready_slot("-ERR ");
      append_upper(slot->data, cmd.name);
      slot->data.append(" without MULTI\r\n");
    } else if (cmd.name == "exec") {
      redis_error("EXECABORT Transaction discarded because of previous errors.");
    } else {
      ready_slot("+OK\r\n");
    }
    in_refused_multi_ = false;
    return;
  }
  if (cmd.name == "multi") {
    redis_error("ERR MULTI calls can not be nested");
    return;
  }
  if (cmd.name == "watch") {
    redis_error("ERR WATCH inside MULTI is not allowed");
    return;
  }
  ReplySlot* slot = ready_slot("-ERR dproxy: ");
  append_upper(slot->data, cmd.name);
  slot->data.append(
      " not queued: this transaction's MULTI was refused (transactions need a connection to one "
      "server), so EXEC will discard it\r\n");
}

// Multibulk frames are forwarded byte for byte; an inline command (typed by hand) is re-encoded
// as multibulk so the backend sees exactly the arguments dproxy routed on.
static void append_request(std::string& out, const Request& req) {
  if (!req.frame.empty() && req.frame[0] == '*') {
    out.append(req.frame);
  } else {
    resp::append_command(out, req.args);
  }
}

void ClientSession::redis_forward(const Request& req, uint32_t server) {
  if (pool().is_down(server)) {
    ready_slot(pool().down_error(server));
    return;
  }
  ServerConnection& conn = pool().connection(server, id_);
  ReplySlot* slot = new_slot(ReplySlot::Kind::kForward);
  slot->outstanding = 1;
  append_request(conn.out(), req);
  conn.push(shared_from_this(), slot, 0, protocol::memcache::ReplyKind::kLine);
}

void ClientSession::append_split_part(std::string& out, const ReplySlot* slot, const Request& req,
                                      size_t frag, bool pairs) {
  const auto& args = req.args;
  sub_args_.clear();
  sub_args_.push_back(args[0]);
  for (size_t i = 0; i < key_idx_.size(); ++i) {
    if (slot->key_frag[i] != frag) continue;
    sub_args_.push_back(args[key_idx_[i]]);
    if (pairs) sub_args_.push_back(args[key_idx_[i] + 1]);
  }
  resp::append_command(out, sub_args_);
}

void ClientSession::redis_split(const resp::CommandInfo& cmd, const Request& req) {
  const auto& args = req.args;
  const bool pairs = resp::key_value_pairs(cmd);  // MSET k v [k v ...]: a key's value follows it
  PoolRuntime& pool_rt = pool();
  frag_of_server_.assign(pool_rt.server_count(), -1);
  frag_servers_.clear();
  frag_counts_.clear();
  ReplySlot* slot = new_slot(ReplySlot::Kind::kRespMerge);
  const size_t nkeys = key_idx_.size();
  slot->key_frag.resize(nkeys);
  for (size_t i = 0; i < nkeys; ++i) {
    const uint16_t frag = fragment_of(pool_rt.server_for(args[key_idx_[i]]));
    ++frag_counts_[frag];
    slot->key_frag[i] = frag;
  }
  const size_t nfrags = frag_servers_.size();
  if (split_hits_down_server(slot)) return;
  if (nfrags == 1) {
    slot->kind = ReplySlot::Kind::kForward;
    slot->outstanding = 1;
    ServerConnection& conn = pool_rt.connection(frag_servers_[0], id_);
    append_request(conn.out(), req);
    conn.push(shared_from_this(), slot, 0, protocol::memcache::ReplyKind::kLine);
    return;
  }
  expect_resp_fragments(slot, cmd.merge, nfrags);
  auto self = shared_from_this();
  if (req.frame.empty() || req.frame[0] != '*') {
    // An inline command: each part is encoded from the arguments.
    for (size_t f = 0; f < nfrags; ++f) {
      ServerConnection& conn = pool_rt.connection(frag_servers_[f], id_);
      append_split_part(conn.out(), slot, req, f, pairs);
      conn.push(self, slot, static_cast<uint16_t>(f), protocol::memcache::ReplyKind::kLine);
    }
    return;
  }
  // A multibulk frame: every argument is "$<len>\r\n<bytes>\r\n", one after the other, so a
  // part is a new count line, then the command name's and its keys' (and values') encodings
  // copied byte for byte from the frame.
  // NOTE: relies on args being views into the contiguous frame, in order (RequestParser).
  const auto bulk_end = [&](size_t idx) { return args[idx].data() + args[idx].size() + 2; };
  const char* name_start =
      static_cast<const char*>(std::memchr(req.frame.data(), '\n', req.frame.size())) + 1;
  const std::string_view name_bulk(name_start, static_cast<size_t>(bulk_end(0) - name_start));
  // The bytes of each part's arguments, to make room once per part and copy into it.
  frag_bytes_.assign(nfrags, 0);
  for (size_t i = 0; i < nkeys; ++i) {
    const uint32_t idx = key_idx_[i];
    frag_bytes_[slot->key_frag[i]] +=
        static_cast<size_t>(bulk_end(pairs ? idx + 1 : idx) - bulk_end(idx - 1));
  }
  frag_write_.resize(nfrags);
  for (size_t f = 0; f < nfrags; ++f) {
    std::string& out = pool_rt.connection(frag_servers_[f], id_).out();
    resp::append_array_header(out, 1 + frag_counts_[f] * (pairs ? 2 : 1));
    const size_t at = out.size();
    out.resize(at + name_bulk.size() + frag_bytes_[f]);
    char* w = out.data() + at;
    std::memcpy(w, name_bulk.data(), name_bulk.size());
    frag_write_[f] = w + name_bulk.size();
  }
  for (size_t i = 0; i < nkeys; ++i) {
    const uint32_t idx = key_idx_[i];
    const char* start = bulk_end(idx - 1);
    const auto n = static_cast<size_t>(bulk_end(pairs ? idx + 1 : idx) - start);
    char*& w = frag_write_[slot->key_frag[i]];
    std::memcpy(w, start, n);
    w += n;
  }
  for (size_t f = 0; f < nfrags; ++f) {
    pool_rt.connection(frag_servers_[f], id_)
        .push(self, slot, static_cast<uint16_t>(f), protocol::memcache::ReplyKind::kLine);
  }
}

void ClientSession::redis_broadcast(const resp::CommandInfo& cmd, const Request& req) {
  const std::string_view name = cmd.name;
  const bool write =
      name == "flushall" || name == "flushdb" || name == "script|load" || name == "script|flush";
  // Writes reach every server; reads ask one copy of the data: every server of a sharded pool,
  // the first child's servers of a replicated or fanout pool.
  frag_servers_.clear();
  if (pool().cluster() != nullptr) {
    frag_servers_ = pool().cluster()->masters();  // redis_cluster: every master
  } else if (write || pool().route_kind() == routing::Route::Kind::kShard) {
    for (uint32_t i = 0; i < pool().server_count(); ++i) frag_servers_.push_back(i);
  } else {
    frag_servers_ = pool().first_child_servers();
  }
  for (uint32_t server : frag_servers_) {
    if (pool().cluster() == nullptr && pool().is_down(server)) {
      ready_slot(pool().down_error(server));
      return;
    }
  }
  const auto n = static_cast<uint32_t>(frag_servers_.size());

  if (cmd.merge == resp::Merge::kScanCursor) {
    // The client's cursor = backend cursor * n + server position (see README); 0 starts at the
    // first server and a reply of 0 means every server was walked.
    U128 cursor = 0;
    for (char c : req.args[1]) {
      if (c < '0' || c > '9' || cursor > (~static_cast<U128>(0)) / 10 - 10) {
        redis_error("ERR invalid cursor");
        return;
      }
      cursor = cursor * 10 + static_cast<unsigned>(c - '0');
    }
    const auto position = static_cast<uint32_t>(cursor % n);
    const U128 backend = cursor / n;
    if (req.args[1].empty() || backend > UINT64_MAX) {
      redis_error("ERR invalid cursor");
      return;
    }
    std::string backend_cursor = std::to_string(static_cast<uint64_t>(backend));
    args_scratch_.assign(req.args.begin(), req.args.end());
    args_scratch_[1] = backend_cursor;
    ReplySlot* slot = new_slot(ReplySlot::Kind::kRespMerge);
    slot->merge = cmd.merge;
    slot->child = position;
    slot->tried = n;
    slot->outstanding = 1;
    if (slot->frags.empty()) slot->frags.resize(1);
    slot->frag_error.assign(1, 0);
    ServerConnection& conn = broadcast_connection(frag_servers_[position]);
    resp::append_command(conn.out(), args_scratch_);
    conn.push(shared_from_this(), slot, 0, protocol::memcache::ReplyKind::kLine);
    return;
  }
  ReplySlot* slot = new_slot(ReplySlot::Kind::kRespMerge);
  slot->merge = cmd.merge;
  slot->child = static_cast<uint32_t>(read_turn_++ % n);  // RANDOMKEY: where to start looking
  slot->outstanding = n;
  if (slot->frags.size() < n) slot->frags.resize(n);
  slot->frag_error.assign(n, 0);
  auto self = shared_from_this();
  for (uint32_t f = 0; f < n; ++f) {
    ServerConnection& conn = broadcast_connection(frag_servers_[f]);
    append_request(conn.out(), req);
    conn.push(self, slot, static_cast<uint16_t>(f), protocol::memcache::ReplyKind::kLine);
  }
}

bool ClientSession::redis_auth(std::string_view user, std::string_view password,
                               bool password_only) {
  const std::string& expected = pool().config().client_password;
  if (expected.empty()) {
    // As Redis 7 with no password: the default user is "nopass" and takes any password.
    if (iequals(user, "default") && !password_only) return true;
    if (password_only) {
      redis_error(
          "ERR AUTH <password> called without any password configured for the default user. "
          "Are you sure your configuration is correct?");
    } else {
      redis_error("WRONGPASS invalid username-password pair or user is disabled.");
    }
    return false;
  }
  if (!iequals(user, "default") || password != expected) {
    redis_error("WRONGPASS invalid username-password pair or user is disabled.");
    return false;
  }
  authenticated_ = true;
  return true;
}

void ClientSession::redis_local(const resp::CommandInfo& cmd, const Request& req) {
  const auto& args = req.args;
  std::string_view name = cmd.name;
  if (name == "ping") {
    if (args.size() > 2) {
      redis_error("ERR wrong number of arguments for 'ping' command");
    } else if (args.size() == 2) {
      resp::append_bulk(ready_slot("")->data, args[1]);
    } else {
      ready_slot("+PONG\r\n");
    }
  } else if (name == "echo") {
    resp::append_bulk(ready_slot("")->data, args[1]);
  } else if (name == "quit") {
    ReplySlot* slot = ready_slot("+OK\r\n");
    slot->close_after = true;
    stop_input_ = true;
  } else if (name == "auth") {
    bool ok = args.size() == 2   ? redis_auth("default", args[1], true)
              : args.size() == 3 ? redis_auth(args[1], args[2], false)
                                 : (redis_error("ERR syntax error"), false);
    if (ok) ready_slot("+OK\r\n");
  } else if (name == "hello") {
    size_t i = 1;
    if (args.size() > 1) {
      int64_t version = 0;
      if (!resp::parse_int64(args[1], version)) {
        redis_error("ERR Protocol version is not an integer or out of range");
        return;
      }
      if (version == 3) {
        redis_error("NOPROTO sorry, this protocol version is not supported.");
        return;
      }
      if (version != 2) {
        redis_error("NOPROTO unsupported protocol version");
        return;
      }
      i = 2;
    }
    std::string_view new_name;
    bool set_name = false;
    for (; i < args.size(); ++i) {
      if (iequals(args[i], "auth") && i + 2 < args.size()) {
        if (!redis_auth(args[i + 1], args[i + 2], false)) return;
        i += 2;
      } else if (iequals(args[i], "setname") && i + 1 < args.size()) {
        new_name = args[++i];
        if (!valid_client_name(new_name)) {
          redis_error("ERR Client names cannot contain spaces, newlines or special characters.");
          return;
        }
        set_name = true;
      } else {
        ReplySlot* slot = ready_slot("-ERR Syntax error in HELLO option '");
        append_one_line(slot->data, args[i].substr(0, 128));
        slot->data.append("'\r\n");
        return;
      }
    }
    if (!authenticated_) {
      // Redis 7.0's wording.
      redis_error(
          "NOAUTH HELLO must be called with the client already authenticated, otherwise the "
          "HELLO AUTH <user> <pass> option can be used to authenticate the client and select "
          "the RESP protocol version at the same time");
      return;
    }
    if (set_name) client_name_.assign(new_name);
    std::string& out = ready_slot("*14\r\n")->data;
    resp::append_bulk(out, "server");
    resp::append_bulk(out, "dproxy");
    resp::append_bulk(out, "version");
    resp::append_bulk(out, DPROXY_VERSION);
    resp::append_bulk(out, "proto");
    resp::append_integer(out, 2);
    resp::append_bulk(out, "id");
    resp::append_integer(out, static_cast<int64_t>(id_));
    resp::append_bulk(out, "mode");
    resp::append_bulk(out, "proxy");
    resp::append_bulk(out, "role");
    resp::append_bulk(out, "master");
    resp::append_bulk(out, "modules");
    resp::append_array_header(out, 0);
  } else if (name == "select") {
    if (args[1] == "0") {
      ready_slot("+OK\r\n");
    } else {
      redis_error(
          "ERR dproxy: SELECT is limited to database 0 (each pool maps it to the database set "
          "by its \"db\" option)");
    }
  } else if (name == "client|setname") {
    if (!valid_client_name(args[2])) {
      redis_error("ERR Client names cannot contain spaces, newlines or special characters.");
      return;
    }
    client_name_.assign(args[2]);
    ready_slot("+OK\r\n");
  } else if (name == "client|getname") {
    ReplySlot* slot = ready_slot("");
    if (client_name_.empty()) {
      resp::append_null_bulk(slot->data);
    } else {
      resp::append_bulk(slot->data, client_name_);
    }
  } else if (name == "client|id") {
    resp::append_integer(ready_slot("")->data, static_cast<int64_t>(id_));
  } else if (name == "info") {
    redis_info_reply(req);
  } else if (name == "command" || name.starts_with("command|")) {
    redis_command_reply(req);
  } else {
    ReplySlot* slot = ready_slot("-ERR dproxy: ");
    append_upper(slot->data, name);
    slot->data.append(" is not supported\r\n");
  }
}

void ClientSession::redis_command_reply(const Request& req) {
  const auto& args = req.args;
  std::string_view sub = args.size() > 1 ? args[1] : std::string_view();
  auto commands = resp::all_commands();
  if (args.size() == 1) {
    std::string& out = ready_slot("")->data;
    resp::append_array_header(out, commands.size());
    for (const auto& c : commands) out.append(c.info_reply);
  } else if (iequals(sub, "count")) {
    resp::append_integer(ready_slot("")->data, static_cast<int64_t>(commands.size()));
  } else if (iequals(sub, "list")) {
    auto subcommands = resp::all_subcommands();
    std::string& out = ready_slot("")->data;
    resp::append_array_header(out, commands.size() + subcommands.size());
    for (const auto& c : commands) resp::append_bulk(out, c.name);
    for (const auto& c : subcommands) resp::append_bulk(out, c.name);
  } else if (iequals(sub, "info") || iequals(sub, "docs")) {
    const bool docs = iequals(sub, "docs");
    std::string& out = ready_slot("")->data;
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
      redis_error("ERR wrong number of arguments for 'command|getkeys' command");
      return;
    }
    std::span<const std::string_view> target(args.data() + 2, args.size() - 2);
    const resp::CommandInfo* c = resp::find_command(target[0]);
    if (c != nullptr && c->has_subcommands && target.size() > 1)
      c = resp::find_subcommand(*c, target[1]);
    if (c == nullptr) {
      redis_error("ERR Invalid command specified");
      return;
    }
    std::vector<uint32_t> idx;
    if (resp::find_keys(*c, target, idx) != resp::KeyStatus::kOk) {
      redis_error("ERR Invalid number of arguments specified for command");
      return;
    }
    if (idx.empty()) {
      redis_error("ERR The command has no key arguments");
      return;
    }
    std::string& out = ready_slot("")->data;
    resp::append_array_header(out, idx.size());
    for (uint32_t i : idx) resp::append_bulk(out, target[i]);
  } else {
    ReplySlot* slot = ready_slot("-ERR unknown subcommand '");
    append_one_line(slot->data, sub.substr(0, 128));
    slot->data.append("'. Try COMMAND HELP.\r\n");
  }
}

void ClientSession::redis_info_reply(const Request& req) {
  const PoolConfig& config = pool().config();
  auto uptime = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() -
                                                                 kProcessStart)
                    .count();
  std::string text = "# dproxy\r\ndproxy_version:" DPROXY_VERSION "\r\n";
  text += "uptime_in_seconds:" + std::to_string(uptime) + "\r\n";
  text += "pool:" + config.name + "\r\n";
  text += "pool_listen:" + config.listen.to_string() + "\r\n";
  text += "pool_servers:" + std::to_string(config.servers.size()) + "\r\n";
  for (size_t i = 0; i < config.servers.size(); ++i) {
    const auto& s = config.servers[i];
    text += "server" + std::to_string(i) + ":address=" + s.address() +
            ",weight=" + std::to_string(s.weight) + ",name=" + s.name + "\r\n";
  }
  if (pool().cluster() != nullptr) append_cluster_info(text);
  text += "redis_commands_table:" + std::string(resp::redis_version()) + "\r\n";
  // "INFO <section>" for another section answers an empty document, as Redis does.
  bool wanted = req.args.size() < 2;
  for (size_t i = 1; i < req.args.size(); ++i) {
    wanted = wanted || iequals(req.args[i], "dproxy") || iequals(req.args[i], "all") ||
             iequals(req.args[i], "everything") || iequals(req.args[i], "default");
  }
  if (!wanted) {
    resp::append_bulk(ready_slot("")->data, "");
    return;
  }
  // The traffic figures are summed over every worker thread: the reply waits for them.
  ReplySlot* slot = new_slot(ReplySlot::Kind::kReady);
  worker_.collect_stats(socket_.get_executor(),
                        [self = shared_from_this(), slot, text = std::move(text)](
                            const StatsSnapshot& snap, const ProcessInfo& info) {
                          std::string body = text + format_redis_info(snap, info, self->slot_.name);
                          slot->data.clear();
                          resp::append_bulk(slot->data, body);
                          slot->done = true;
                          self->drain();
                        });
}

}  // namespace dproxy::core
