#pragma once
// The execution of requests in replicated and fanout pools (both protocols): writes to the key's
// server in every child under an ack mode, reads from one child with failover to the next
// (per key for multi-key reads with failover_on_miss). See routed_execution.cpp.

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "core/reply_slot.h"
#include "protocol/request.h"
#include "protocol/resp/command_table.h"
#include "routing/route.h"

namespace dproxy::core {

class ClientSession;

class RoutedExecution {
 public:
  explicit RoutedExecution(ClientSession& s) : s_(s) {}

  void dispatch_memcache(const protocol::Request& req);
  void dispatch_redis(const protocol::resp::CommandInfo& cmd, const protocol::Request& req);
  // Backend replies of the two slot kinds this execution makes.
  void on_ack_reply(ReplySlot* slot, uint16_t frag, std::string_view bytes, bool is_error);
  void on_failover_reply(ReplySlot* slot, std::string_view bytes, bool is_error,
                         std::span<const size_t> marks);

 private:
  // True when, in every child, all `keys` map to one server (else queues an error reply).
  bool keys_together_per_child(std::span<const std::string_view> keys);
  // Sends `frame` to the key's server in every child; the reply follows `mode`.
  void send_to_children(std::string_view frame, std::string_view noreply_cut, std::string_view key,
                        routing::AckMode mode, bool noreply, uint8_t reply_kind);
  // Sends `frame` to one child, failing over to the next ones. `keys`: every key of the request
  // (the first routes it); with `per_key` (a multi-key get / MGET) and failover_on_miss, only
  // the keys a child misses go to the next child, and the answers are merged in key order.
  void send_with_failover(std::string_view frame, std::span<const std::string_view> keys,
                          bool per_key, uint8_t reply_kind);
  void failover_next(ReplySlot* slot);
  // A per-key failover read: the request for the keys still missing, as sent to a child.
  void append_missing_keys(std::string& out, const ReplySlot* slot) const;
  // A per-key failover read's reply from one child: notes the keys it answered. 1: every key
  // is answered; 0: some are missing; -1: the reply is not of the expected shape (slot->data
  // then holds the error that is the final reply).
  int note_per_key_reply(ReplySlot* slot, std::string_view bytes, std::span<const size_t> marks);
  // The merged reply of a per-key failover read, into slot->data.
  void finish_per_key(ReplySlot* slot);
  // A replicated read's reply is final: it goes to the client, and once no read of this session
  // can fail over any more, held input is processed again.
  void failover_final(ReplySlot* slot);
  // Success 0, negative answer (not stored, not found, nil) 1, server error 2, backend failed 3.
  uint8_t reply_rank(std::string_view bytes, bool is_error) const;

  ClientSession& s_;
  std::string frame_;  // scratch: a quiet meta request and its "mn"
};

}  // namespace dproxy::core
