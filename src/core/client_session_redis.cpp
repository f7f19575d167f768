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

namespace dproxy::core {

namespace resp = protocol::resp;
using protocol::Request;
using resp::Routing;

namespace {

// SCAN cursors: a backend cursor (up to 64 bits) times the server count plus the position.
__extension__ typedef unsigned __int128 U128;

}  // namespace

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

__attribute__((always_inline)) inline void ClientSession::dispatch_redis_sharded(
    const resp::CommandInfo& cmd, const Request& req) {
  const auto& args = req.args;
  switch (cmd.routing) {
    case Routing::kBroadcast:
    case Routing::kLocal:
    case Routing::kRejected:
      return;  // handled by execute_redis / the front end
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
          crossslot_error(cmd);
          return;
        }
      }
      redis_forward(req, server);
      return;
    }
  }
  if (pool().server_count() == 1) {
    redis_forward(req, 0);  // one server: a command without keys still has its server
    return;
  }
  redis_no_key_error(cmd);
}

void ClientSession::execute_redis(const resp::CommandInfo& cmd, const Request& req) {
  if (cmd.routing == Routing::kBroadcast) {
    redis_broadcast(cmd, req);
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
  dispatch_redis_sharded(cmd, req);
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
  ServerConnection& conn = pool().connection(server, id_, db_, resp3_);
  ReplySlot* slot = new_slot(ReplySlot::Kind::kForward);
  slot->outstanding = 1;
  append_request(conn.out(), req);
  conn.push(shared_from_this(), slot, 0, protocol::memcache::ReplyKind::kLine);
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
    redis_forward(req, pool().first_child_servers()[id_ % pool().first_child_servers().size()]);
    return;
  }
  redis_forward(req, static_cast<uint32_t>(id_ % pool().server_count()));
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
    ServerConnection& conn = pool_rt.connection(frag_servers_[0], id_, db_, resp3_);
    append_request(conn.out(), req);
    conn.push(shared_from_this(), slot, 0, protocol::memcache::ReplyKind::kLine);
    return;
  }
  expect_resp_fragments(slot, cmd.merge, nfrags);
  auto self = shared_from_this();
  if (req.frame.empty() || req.frame[0] != '*') {
    // An inline command: each part is encoded from the arguments.
    for (size_t f = 0; f < nfrags; ++f) {
      ServerConnection& conn = pool_rt.connection(frag_servers_[f], id_, db_, resp3_);
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
    std::string& out = pool_rt.connection(frag_servers_[f], id_, db_, resp3_).out();
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
    pool_rt.connection(frag_servers_[f], id_, db_, resp3_)
        .push(self, slot, static_cast<uint16_t>(f), protocol::memcache::ReplyKind::kLine);
  }
}

void ClientSession::redis_broadcast(const resp::CommandInfo& cmd, const Request& req) {
  const std::string_view name = cmd.name;
  // (SCRIPT LOAD / FLUSH / KILL carry no write flag, but change or stop every server's scripts.)
  const bool write = cmd.has(resp::kCmdWrite) || name == "script|load" || name == "script|flush" ||
                     name == "script|kill" || name == "function|kill";
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

ServerConnection& ClientSession::broadcast_connection(uint32_t server) {
  ClusterRuntime* cluster = pool().cluster();
  return cluster != nullptr ? cluster->connection(server, id_, resp3_)
                            : pool().connection(server, id_, db_, resp3_);
}

void ClientSession::cluster_retry(ReplySlot* slot, uint16_t frag) {
  cluster_.retry(slot, frag);
}

}  // namespace dproxy::core
