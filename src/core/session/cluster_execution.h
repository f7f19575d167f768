#pragma once
// The execution of requests in redis_cluster pools: routing by hash slot, the split of
// multi-key commands by slot, and the MOVED / ASK / TRYAGAIN / CLUSTERDOWN / failed-node
// handling of every fragment until its reply is final (cluster_execution.cpp).

#include <cstdint>
#include <string>
#include <string_view>

#include "core/reply_slot.h"
#include "protocol/request.h"
#include "protocol/resp/command_table.h"

namespace dproxy::core {

class ClientSession;

class ClusterExecution {
 public:
  // MOVED / ASK hops in a row a request follows (then: a backoff retry here; elsewhere, the
  // client gets the redirection), and the command an ASK's target needs first.
  static constexpr uint8_t kMaxRedirects = 5;
  static constexpr std::string_view kAsking = "*1\r\n$6\r\nASKING\r\n";

  explicit ClusterExecution(ClientSession& s) : s_(s) {}

  // Routes `cmd` (its keys found by the session) to the master (or, for a read with
  // read_from replica/any, a replica) of its hash slot; splits MGET/MSET/DEL/... by slot.
  void dispatch(const protocol::resp::CommandInfo& cmd, const protocol::Request& req);
  // Re-sends fragment `frag` of `slot` after a TRYAGAIN / CLUSTERDOWN backoff.
  void retry(ReplySlot* slot, uint16_t frag);
  // An error reply for a fragment of a cluster request: follows MOVED / ASK, schedules a retry
  // for TRYAGAIN / CLUSTERDOWN / a failed connect, sends a failed replica read to the master.
  // True when the fragment was (or will be) re-sent; false when `bytes` is the final reply
  // (`bytes` may then be replaced by an error of dproxy's).
  bool intercept(ReplySlot* slot, uint16_t frag, std::string_view& bytes);
  // The "# dproxy" INFO lines of a cluster pool.
  void append_info(std::string& text);

 private:
  // Splits MGET/MSET/DEL/... by hash slot (Redis Cluster refuses keys of several slots).
  void split(const protocol::resp::CommandInfo& cmd, const protocol::Request& req, bool read);
  // Marks `slot` as a cluster request of `n` fragments and sizes its per-fragment state.
  void fragments(ReplySlot* slot, size_t n);
  // Sends fragment `frag` of `slot` (its kept frame) to cluster node `node`, after ASKING when
  // `asking`.
  void send(ReplySlot* slot, uint16_t frag, uint32_t node, bool asking);

  ClientSession& s_;
  std::string error_;  // scratch: an error reply made by intercept()
};

}  // namespace dproxy::core
