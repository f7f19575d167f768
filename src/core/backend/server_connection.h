#pragma once
// One pipelined connection from a worker thread to one backend server.

#include <asio.hpp>
#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/backend/server_health.h"
#include "core/config.h"
#include "core/handler_memory.h"
#include "core/reply_sink.h"
#include "core/reply_slot.h"
#include "core/ring_queue.h"
#include "core/stats.h"
#include "core/tls_context.h"
#include "protocol/memcache/command.h"
#include "protocol/memcache/reply_parser.h"
#include "protocol/resp/reply_parser.h"

namespace dproxy::core {

class Worker;
struct PoolSlot;

// A request written (or about to be written) to the backend, waiting for its reply.
struct Pending {
  std::shared_ptr<ReplySink> session;  // keeps the slot alive
  ReplySlot* slot = nullptr;
  uint16_t frag = 0;
  protocol::memcache::ReplyKind kind = protocol::memcache::ReplyKind::kLine;
  bool abandoned = false;  // timed out: its late reply is read and discarded
  uint32_t bytes = 0;      // request bytes (stats: out_queue_bytes)
  std::chrono::steady_clock::time_point deadline;
};

// Lives on one worker thread; never touched from another. Requests are appended to the outgoing
// buffer with out() + push(), sent by flush() (once per batch), and their replies are matched
// FIFO. On a connection failure every pending request fails with a SERVER_ERROR naming the
// backend; the next request reconnects (after a short backoff while the server keeps failing).
class ServerConnection {
 public:
  // `setup` is sent first on every new connection (Redis AUTH / SELECT), `setup_replies` is how
  // many replies it produces; an error reply to it fails the connection.
  // Failures and successes are reported to `health` (server `index` of its pool), unless it is
  // null (Redis Cluster nodes: the cluster does its own failover).
  // `slot` (the worker's view of the pool; outlives the connection): the TLS contexts each
  // connection attempt of a server_tls pool takes, and the TLS counters.
  ServerConnection(Worker& worker, asio::generic::stream_protocol::endpoint endpoint,
                   std::string address, const PoolConfig& config, PoolHealth* health,
                   uint32_t index, std::string setup = {}, uint32_t setup_replies = 0,
                   PoolSlot* slot = nullptr);
  ~ServerConnection();
  ServerConnection(const ServerConnection&) = delete;
  ServerConnection& operator=(const ServerConnection&) = delete;

  // Outgoing bytes not yet handed to the socket. Append the request frame, then call push().
  std::string& out() { return out_; }
  // Registers the reply expected for the bytes just appended, and schedules a flush at the end
  // of the current batch. `blocking`: a command that waits by design (BLPOP ...): the pool's
  // timeout does not apply to it.
  void push(std::shared_ptr<ReplySink> session, ReplySlot* slot, uint16_t frag,
            protocol::memcache::ReplyKind kind, bool blocking = false);
  // Subscriber mode (Redis pub/sub): every frame read goes to `sink` as on_push(id, ...), none
  // is matched to a request; a failure calls on_push_lost. Null: back to normal (unused).
  void set_push_sink(PushSink* sink, uint32_t id) {
    push_sink_ = sink;
    push_id_ = id;
  }
  // Subscriber mode: schedules sending what out() holds (no reply is registered).
  void send_unmatched() {
    if (!dirty_) {
      dirty_ = true;
      mark_dirty();
    }
  }
  // Sends what out() holds (connecting first if needed). Called by the worker once per batch.
  void flush();
  // Connects now if not connected (nutcracker's preconnect); failures are handled as usual.
  void preconnect();

  const std::string& address() const { return address_; }
  size_t pending() const { return pending_.size(); }
  // The last connection attempt failed moments ago: a request pushed now fails at once.
  bool failing() const {
    return state_ == State::kDisconnected && std::chrono::steady_clock::now() < retry_after_;
  }
  // Requests in flight, or bytes not yet written.
  bool busy() const { return !pending_.empty() || dirty_ || writing_ || !out_.empty(); }
  // Adds this connection's figures to `s` (worker thread).
  void add_stats(ServerStats& s) const;
  // Capacity of the connection's buffers (memory stats).
  size_t buffer_bytes() const;

 private:
  static constexpr size_t kReadChunk = 16 * 1024;
  // A buffer that grew past this during a burst is given back once it is empty again, so a
  // connection returns to its working size after a burst (issue 24: memory after faults).
  static constexpr size_t kShrinkAbove = 256 * 1024;

  enum class State : uint8_t { kDisconnected, kConnecting, kConnected };

  void start_connect();
  // TCP is up: the TLS handshake (server_tls pools), then on_connected().
  void start_handshake(uint64_t gen);
  void on_connected();
  // Closes the current socket (and TLS stream): pending operations end with operation_aborted.
  void close_socket();
  void start_write();
  void write_buffer();  // writes writing_buf_, then whatever out_ gathered meanwhile
  void start_read();
  // After a write: the next one, or the failure. After a failed read: reconnect or fail_all.
  void on_written(const asio::error_code& err);
  void on_read_failed(const asio::error_code& err);
  // The TLS counterparts of the socket write and read (server_connection_tls.cpp).
  void tls_write_buffer();
  void tls_start_read();
  void on_read(size_t n);
  // What on_read does after one frame: the next one, wait for more bytes, or stop (failed).
  enum class Step : uint8_t { kNext, kMore, kStop };
  // A reply to the connection setup (AUTH, SELECT, INFO server).
  Step read_setup_reply();
  // Fails the connection: a setup reply (`reply`, an error or unexpected line) refused it.
  [[gnu::cold]] Step fail_setup(std::string_view reply);
  // A frame on a subscriber connection.
  Step read_push();
  // A RESP3 push on any other connection (none is expected: dproxy subscribes on subscriber
  // connections only): read and dropped, so it cannot shift the replies.
  Step skip_push();
  // One whole RESP frame at the read position, taken off the buffer: kNext with `frame` set,
  // kMore, or kStop (malformed: the connection failed).
  Step take_frame(std::string_view& frame);
  void arm_timer();
  void on_timer();
  // Fails every pending request with "SERVER_ERROR backend <addr> <why>" and closes the socket.
  // `failure`: counts as one failure of the server (for ejection).
  void fail_all(std::string_view why, bool failure = true);
  void deliver_error(Pending& p, std::string_view why);
  void mark_dirty();
  // Records the redis_version of an INFO server reply in the pool's health.
  void note_version(std::string_view info);

  Worker& worker_;
  asio::generic::stream_protocol::endpoint endpoint_;
  std::string address_;
  std::chrono::milliseconds timeout_;
  std::chrono::milliseconds connect_timeout_;
  PoolHealth* health_;
  uint32_t index_;
  asio::generic::stream_protocol::socket socket_;
  // server_tls pools: the TLS stream of the current connection, owning its socket (socket_ is
  // then unused). Shared with its pending operations, which keep it alive.
  std::shared_ptr<BackendTlsStream> tls_;
  bool tls_wanted_ = false;
  bool tls_counted_ = false;  // counted in server_tls_connections
  std::string host_;          // the server's host (the certificate's name to check)
  PoolSlot* pool_slot_;
  asio::steady_timer timer_;
  asio::steady_timer connect_timer_;
  State state_ = State::kDisconnected;
  bool writing_ = false;
  uint64_t gen_ = 0;  // bumped per connection attempt; stale callbacks compare and return
  bool timer_armed_ = false;
  bool dirty_ = false;
  static constexpr size_t kInitialWriteBuffer = 16 << 10;
  static constexpr size_t kInitialPending = 256;  // requests in flight before pending_ grows
  std::string out_;                               // accumulating
  std::string writing_buf_;                       // in flight
  std::vector<char> in_;
  size_t in_start_ = 0;
  size_t in_end_ = 0;
  RingQueue<Pending> pending_;
  size_t abandoned_ = 0;
  std::string error_scratch_;
  bool redis_;
  bool keepalive_;
  std::string setup_;
  uint32_t setup_replies_;
  uint32_t setup_pending_ = 0;     // setup replies still expected on this connection
  bool setup_info_ = false;        // the last setup command is INFO server (never fails it)
  PushSink* push_sink_ = nullptr;  // subscriber mode (see set_push_sink)
  uint32_t push_id_ = 0;
  protocol::resp::ReplyScanState scan_state_;
  protocol::memcache::ReplyScanState mc_scan_state_;  // the same for memcached replies
  std::vector<size_t> marks_;  // scan_reply marks of the multi-get fragment being read
  std::chrono::steady_clock::time_point retry_after_{};
  std::chrono::milliseconds backoff_{0};
  std::string last_error_;
  ServerCounters counters_;
  size_t unsent_ = 0;        // pending requests whose bytes are still in out_
  size_t out_mark_ = 0;      // out_.size() when the last request was pushed
  uint64_t sent_bytes_ = 0;  // bytes of written requests still waiting for their reply
  // Guards callbacks that outlive the connection (sockets are closed in the destructor), and
  // holds the memory of its read, write and timer operations, which may outlive it too.
  struct Shared {
    bool alive = true;
    HandlerMemory read;
    HandlerMemory write;
    HandlerMemory timer;
    // TLS operations are larger (made on the first TLS connection).
    std::unique_ptr<TlsHandlerMemory> tls_read;
    std::unique_ptr<TlsHandlerMemory> tls_write;
  };
  std::shared_ptr<Shared> shared_ = std::make_shared<Shared>();
  std::shared_ptr<bool> alive_{shared_, &shared_->alive};
  // read_hint bookkeeping (as in ClientSession), for the current socket.
  bool read_queued_ = false;
  bool read_tainted_ = false;
  bool write_waits_ = false;

  friend class Worker;
};

}  // namespace dproxy::core
