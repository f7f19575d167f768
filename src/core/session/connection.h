#pragma once
// The client side of a session with no protocol in it: the socket, the read buffer,
// backpressure, the ordered queue of reply slots, and writing replies back in order.

#include <asio.hpp>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/handler_memory.h"
#include "core/reply_slot.h"
#include "core/ring_queue.h"
#include "core/session/reply_translator.h"
#include "core/stats.h"

namespace dproxy::core {

class Worker;
struct PoolSlot;

// Lives on one worker thread. A front end derives from it (ClientSession today): the
// connection reads bytes into rbuf_ [rstart_, rend_) and calls process(), which parses and
// dispatches every complete frame there, reserving a reply slot per request (new_slot /
// ready_slot) in request order; drain() writes the ready prefix of the slot queue.
// Reading pauses while paused() (too many slots or reply bytes waiting, or input held by the
// front end) and resumes once replies are written.
// NOTE: a slot is owned by its connection and recycled after its reply leaves the queue (or,
// when orphaned, after its last fragment arrives).
class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  // Graceful shutdown: read nothing more, answer what was already read, then close.
  void begin_drain();
  // Adds this connection's buffers and reply slots to `m` (stats; worker thread).
  void add_memory(MemoryStats& m) const;

 protected:
  static constexpr size_t kInitialReadBuffer = 4096;
  static constexpr size_t kMaxPendingSlots = 4096;           // stop reading past this many
  static constexpr size_t kMaxBufferedReplyBytes = 8 << 20;  // or this many unsent reply bytes
  // After a burst, an empty read buffer above this size and free slots past kKeptSlots are
  // released, so a connection returns to its working size (the README's memory bounds).
  static constexpr size_t kShrinkReadBufferAbove = 64 << 10;
  static constexpr size_t kKeptSlots = 256;

  // `pool_slot` holds the counters of the connection's pool; one request may need at most
  // `max_request_bytes` of buffered input.
  Connection(Worker& worker, PoolSlot& pool_slot, asio::generic::stream_protocol::socket socket,
             uint64_t id, size_t max_request_bytes);
  virtual ~Connection();

  // The front end's part. process(): parse and dispatch the frames in [rstart_, rend_), advance
  // rstart_ (set need_ to the size of an incomplete frame when known), then call drain().
  virtual void process() = 0;
  // The protocol's reply for a request larger than max_request_bytes (the connection closes).
  virtual std::string_view request_too_large_reply() const = 0;

  // Starts reading (TCP_NODELAY set first on TCP sockets); on a TLS pool's listener, after the
  // TLS handshake (a failed or timed-out handshake closes the connection with one log line).
  void start_io();
  bool paused() const;
  void start_read();
  void on_read(const asio::error_code& ec, size_t n);

  // A new slot at the end of the reply queue, for the request being dispatched (cur_command_).
  ReplySlot* new_slot(ReplySlot::Kind kind);
  // A slot whose reply is `reply`, complete at once.
  ReplySlot* ready_slot(std::string_view reply);
  // The output buffer, borrowed from the worker's BufferPool when it has no memory of its own
  // (after each write it is given back, so idle connections hold none).
  std::string& out_buffer();
  // `buf` (a slot's reply, held back for ordering) made able to take `need` bytes without
  // growing: borrowed from the pool when too small; drain() gives it back.
  std::string& hold_buffer(std::string& buf, size_t need);
  // A reply leaves the slot queue: its latency goes to the pool's per-command histogram.
  void record_latency(const ReplySlot* slot);
  // Moves the ready prefix of the slot queue into the output buffer and starts a write.
  void drain();
  void start_write();
  void close();
  // Called once when the socket is closed (the front end releases what the client held).
  virtual void on_closed() {}
  // Input ended (the client's EOF, or a graceful shutdown): true to close at once instead of
  // answering what is in flight (a client blocked in BLPOP).
  virtual bool close_on_input_end() { return false; }
  // Reply bytes waiting for the client: in the output buffer and held in slots.
  size_t queued_reply_bytes() const { return out_.size() + writing_buf_.size() + held_bytes_; }
  // Frees the slots past kKeptSlots when every slot is free.
  void trim_slots();

  Worker& worker_;
  PoolSlot& slot_;  // outlives the connection (see Worker::slots_)
  asio::generic::stream_protocol::socket socket_;
  uint64_t id_;
  uint16_t cur_command_ = ReplySlot::kNoCommand;  // command of the request being dispatched
  std::vector<char> rbuf_;
  size_t rstart_ = 0;
  size_t rend_ = 0;
  size_t discard_ = 0;  // bytes still to swallow (data block of a refused value)
  size_t need_ = 0;     // size of the incomplete frame at rstart_, when the parser knows it
  bool reading_ = false;
  bool writing_ = false;
  bool closed_ = false;      // socket closed; replies still arriving are dropped
  bool stop_input_ = false;  // quit or fatal parse error seen: parse nothing more
  bool input_held_ = false;  // the front end leaves the rest of the input unparsed for now
  bool resume_posted_ = false;
  bool read_paused_ = false;        // start_read() declined because of backpressure
  bool close_after_write_ = false;  // close once the output buffer is written
  bool close_when_done_ = false;    // input ended: close once every reply is written
  size_t held_bytes_ = 0;           // reply bytes stored in slots not yet at the head of the queue
  size_t max_request_bytes_;        // one request may not need more buffered bytes than this
  std::string out_;                 // accumulating replies
  std::string writing_buf_;         // in flight
  RingQueue<ReplySlot*> slots_;
  std::vector<std::unique_ptr<ReplySlot>> slot_storage_;
  std::vector<ReplySlot*> free_slots_;
  // Memory of the one read (or wait for the first bytes) and the one write in flight.
  HandlerMemory read_memory_;
  HandlerMemory write_memory_;
  // Set by a front end that translates replies (memcached binary): drain() hands it every slot.
  ReplyTranslator* translator_ = nullptr;

 private:
  // TLS clients: the stream over socket_, the handshake's timer, its operations' memory. Null
  // for plaintext connections (whose path it leaves untouched but for one null check). The TLS
  // functions are in connection_tls.cpp.
  struct Tls;
  std::unique_ptr<Tls> tls_;
  void start_handshake();
  // The TLS counterparts of the socket read in start_read() and the write in start_write().
  void tls_read();
  void tls_write();
  // close() of a TLS connection: its count in tls_connections.
  void tls_closed();
  // "ip:port" of the client (or the listener's socket path), for log lines.
  std::string peer_name() const;
};

}  // namespace dproxy::core
