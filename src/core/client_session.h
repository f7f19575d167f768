#pragma once
// One client connection: its read buffer, the parser, and the ordered queue of reply slots.

#include <asio.hpp>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/handler_memory.h"
#include "core/reply_sink.h"
#include "core/reply_slot.h"
#include "core/ring_queue.h"
#include "core/session/cluster_execution.h"
#include "core/session/connection.h"
#include "core/session/dedicated.h"
#include "core/session/front_end.h"
#include "core/session/routed_execution.h"
#include "core/session/sharded_execution.h"
#include "protocol/memcache/reply_parser.h"
#include "protocol/memcache/request_parser.h"
#include "protocol/merge_scratch.h"
#include "protocol/request.h"
#include "protocol/resp/command_table.h"
#include "protocol/resp/reply_parser.h"
#include "protocol/resp/request_parser.h"
#include "routing/route.h"

namespace dproxy::core {

class ClusterRuntime;
class PoolRuntime;
class ServerConnection;

class Worker;
struct PoolClients;
struct PoolSlot;

// Lives on one worker thread. Reads client bytes, parses every complete frame in place,
// forwards frames (or split sub-frames) to backend connections, reserves a reply slot per
// request, and writes the ready prefix of the slot queue back in request order.
class ClientSession final : public Connection, public ReplySink {
 public:
  // `pool` is the id of the session's pool on `worker`; `clients` counts the pool's open
  // connections over every thread.
  ClientSession(Worker& worker, size_t pool, PoolClients& clients,
                asio::generic::stream_protocol::socket socket, uint64_t id);
  ~ClientSession() override;
  void start();
  // A dedicated backend connection (blocking, WATCH, pub/sub) taken / given back: counted
  // against the pool's max_dedicated_connections and in the stats.
  void dedicated_taken();
  void dedicated_returned();
  // Shutdown: closes the socket and releases what the session holds (worker stopped).
  void close_now() { close(); }
  // Redis pub/sub: false once the client has no subscriber connection left, or when the pool's
  // placement of channels moved under its subscriptions (a reload changed the servers, or a
  // server was ejected or came back): the client is then closed, so that its library
  // reconnects and subscribes again where the channels now live. See Worker::watch_subscriber.
  bool check_subscriptions() { return front_ && front_->check_subscriptions(); }
  std::shared_ptr<ClientSession> shared_from_this() {
    return std::static_pointer_cast<ClientSession>(Connection::shared_from_this());
  }

  // Backend side: the reply (or a SERVER_ERROR line when is_error and the backend failed) for
  // fragment `frag` of `slot`. `bytes` is only valid during the call.
  // `marks`: where a multi-get fragment's items are (scan_reply marks), when its scan noted them.
  void on_backend_reply(ReplySlot* slot, uint16_t frag, std::string_view bytes, bool is_error,
                        std::span<const size_t> marks = {}) override;
  // redis_cluster pools: re-sends fragment `frag` of `slot` after a TRYAGAIN / CLUSTERDOWN
  // backoff (called by the worker's ClusterRuntime).
  void cluster_retry(ReplySlot* slot, uint16_t frag) override;
  // The fragment number of a pending record whose reply is dropped (the ASKING before an ASK
  // re-send).
  static constexpr uint16_t kIgnoredFrag = UINT16_MAX;
  // redis_cluster pools, a transaction without WATCH (RedisTransaction::send_block): the
  // replies to MULTI and the queued commands (a MOVED among them is noted), and EXEC's reply
  // (EXECABORT after a noted MOVED: the transaction is sent again to the node it named).
  static constexpr uint16_t kQueuedFrag = UINT16_MAX - 1;
  static constexpr uint16_t kExecFrag = UINT16_MAX - 2;

  // Connection's memory, plus the buffers of the backend connections this client holds
  // (dedicated and subscriber connections).
  void add_memory(MemoryStats& m) const {
    Connection::add_memory(m);
    m.backend_buffer_bytes += dedicated_.buffer_bytes();
    if (front_) m.backend_buffer_bytes += front_->backend_buffer_bytes();
  }

 private:
  friend class McFrontEnd;
  friend class RedisFrontEnd;
  friend class RedisTransaction;
  friend class DedicatedConnections;
  friend class RedisPubSub;
  friend class McBinaryFrontEnd;
  friend class ClusterExecution;
  friend class RoutedExecution;
  friend class ShardedExecution;

  // The pool's current runtime (config reload replaces it between requests).
  PoolRuntime& pool() const;

  // Parses and dispatches every complete frame in the read buffer.
  void process() override;
  void on_closed() override;
  bool close_on_input_end() override { return dedicated_.waiting(); }
  // memcached: the connection's first byte chooses its protocol for life (0x80: binary).
  void choose_front_end();
  std::string_view request_too_large_reply() const override;
  // The execution of a request a front end handed over, chosen by the pool's kind: memcached
  // (broadcast, replicated/fanout routes, sharded) and Redis (broadcast, redis_cluster,
  // replicated/fanout routes, sharded).
  void execute_memcache(const protocol::Request& req);
  void execute_redis(const protocol::resp::CommandInfo& cmd, const protocol::Request& req);
  // A request split into nfrags parts: one reply expected per part, each stored until merged.
  void expect_fragments(ReplySlot* slot, size_t nfrags);
  // The same for a Redis multi-key split (sharded or redis_cluster): the replies are merged by
  // `merge` (the command's column in the command table).
  void expect_resp_fragments(ReplySlot* slot, protocol::resp::Merge merge, size_t nfrags);

  // Redis (client_session_redis.cpp).
  void redis_no_key_error(const protocol::resp::CommandInfo& cmd);
  // A same-server command whose keys map to several servers (sharded pools).
  [[gnu::cold]] void crossslot_error(const protocol::resp::CommandInfo& cmd);
  // To any one server (redis_cluster: any master): its answer is the reply.
  void redis_forward_any(const protocol::Request& req);
  void redis_error(std::string_view message);  // "-<message>\r\n" as the next reply
  // A reply with frag kQueuedFrag or kExecFrag (see there): true when it was consumed (noted,
  // or the transaction sent again); false for EXEC's final reply.
  bool cluster_transaction_reply(ReplySlot* slot, uint16_t frag, std::string_view bytes);
  // Appends the transaction block kept in slot->frame to `conn`, with its reply records.
  static void send_transaction(const std::shared_ptr<ClientSession>& self, ServerConnection& conn,
                               ReplySlot* slot);
  // SELECT n (n is not the pool's database): a server checks n (SELECT n, then the pool's
  // database again, on a shared connection); input waits for its answer, then the session's
  // requests go to the connections of database n.
  void select_db(int32_t db);
  void on_select_reply(ReplySlot* slot, std::string_view bytes, bool is_error);
  // Held input is processed again (outside this call stack) once nothing holds it.
  void resume_input();

  // Split replies merged in key order (memcached get, Redis MGET): the last fragment's reply
  // completes the slot; the merged reply is appended to `dst`, from frag_views_.
  void on_merge_reply(ReplySlot* slot, uint16_t frag, std::string_view bytes, bool is_error,
                      std::span<const size_t> marks);
  // Every fragment of `slot` (kBroadcast, kRespMerge) has its reply in slot->frags: merged into
  // slot->data by the slot's merge unit (protocol/memcache/merge.h, protocol/resp/merge.h).
  void finish_collected(ReplySlot* slot);
  // The reply of a request sent on a dedicated connection (then maybe given back).
  void on_dedicated_reply(ReplySlot* slot, std::string_view bytes);

  size_t pool_id_;
  PoolClients& clients_;  // outlives the worker threads (and so every session)
  const bool redis_;
  std::unique_ptr<FrontEnd> front_;        // the client protocol's side (session/*_front_end.*)
  DedicatedConnections dedicated_{*this};  // Redis: the client's own backend connections
  ClusterExecution cluster_{*this};        // redis_cluster pools' execution
  RoutedExecution routed_{*this};          // replicated and fanout pools' execution
  ShardedExecution sharded_{*this};        // sharded pools' execution, broadcasts
  bool front_chosen_ = false;              // the first byte has chosen the front end
  std::vector<uint32_t> key_idx_;          // scratch: key argument indices of a request
  protocol::Request req_;
  std::vector<uint32_t> frag_servers_;        // scratch: fragment -> server (or hash slot)
  std::vector<std::string_view> frag_views_;  // scratch: the fragments being merged
  std::vector<std::span<const size_t>> frag_mark_views_;  // scratch: and their scan marks
  protocol::MergeScratch merge_scratch_;                  // scratch of the merge units
  uint64_t read_turn_ = 0;                                // replicated read: round_robin counter
  // Replicated reads of this session whose reply is not final (they may still fail over to
  // another child); input_held_ (Connection) is set until there are none (a write was parsed).
  uint32_t reads_pending_ = 0;
  bool select_pending_ = false;  // a SELECT's check is in flight (input_held_ is set)
  int32_t db_ = -1;              // Redis: the database SELECTed, -1 = the pool's own
  bool resp3_ = false;           // Redis: the client said HELLO 3 (its backends speak RESP3)
  std::vector<std::string_view> args_scratch_;
  std::string inline_scratch_;
};

}  // namespace dproxy::core
