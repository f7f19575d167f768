#pragma once
// The memcached binary protocol front end, chosen when a connection's first byte is 0x80 (the
// connection then speaks binary for life). Each binary request is translated into one meta
// command (mg / ms / md / ma) or one classic command (flush_all, stats <group>) and executed by
// the session like an ASCII request (same routes, failover, ack modes, stats); the backend's
// reply is translated back into memcached's binary response as the slot leaves the queue
// (ReplyTranslator). Local answers: noop, version, quit, stat (dproxy's own figures), and SASL
// PLAIN authentication when the pool has credentials ("sasl").

#include <cstdint>
#include <string>
#include <string_view>

#include "core/config.h"
#include "core/ring_queue.h"
#include "core/session/front_end.h"
#include "core/session/reply_translator.h"
#include "protocol/memcache/binary.h"
#include "protocol/memcache/request_parser.h"

namespace dproxy::core {

class ClientSession;

class McBinaryFrontEnd final : public FrontEnd, public ReplyTranslator {
 public:
  McBinaryFrontEnd(ClientSession& session, const PoolConfig& config);

  protocol::ParseResult parse(std::string_view in, protocol::Request& req) override;
  ReplySlot* refuse(const protocol::ParseResult& r, const protocol::Request& req) override;
  void dispatch(const protocol::Request& req) override;
  bool is_read(const protocol::Request& req) const override;
  bool refusal_waits_for_reads() const override { return true; }  // a refused set deletes
  std::string_view request_too_large_reply() const override;
  void translate(const ReplySlot& slot, std::string* out) override;

 private:
  // A request whose reply is translated: its slot, opcode, opaque, and (getk / gatk) its key
  // in keys_.
  struct Pending {
    const ReplySlot* slot = nullptr;
    uint8_t opcode = 0;
    uint32_t opaque = 0;
    uint32_t key_at = 0;
    uint16_t key_len = 0;
  };
  // Hands `req` (frame in frame_) to the session's execution and notes its slot.
  void execute(const protocol::Request& req);
  // A classic command line (flush_all, stats <group>) parsed by the ASCII parser, executed.
  void execute_line();
  void expect_reply(const ReplySlot* slot);
  static constexpr size_t kCompactKeysAbove = 64 << 10;
  void compact_keys();
  // A binary response made here, in request order.
  ReplySlot* local_reply(uint16_t status, uint64_t cas, std::string_view value);
  void stats_reply();
  // SASL list mechs / auth / step: PLAIN against the pool's "sasl" credentials.
  void sasl();

  ClientSession& s_;
  size_t max_value_bytes_;
  bool auth_required_;  // the pool has SASL credentials
  bool authenticated_ = false;
  protocol::memcache::RequestParser ascii_;  // for the classic lines
  protocol::memcache::binary::Request bin_;  // the request parse() saw last
  protocol::Request fwd_;                    // what is executed
  std::string frame_;                        // scratch: the backend command
  std::string reply_scratch_;                // scratch: a local response
  RingQueue<Pending> pending_;
  std::string keys_;  // the keys getk / gatk echo, until their replies leave
};

}  // namespace dproxy::core
