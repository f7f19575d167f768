#pragma once
// A client protocol's side of a session: one FrontEnd per protocol (memcached ASCII, Redis
// RESP2; meta, binary and RESP3 are meant to be added beside them).

#include <string_view>

#include "core/reply_slot.h"
#include "protocol/parse_result.h"
#include "protocol/request.h"

namespace dproxy::core {

// Owned by its ClientSession, on the session's thread. The session's process() loop asks the
// front end to parse each buffered frame, to answer a refused one, and to dispatch a complete
// one: local answers and the protocol's errors are the front end's; forwarding, splitting,
// replication and cluster retries are the session's (its execution per route kind).
class FrontEnd {
 public:
  virtual ~FrontEnd() = default;
  // Parses the first frame of `in` into `req` (the protocol parser's contract).
  virtual protocol::ParseResult parse(std::string_view in, protocol::Request& req) = 0;
  // A frame the parser refused with `r`: queues the protocol's answer (possibly an empty one:
  // memcached noreply) and returns its slot, which the session marks close_after when framing
  // is lost.
  virtual ReplySlot* refuse(const protocol::ParseResult& r, const protocol::Request& req) = 0;
  // A complete frame: answers it locally or hands it to the session's execution.
  virtual void dispatch(const protocol::Request& req) = 0;
  // True when `req` only reads (it may go ahead of replicated reads that can still fail over).
  virtual bool is_read(const protocol::Request& req) const = 0;
  // True when a refused frame must wait for such reads like a write (its answer may write).
  virtual bool refusal_waits_for_reads() const = 0;
  // The protocol's reply for a request larger than the session accepts (then it closes).
  virtual std::string_view request_too_large_reply() const = 0;
  // The client's socket closed: release what the client held.
  virtual void on_closed() {}
  // See ClientSession::check_subscriptions.
  virtual bool check_subscriptions() { return false; }
  // Buffer memory of backend connections the front end holds (Redis subscriber connections).
  virtual size_t backend_buffer_bytes() const { return 0; }
};

}  // namespace dproxy::core
