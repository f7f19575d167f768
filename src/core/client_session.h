#pragma once
// One client connection: its read buffer, the parser, and the ordered queue of reply slots.

#include <asio.hpp>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/reply_slot.h"
#include "core/ring_queue.h"
#include "protocol/memcache/reply_parser.h"
#include "protocol/memcache/request_parser.h"
#include "protocol/request.h"

namespace dproxy::core {

class PoolRuntime;
class Worker;

// Lives on one worker thread. Reads client bytes, parses every complete frame in place,
// forwards frames (or split sub-frames) to backend connections, reserves a reply slot per
// request, and writes the ready prefix of the slot queue back in request order.
class ClientSession : public std::enable_shared_from_this<ClientSession> {
 public:
  ClientSession(Worker& worker, PoolRuntime& pool, asio::generic::stream_protocol::socket socket,
                uint64_t id);
  void start();

  // Backend side: the reply (or a SERVER_ERROR line when is_error and the backend failed) for
  // fragment `frag` of `slot`. `bytes` is only valid during the call.
  void on_backend_reply(ReplySlot* slot, uint16_t frag, std::string_view bytes, bool is_error);

 private:
  static constexpr size_t kInitialReadBuffer = 4096;
  static constexpr size_t kMaxPendingSlots = 4096;           // stop reading past this many
  static constexpr size_t kMaxBufferedReplyBytes = 8 << 20;  // or this many unsent reply bytes

  void start_read();
  void on_read(const asio::error_code& ec, size_t n);
  // Parses and dispatches every complete frame in the read buffer.
  void process();
  bool paused() const;
  void dispatch_memcache(const protocol::Request& req);
  void forward_memcache_multiget(const protocol::Request& req);
  void forward_memcache_broadcast(const protocol::Request& req);
  // Appends `frame` minus the noreply token (if any) to `out`.
  static void append_frame(std::string& out, const protocol::Request& req);

  ReplySlot* new_slot(ReplySlot::Kind kind);
  ReplySlot* ready_slot(std::string_view reply);
  void complete(ReplySlot* slot);
  void finish_multiget(ReplySlot* slot);
  void finish_broadcast(ReplySlot* slot);
  // Moves the ready prefix of the slot queue into the output buffer and starts a write.
  void drain();
  void start_write();
  void close();

  Worker& worker_;
  PoolRuntime& pool_;
  asio::generic::stream_protocol::socket socket_;
  uint64_t id_;
  protocol::memcache::RequestParser mc_parser_;
  protocol::Request req_;
  std::vector<char> rbuf_;
  size_t rstart_ = 0;
  size_t rend_ = 0;
  size_t discard_ = 0;  // bytes still to swallow (data block of a refused value)
  bool reading_ = false;
  bool writing_ = false;
  bool closed_ = false;      // socket closed; replies still arriving are dropped
  bool stop_input_ = false;  // quit or fatal parse error seen: parse nothing more
  bool resume_posted_ = false;
  bool close_after_write_ = false;  // close once the output buffer is written
  size_t need_ = 0;          // size of the incomplete frame at rstart_, when the parser knows it
  std::string out_;          // accumulating replies
  std::string writing_buf_;  // in flight
  RingQueue<ReplySlot*> slots_;
  std::vector<std::unique_ptr<ReplySlot>> slot_storage_;
  std::vector<ReplySlot*> free_slots_;
  std::vector<int32_t> frag_of_server_;  // scratch for splitting, -1 = unused
  std::vector<uint32_t> frag_servers_;   // scratch: fragment -> server index
  struct Peeked {
    protocol::memcache::ValueItem item;
    bool valid = false;
  };
  std::vector<protocol::memcache::ValueIterator> iters_;  // scratch for merging
  std::vector<Peeked> peeked_;
};

}  // namespace dproxy::core
