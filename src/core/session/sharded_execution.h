#pragma once
// The execution of requests in sharded pools (ketama / modula / random), both protocols: a key's
// request to its server, multi-key requests split per server (memcached get/gets/gat, Redis
// MGET/MSET/DEL/...) and merged by the session, broadcasts to every server (memcached flush_all
// and stats groups in every pool kind; Redis DBSIZE, KEYS, SCAN's server-by-server walk ...).
// See sharded_execution.cpp.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/reply_slot.h"
#include "protocol/memcache/reply_parser.h"
#include "protocol/request.h"
#include "protocol/resp/command_table.h"

namespace dproxy::core {

class ClientSession;
class ServerConnection;

class ShardedExecution {
 public:
  explicit ShardedExecution(ClientSession& s) : s_(s) {}

  // memcached: a single-key request to its server, a multi-key get split per server.
  void dispatch_memcache(const protocol::Request& req);
  // memcached flush_all, stats <group> / reset / detail: sent to every server, merged.
  void memcache_broadcast(const protocol::Request& req);
  // Redis: routes `cmd` (its keys found by the front end in the session's key_idx_).
  void dispatch_redis(const protocol::resp::CommandInfo& cmd, const protocol::Request& req);
  // Redis commands sent to every server (or walked server by server: SCAN), in every pool kind.
  void redis_broadcast(const protocol::resp::CommandInfo& cmd, const protocol::Request& req);
  // Redis: `req` as it is to `server` (an error reply when the server is down).
  void redis_forward(const protocol::Request& req, uint32_t server);
  // Appends, RESP-encoded, the part of a split MGET/MSET/DEL/... that fragment `frag` of `slot`
  // gets: the command name, then its keys (and, with `pairs`, each key's value) in request order.
  void append_split_part(std::string& out, const ReplySlot* slot, const protocol::Request& req,
                         size_t frag, bool pairs);
  // A meta request's reply kind; a quiet one (flag q) is followed by "mn" in `out` and its slot
  // marked quiet.
  static protocol::memcache::ReplyKind meta_reply_kind(const protocol::Request& req,
                                                       std::string& out, ReplySlot* slot);
  // Appends `frame` minus the noreply token (if any) to `out`.
  static void append_frame(std::string& out, const protocol::Request& req);

 private:
  void memcache_multiget(const protocol::Request& req);
  void redis_split(const protocol::resp::CommandInfo& cmd, const protocol::Request& req);
  // Split bookkeeping (frag_of_server_ must be reset, the session's frag_servers_ and
  // frag_counts_ cleared first): the fragment, one per distinct server, that a server's keys go
  // to; a new fragment starts with a count of 0. Inline: it runs once per key of a split.
  uint16_t fragment_of(uint32_t server, std::vector<uint32_t>& frag_servers) {
    int32_t frag = frag_of_server_[server];
    if (frag < 0) {
      frag = static_cast<int32_t>(frag_servers.size());
      frag_of_server_[server] = frag;
      frag_servers.push_back(server);
      frag_counts_.push_back(0);
    }
    return static_cast<uint16_t>(frag);
  }
  // A split touching a down server gets that server's error as its whole reply: true then.
  bool split_hits_down_server(ReplySlot* slot);
  // A shared connection to `server` for a broadcast (redis_cluster: node `server`).
  ServerConnection& broadcast_connection(uint32_t server);

  ClientSession& s_;
  std::vector<int32_t> frag_of_server_;     // scratch for splitting, -1 = unused
  std::vector<uint32_t> frag_counts_;       // scratch: fragment -> keys (or key bytes) sent to it
  std::vector<size_t> frag_bytes_;          // scratch: fragment -> bytes of its arguments
  std::vector<char*> frag_write_;           // scratch: fragment -> where its next bytes go
  std::vector<std::string_view> sub_args_;  // scratch: arguments of one split sub-command
};

}  // namespace dproxy::core
