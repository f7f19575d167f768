#pragma once
// Backend connections of one Redis client's own ("dedicated"), for what cannot share a pipelined
// connection: blocking commands (BLPOP ...) wait on one, a WATCH lives on one until EXEC,
// DISCARD or UNWATCH. A connection is held while a request of the client is in flight on it (or
// a WATCH pins it), then given back to the pool's idle ones on this thread (DedicatedIdle) for
// the next client; a client that goes away closes what it holds, which ends a blocked command
// or a WATCH on the server too.

#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

#include "core/reply_slot.h"
#include "protocol/request.h"
#include "protocol/resp/command_table.h"

namespace dproxy::core {

class ClientSession;
class ServerConnection;

class DedicatedConnections {
 public:
  explicit DedicatedConnections(ClientSession& session) : s_(session) {}
  ~DedicatedConnections();
  DedicatedConnections(const DedicatedConnections&) = delete;
  DedicatedConnections& operator=(const DedicatedConnections&) = delete;

  // BLPOP, BRPOP, BLMOVE, BRPOPLPUSH, BLMPOP, BZPOPMIN/MAX, BZMPOP: every key on one server
  // (cluster: hash slot); sent on a dedicated connection to it, without the pool's timeout.
  void blocking(const protocol::resp::CommandInfo& cmd, const protocol::Request& req);
  // WATCH key...: on a dedicated connection to the keys' server, which stays the client's until
  // EXEC / DISCARD / UNWATCH; the transaction then runs there.
  void watch(const protocol::resp::CommandInfo& cmd, const protocol::Request& req);
  // UNWATCH while watching: sent on the WATCH's connection (then no longer pinned).
  void unwatch(const protocol::Request& req);
  // A WATCH is in force: where (a server index; redis_cluster: the keys' hash slot), and the
  // connection the transaction must be sent on.
  bool watching() const { return watched_place_ >= 0; }
  int64_t watched_place() const { return watched_place_; }
  // The watched connection (watching() only) and its server (cluster: node).
  ServerConnection& watched_connection();
  uint32_t watched_server();
  // EXEC was sent on the watched connection: Redis forgets the WATCH after EXEC.
  void exec_sent();
  // The session switched protocol (HELLO 2 / 3): a WATCH's connection says the same HELLO
  // (which keeps the WATCH), so the transaction's EXEC answers in the new protocol.
  void protocol_changed(bool resp3);
  // The WATCH ends without a request on its connection (DISCARD, an aborted EXEC): the
  // connection is closed, which is how the server forgets it.
  void drop_watch();

  // A reply arrived on the dedicated connection of `server`: given back when nothing of this
  // client is in flight there and no WATCH pins it.
  void on_reply(uint32_t server);
  // redis_cluster pools: a blocking command answered -MOVED / -ASK (its slot moved while it
  // waited, or before the map knew) is sent again, on a dedicated connection to the node named
  // (ASK: after ASKING), at most 5 times in a row; a WATCH answered -MOVED moves, with its pin,
  // to the node named. True when it was; the reply is then dropped.
  bool follow_redirect(ReplySlot* slot, std::string_view reply);
  // The client went away: every connection held is closed, or given back when idle.
  void release_all();
  size_t held() const { return leases_.size(); }
  // Buffer memory of the held connections (memory stats).
  size_t buffer_bytes() const;
  // A request of the client is in flight on one of them (a blocked command, say).
  bool waiting() const;

 private:
  struct Lease {
    uint32_t server;      // server index; redis_cluster: node index
    int32_t db;           // the session's database when taken (-1: the pool's)
    bool resp3;           // it said HELLO 3 (the session's protocol when taken)
    bool pinned;          // a WATCH is in force on it
    uint64_t generation;  // the pool configuration it was made under (DedicatedIdle)
    std::unique_ptr<ServerConnection> conn;
  };
  Lease* watched();
  // The client's connection to `server` (cluster: node) in its database: held, idle or new;
  // null when the pool's max_dedicated_connections is reached (the error reply is queued).
  Lease* get(uint32_t server, bool answer_limit = true);
  // Where the keys of the request go (server index or cluster node), after the same-server
  // check (CROSSSLOT answered: -1); `place` receives the server index or the hash slot.
  int64_t keys_server(const protocol::resp::CommandInfo& cmd, const protocol::Request& req,
                      int64_t& place);
  // Sends `req` on `lease` as the next reply's request.
  // `redirectable`: redis_cluster pools keep the frame, to follow a MOVED (follow_redirect).
  void send(Lease& lease, const protocol::Request& req, bool blocking, bool redirectable);
  void give_back(size_t i);
  static void close_later(ClientSession& s, std::unique_ptr<ServerConnection> conn);

  ClientSession& s_;
  std::vector<Lease> leases_;
  int64_t watched_place_ = -1;  // see watched_place()
  ReplySlot ignored_slot_;      // the slot of a request whose reply is dropped (an UNWATCH)
};

}  // namespace dproxy::core
