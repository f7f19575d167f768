// ShardedExecution: requests of sharded pools (ketama / modula / random). A key's request goes
// byte for byte to the key's server; a multi-key request whose keys live on several servers is
// split into one part per server (memcached: "get k1 k3" from the line's own bytes; Redis: a new
// count line and the keys' bulk strings copied from the frame) and merged in key order by the
// session (on_merge_reply, the merge units of src/protocol). A split touching a down server gets
// that server's error as its reply, as a single-key request would. Broadcasts go to every
// server, in every pool kind (memcached flush_all / stats groups; Redis DBSIZE, KEYS, SCRIPT ...,
// and SCAN, which walks the servers one at a time with the position kept in the cursor).

#include "core/session/sharded_execution.h"

#include <cstring>

#include "core/backend/cluster_runtime.h"
#include "core/backend/pool_runtime.h"
#include "core/backend/server_connection.h"
#include "core/client_session.h"
#include "core/stats.h"
#include "core/worker.h"
#include "protocol/resp/reply_writer.h"

namespace dproxy::core {

namespace mc = protocol::memcache;
namespace resp = protocol::resp;
using protocol::Request;
using resp::Routing;

namespace {

// SCAN cursors: a backend cursor (up to 64 bits) times the server count plus the position.
__extension__ typedef unsigned __int128 U128;

// Multibulk frames are forwarded byte for byte; an inline command (typed by hand) is re-encoded
// as multibulk so the backend sees exactly the arguments dproxy routed on.
void append_request(std::string& out, const Request& req) {
  if (!req.frame.empty() && req.frame[0] == '*') {
    out.append(req.frame);
  } else {
    resp::append_command(out, req.args);
  }
}

}  // namespace

void ShardedExecution::append_frame(std::string& out, const Request& req) {
  if (req.noreply_token.empty()) {
    out.append(req.frame);
    return;
  }
  // Forward without "noreply" so the backend always answers and replies stay matched.
  size_t cut = static_cast<size_t>(req.noreply_token.data() - req.frame.data());
  out.append(req.frame.substr(0, cut));
  out.append(req.frame.substr(cut + req.noreply_token.size()));
}

void ShardedExecution::dispatch_memcache(const Request& req) {
  if (req.has(protocol::kFlagMultiKey) && req.keys.size() > 1) {
    memcache_multiget(req);
    return;
  }
  PoolRuntime& pool = s_.pool();
  uint32_t server = pool.server_for(req.keys[0]);
  if (pool.is_down(server)) {
    s_.ready_slot(pool.down_error(server))->noreply = req.has(protocol::kFlagNoreply);
    return;
  }
  ServerConnection& conn = pool.connection(server, s_.id_, s_.db_);
  ReplySlot* slot = s_.new_slot(ReplySlot::Kind::kForward);
  slot->outstanding = 1;
  slot->noreply = req.has(protocol::kFlagNoreply);
  append_frame(conn.out(), req);
  mc::ReplyKind kind = mc::reply_kind(static_cast<mc::Command>(req.command));
  if (req.flags & (protocol::kFlagMeta | protocol::kFlagQuiet)) [[unlikely]]
    kind = meta_reply_kind(req, conn.out(), slot);
  conn.push(s_.shared_from_this(), slot, 0, kind);
}

mc::ReplyKind ShardedExecution::meta_reply_kind(const Request& req, std::string& out,
                                                ReplySlot* slot) {
  if (!req.has(protocol::kFlagQuiet)) return mc::ReplyKind::kMeta;
  // A quiet meta request: the server answers only what q does not leave out, so an "mn" after
  // it makes every request answer ("MN", dropped by on_backend_reply): replies stay matched.
  out.append("mn\r\n");
  slot->quiet = true;
  return mc::ReplyKind::kMetaQuiet;
}

void ShardedExecution::memcache_multiget(const Request& req) {
  PoolRuntime& pool = s_.pool();
  std::vector<uint32_t>& frag_servers = s_.frag_servers_;
  frag_of_server_.assign(pool.server_count(), -1);
  frag_servers.clear();
  ReplySlot* slot = s_.new_slot(ReplySlot::Kind::kMultiGet);
  const size_t nkeys = req.keys.size();
  // The keys are kept as one copy of the line from the first key to the end of the last (keys
  // separated by spaces) plus each key's length: merge_multiget walks them in order.
  const std::string_view first = req.keys.front();
  const std::string_view last = req.keys.back();
  slot->keys.assign(first.data(), static_cast<size_t>(last.data() + last.size() - first.data()));
  slot->key_len.resize(nkeys);
  slot->key_frag.resize(nkeys);
  frag_counts_.clear();  // bytes of the keys (each with a space) per fragment
  for (size_t i = 0; i < nkeys; ++i) {
    const std::string_view key = req.keys[i];
    slot->key_len[i] = static_cast<uint32_t>(key.size());
    const uint16_t frag = fragment_of(pool.server_for(key), frag_servers);
    frag_counts_[frag] += static_cast<uint32_t>(key.size() + 1);
    slot->key_frag[i] = frag;
  }
  size_t nfrags = frag_servers.size();
  if (split_hits_down_server(slot)) return;
  if (nfrags == 1) {
    // Every key on one server: forward the frame untouched.
    slot->kind = ReplySlot::Kind::kForward;
    slot->outstanding = 1;
    ServerConnection& conn = pool.connection(frag_servers[0], s_.id_, s_.db_);
    conn.out().append(req.frame);
    conn.push(s_.shared_from_this(), slot, 0, mc::ReplyKind::kRetrieval);
    return;
  }
  s_.expect_fragments(slot, nfrags);
  // "get" or "gat <exptime>": everything before the space that precedes the first key. Each
  // key is then copied with the space before it (the line has one there), into room made
  // once per fragment.
  std::string_view prefix(req.frame.data(), static_cast<size_t>(first.data() - req.frame.data()));
  prefix.remove_suffix(1);
  frag_write_.resize(nfrags);
  for (size_t f = 0; f < nfrags; ++f) {
    std::string& out = pool.connection(frag_servers[f], s_.id_, s_.db_).out();
    const size_t at = out.size();
    out.resize(at + prefix.size() + frag_counts_[f] + 2);
    char* w = out.data() + at;
    std::memcpy(w, prefix.data(), prefix.size());
    frag_write_[f] = w + prefix.size();
  }
  for (size_t i = 0; i < nkeys; ++i) {
    const std::string_view key = req.keys[i];
    char*& w = frag_write_[slot->key_frag[i]];
    std::memcpy(w, key.data() - 1, key.size() + 1);
    w += key.size() + 1;
  }
  auto self = s_.shared_from_this();
  for (size_t f = 0; f < nfrags; ++f) {
    std::memcpy(frag_write_[f], "\r\n", 2);
    pool.connection(frag_servers[f], s_.id_, s_.db_)
        .push(self, slot, static_cast<uint16_t>(f), mc::ReplyKind::kRetrieval);
  }
}

bool ShardedExecution::split_hits_down_server(ReplySlot* slot) {
  PoolRuntime& pool = s_.pool();
  for (uint32_t server : s_.frag_servers_) {
    if (pool.is_down(server)) {
      // As when a shard fails: the whole reply is that server's error.
      slot->kind = ReplySlot::Kind::kReady;
      slot->data.assign(pool.down_error(server));
      slot->done = true;
      return true;
    }
  }
  return false;
}

void ShardedExecution::memcache_broadcast(const Request& req) {
  PoolRuntime& pool = s_.pool();
  size_t n = pool.server_count();
  for (uint32_t server = 0; server < n; ++server) {
    if (pool.is_down(server)) {
      s_.ready_slot(pool.down_error(server))->noreply = req.has(protocol::kFlagNoreply);
      return;
    }
  }
  ReplySlot* slot = s_.new_slot(ReplySlot::Kind::kBroadcast);
  slot->noreply = req.has(protocol::kFlagNoreply);
  s_.slot_.counters.fragments += n;
  slot->outstanding = static_cast<uint32_t>(n);
  if (slot->frags.size() < n) slot->frags.resize(n);
  slot->frag_error.assign(n, 0);
  auto self = s_.shared_from_this();
  for (uint32_t server = 0; server < n; ++server) {
    ServerConnection& conn = pool.connection(server, s_.id_, s_.db_);
    append_frame(conn.out(), req);
    conn.push(self, slot, static_cast<uint16_t>(server),
              mc::reply_kind(static_cast<mc::Command>(req.command)));
  }
}

void ShardedExecution::dispatch_redis(const resp::CommandInfo& cmd, const Request& req) {
  const auto& args = req.args;
  const std::vector<uint32_t>& key_idx = s_.key_idx_;
  PoolRuntime& pool = s_.pool();
  switch (cmd.routing) {
    case Routing::kBroadcast:
    case Routing::kLocal:
    case Routing::kRejected:
      return;  // handled by execute_redis / the front end
    case Routing::kNoKeyForward:
      // Any server gives the right answer.
      redis_forward(req, static_cast<uint32_t>(s_.id_ % pool.server_count()));
      return;
    case Routing::kSingleKey:
      if (key_idx.empty()) break;
      redis_forward(req, pool.server_for(args[key_idx[0]]));
      return;
    case Routing::kMultiKeySplit:
      if (key_idx.empty()) break;
      redis_split(cmd, req);
      return;
    case Routing::kSameServer: {
      if (key_idx.empty()) break;
      uint32_t server = pool.server_for(args[key_idx[0]]);
      for (size_t i = 1; i < key_idx.size(); ++i) {
        if (pool.server_for(args[key_idx[i]]) != server) {
          s_.crossslot_error(cmd);
          return;
        }
      }
      redis_forward(req, server);
      return;
    }
  }
  if (pool.server_count() == 1) {
    redis_forward(req, 0);  // one server: a command without keys still has its server
    return;
  }
  s_.redis_no_key_error(cmd);
}

void ShardedExecution::redis_forward(const Request& req, uint32_t server) {
  PoolRuntime& pool = s_.pool();
  if (pool.is_down(server)) {
    s_.ready_slot(pool.down_error(server));
    return;
  }
  ServerConnection& conn = pool.connection(server, s_.id_, s_.db_, s_.resp3_);
  ReplySlot* slot = s_.new_slot(ReplySlot::Kind::kForward);
  slot->outstanding = 1;
  append_request(conn.out(), req);
  conn.push(s_.shared_from_this(), slot, 0, mc::ReplyKind::kLine);
}

void ShardedExecution::append_split_part(std::string& out, const ReplySlot* slot,
                                         const Request& req, size_t frag, bool pairs) {
  const auto& args = req.args;
  const std::vector<uint32_t>& key_idx = s_.key_idx_;
  sub_args_.clear();
  sub_args_.push_back(args[0]);
  for (size_t i = 0; i < key_idx.size(); ++i) {
    if (slot->key_frag[i] != frag) continue;
    sub_args_.push_back(args[key_idx[i]]);
    if (pairs) sub_args_.push_back(args[key_idx[i] + 1]);
  }
  resp::append_command(out, sub_args_);
}

void ShardedExecution::redis_split(const resp::CommandInfo& cmd, const Request& req) {
  const auto& args = req.args;
  const std::vector<uint32_t>& key_idx = s_.key_idx_;
  std::vector<uint32_t>& frag_servers = s_.frag_servers_;
  const bool pairs = resp::key_value_pairs(cmd);  // MSET k v [k v ...]: a key's value follows it
  PoolRuntime& pool = s_.pool();
  const uint64_t id = s_.id_;
  const int32_t db = s_.db_;
  const bool resp3 = s_.resp3_;
  frag_of_server_.assign(pool.server_count(), -1);
  frag_servers.clear();
  frag_counts_.clear();
  ReplySlot* slot = s_.new_slot(ReplySlot::Kind::kRespMerge);
  const size_t nkeys = key_idx.size();
  slot->key_frag.resize(nkeys);
  for (size_t i = 0; i < nkeys; ++i) {
    const uint16_t frag = fragment_of(pool.server_for(args[key_idx[i]]), frag_servers);
    ++frag_counts_[frag];
    slot->key_frag[i] = frag;
  }
  const size_t nfrags = frag_servers.size();
  if (split_hits_down_server(slot)) return;
  if (nfrags == 1) {
    slot->kind = ReplySlot::Kind::kForward;
    slot->outstanding = 1;
    ServerConnection& conn = pool.connection(frag_servers[0], id, db, resp3);
    append_request(conn.out(), req);
    conn.push(s_.shared_from_this(), slot, 0, mc::ReplyKind::kLine);
    return;
  }
  s_.expect_resp_fragments(slot, cmd.merge, nfrags);
  auto self = s_.shared_from_this();
  if (req.frame.empty() || req.frame[0] != '*') {
    // An inline command: each part is encoded from the arguments.
    for (size_t f = 0; f < nfrags; ++f) {
      ServerConnection& conn = pool.connection(frag_servers[f], id, db, resp3);
      append_split_part(conn.out(), slot, req, f, pairs);
      conn.push(self, slot, static_cast<uint16_t>(f), mc::ReplyKind::kLine);
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
    const uint32_t idx = key_idx[i];
    frag_bytes_[slot->key_frag[i]] +=
        static_cast<size_t>(bulk_end(pairs ? idx + 1 : idx) - bulk_end(idx - 1));
  }
  frag_write_.resize(nfrags);
  for (size_t f = 0; f < nfrags; ++f) {
    std::string& out = pool.connection(frag_servers[f], id, db, resp3).out();
    resp::append_array_header(out, 1 + frag_counts_[f] * (pairs ? 2 : 1));
    const size_t at = out.size();
    out.resize(at + name_bulk.size() + frag_bytes_[f]);
    char* w = out.data() + at;
    std::memcpy(w, name_bulk.data(), name_bulk.size());
    frag_write_[f] = w + name_bulk.size();
  }
  for (size_t i = 0; i < nkeys; ++i) {
    const uint32_t idx = key_idx[i];
    const char* start = bulk_end(idx - 1);
    const auto n = static_cast<size_t>(bulk_end(pairs ? idx + 1 : idx) - start);
    char*& w = frag_write_[slot->key_frag[i]];
    std::memcpy(w, start, n);
    w += n;
  }
  for (size_t f = 0; f < nfrags; ++f) {
    pool.connection(frag_servers[f], id, db, resp3)
        .push(self, slot, static_cast<uint16_t>(f), mc::ReplyKind::kLine);
  }
}

void ShardedExecution::redis_broadcast(const resp::CommandInfo& cmd, const Request& req) {
  PoolRuntime& pool = s_.pool();
  std::vector<uint32_t>& servers = s_.frag_servers_;
  const std::string_view name = cmd.name;
  // (SCRIPT LOAD / FLUSH / KILL carry no write flag, but change or stop every server's scripts.)
  const bool write = cmd.has(resp::kCmdWrite) || name == "script|load" || name == "script|flush" ||
                     name == "script|kill" || name == "function|kill";
  // Writes reach every server; reads ask one copy of the data: every server of a sharded pool,
  // the first child's servers of a replicated or fanout pool.
  servers.clear();
  if (pool.cluster() != nullptr) {
    servers = pool.cluster()->masters();  // redis_cluster: every master
  } else if (write || pool.route_kind() == routing::Route::Kind::kShard) {
    for (uint32_t i = 0; i < pool.server_count(); ++i) servers.push_back(i);
  } else {
    servers = pool.first_child_servers();
  }
  for (uint32_t server : servers) {
    if (pool.cluster() == nullptr && pool.is_down(server)) {
      s_.ready_slot(pool.down_error(server));
      return;
    }
  }
  const auto n = static_cast<uint32_t>(servers.size());

  if (cmd.merge == resp::Merge::kScanCursor) {
    // The client's cursor = backend cursor * n + server position (see README); 0 starts at the
    // first server and a reply of 0 means every server was walked.
    U128 cursor = 0;
    for (char c : req.args[1]) {
      if (c < '0' || c > '9' || cursor > (~static_cast<U128>(0)) / 10 - 10) {
        s_.redis_error("ERR invalid cursor");
        return;
      }
      cursor = cursor * 10 + static_cast<unsigned>(c - '0');
    }
    const auto position = static_cast<uint32_t>(cursor % n);
    const U128 backend = cursor / n;
    if (req.args[1].empty() || backend > UINT64_MAX) {
      s_.redis_error("ERR invalid cursor");
      return;
    }
    std::string backend_cursor = std::to_string(static_cast<uint64_t>(backend));
    std::vector<std::string_view>& args = s_.args_scratch_;
    args.assign(req.args.begin(), req.args.end());
    args[1] = backend_cursor;
    ReplySlot* slot = s_.new_slot(ReplySlot::Kind::kRespMerge);
    slot->merge = cmd.merge;
    slot->child = position;
    slot->tried = n;
    slot->outstanding = 1;
    if (slot->frags.empty()) slot->frags.resize(1);
    slot->frag_error.assign(1, 0);
    ServerConnection& conn = broadcast_connection(servers[position]);
    resp::append_command(conn.out(), args);
    conn.push(s_.shared_from_this(), slot, 0, mc::ReplyKind::kLine);
    return;
  }
  ReplySlot* slot = s_.new_slot(ReplySlot::Kind::kRespMerge);
  slot->merge = cmd.merge;
  slot->child = static_cast<uint32_t>(s_.read_turn_++ % n);  // RANDOMKEY: where to start looking
  slot->outstanding = n;
  if (slot->frags.size() < n) slot->frags.resize(n);
  slot->frag_error.assign(n, 0);
  auto self = s_.shared_from_this();
  for (uint32_t f = 0; f < n; ++f) {
    ServerConnection& conn = broadcast_connection(servers[f]);
    append_request(conn.out(), req);
    conn.push(self, slot, static_cast<uint16_t>(f), mc::ReplyKind::kLine);
  }
}

ServerConnection& ShardedExecution::broadcast_connection(uint32_t server) {
  ClusterRuntime* cluster = s_.pool().cluster();
  return cluster != nullptr ? cluster->connection(server, s_.id_, s_.resp3_)
                            : s_.pool().connection(server, s_.id_, s_.db_, s_.resp3_);
}

}  // namespace dproxy::core
