#pragma once
// The memcached ASCII front end: parsing, the commands dproxy answers itself (version,
// verbosity, stats, quit), refusals (silent for noreply; a set refused for its size deletes the
// old value), and the hand-off of everything else to the session's execution.

#include <string>
#include <string_view>

#include "core/config.h"
#include "core/session/front_end.h"
#include "protocol/memcache/request_parser.h"

namespace dproxy::core {

class ClientSession;

class McFrontEnd final : public FrontEnd {
 public:
  McFrontEnd(ClientSession& session, const PoolConfig& config, size_t max_line_bytes);

  protocol::ParseResult parse(std::string_view in, protocol::Request& req) override;
  ReplySlot* refuse(const protocol::ParseResult& r, const protocol::Request& req) override;
  void dispatch(const protocol::Request& req) override;
  bool is_read(const protocol::Request& req) const override;
  bool refusal_waits_for_reads() const override { return true; }  // a refused set deletes
  std::string_view request_too_large_reply() const override;

  // dproxy's "stats" lines + END into `slot` once every worker's figures are in (the binary
  // front end translates them).
  static void fill_stats(ClientSession& session, ReplySlot* slot);

 private:
  void dispatch_request(const protocol::Request& req);
  // A pool with credentials ("sasl"), before the client authenticated: memcached's ASCII
  // authentication (memcached -Y). Only a `set` whose data is "<user> <password>" is served
  // (STORED, even with noreply); anything else gets memcached's CLIENT_ERROR and reaches no
  // backend.
  void authenticate(const protocol::Request& req);
  [[gnu::cold]] ReplySlot* refuse_unauthenticated(const protocol::ParseResult& r,
                                                  const protocol::Request& req);
  // A storage request refused by the parser with `error`: a `set` refused for its size deletes
  // the key's old value (as memcached does), with a delete whose reply is dropped.
  void refused_store(std::string_view error, const protocol::Request& req);
  // dproxy's own figures, summed over every worker thread (the reply waits for them).
  void stats_reply();
  // Logs (once, naming the peer) why the connection is closed without an answer.
  void log_close(const char* why);

  ClientSession& s_;
  protocol::memcache::RequestParser parser_;
  protocol::Request delete_req_;  // the delete that follows a refused too-large set
  std::string delete_scratch_;    // and its frame
  bool started_ = false;          // the connection's first bytes have been looked at
  bool authenticated_;            // no credentials in the pool, or the client gave them
  bool close_logged_ = false;     // parse() closed the connection and logged why
};

}  // namespace dproxy::core
