#pragma once
// One client request's place in the session's reply order.

#include <chrono>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/resp/command_table.h"

namespace dproxy::core {

class ClusterRuntime;

// NOTE: slots are recycled by their session (strings and vectors keep their capacity), so a
// steady-state request reuses the memory of an earlier one. A slot is owned by its session and
// outlives every backend reference to it because pending backend records hold the session.
// Copies `src` into `dst` (a slot's recycled buffer). When `dst` must grow it grows by half
// again, so that buffers whose contents vary in size (a fragment of a multi-get holds a varying
// number of keys) stop growing after a few requests instead of at every new maximum.
inline void copy_with_headroom(std::string& dst, std::string_view src) {
  if (dst.capacity() < src.size()) dst.reserve(src.size() + src.size() / 2);
  dst.assign(src);
}
template <typename T>
inline void copy_with_headroom(std::vector<T>& dst, std::span<const T> src) {
  if (dst.capacity() < src.size()) dst.reserve(src.size() + src.size() / 2);
  dst.assign(src.begin(), src.end());
}

struct ReplySlot {
  static constexpr uint16_t kNoCommand = 0xffff;
  static constexpr size_t kHeldReplyCapacity = 256;
  enum class Kind : uint8_t {
    kReady,      // `data` is the complete reply (local answers, parse errors)
    kForward,    // one backend fragment; its reply is the client's reply
    kMultiGet,   // memcached get split over servers; merged in key order
    kBroadcast,  // sent to every server; "OK" only when all say OK (flush_all)
    kRespMerge,  // Redis split or broadcast: the replies merged by `merge` (the command's
                 // column in the command table; kArrayInKeyOrder merges as they arrive)
    kAck,        // replicated write / fanout: one fragment per child, reply per ack mode
    kFailover,   // replicated read: one child at a time, the next one on failure (or miss)
    kSelect,     // Redis SELECT checked by a server (`child`: the database); input waits
  };
  Kind kind = Kind::kReady;
  protocol::resp::Merge merge = protocol::resp::Merge::kNone;  // kRespMerge: the merge unit
  bool noreply = false;      // drop the reply instead of sending it
  bool close_after = false;  // close the client connection once this reply is written
  bool done = false;         // `data` holds the final reply
  uint32_t outstanding = 0;  // backend fragments still expected
  size_t held = 0;           // reply bytes stored in this slot (counted against backpressure)
  bool orphaned = false;     // sent to the client while fragments are still expected (kAck)
  bool dedicated = false;    // kForward on a client's dedicated connection (`child`: server)
  bool quiet = false;        // a quiet meta request: each reply ends with the "MN" of the "mn"
                             // sent after it, dropped as the reply arrives
  std::string data;
  // kMultiGet / kBroadcast: per-fragment replies and whether each was an error.
  std::vector<std::string> frags;
  std::vector<uint8_t> frag_error;
  // kMultiGet / kArrayInKeyOrder merge: where each fragment's items are (memcache / resp scan_reply
  // marks).
  std::vector<std::vector<size_t>> frag_marks;
  // kMultiGet: copy of the requested keys (the request line from the first key to the end of the
  // last: keys separated by spaces) with each key's length and fragment, in order.
  // kArrayInKeyOrder merge: key_frag only.
  std::string keys;
  std::vector<uint32_t> key_len;
  std::vector<uint16_t> key_frag;
  // kAck: what each child answered (rank: 0 success, 1 negative, 2 error, 3 backend failure),
  // the acknowledgements needed, and the tallies so far.
  std::vector<uint8_t> frag_rank;
  // (A redis_cluster transaction without WATCH: acks_needed is its command count, and acks is
  // 1 + the node a queued command's MOVED named, 0 when none; see kQueuedFrag.)
  uint32_t acks_needed = 0;
  uint32_t acks = 0;
  uint32_t fails = 0;
  // kFailover: the request frame and routing key (copied: the read buffer moves on), the child
  // tried first and how many children were tried. kScanCursor merge: `child` is the server
  // position and `tried` the server count; kAnyKey merge: `child` is where to start looking.
  std::string frame;
  uint32_t child = 0;
  uint32_t tried = 0;
  bool failover_on_miss = false;
  uint8_t reply_kind = 0;  // memcache::ReplyKind for a re-sent memcached request
  // kFailover: counted in the session's pending reads until final (see ClientSession).
  bool read_pending = false;
  // kFailover per key (a multi-key get / MGET with failover_on_miss): `keys` holds the keys back
  // to back, key_len their lengths, `frame` the command name (memcached). frags[a] is the reply
  // of attempt a; key_frag[i] the attempt that answered key i (kNoAttempt: none yet) and
  // key_span[2i], key_span[2i + 1] where in that reply its answer is. `last_error`: the last
  // attempt failed (its reply is then the answer, as for a single key).
  static constexpr uint16_t kNoAttempt = 0xffff;
  bool per_key = false;
  bool last_error = false;
  uint16_t attempts = 0;
  std::vector<size_t> key_span;
  // Latency stats: the command id (kNoCommand: not measured) and when the request was read.
  uint16_t command = kNoCommand;
  std::chrono::steady_clock::time_point started{};
  // redis_cluster pools: each fragment's command bytes, kept until its reply is final so that a
  // MOVED / ASK / TRYAGAIN / CLUSTERDOWN can re-send it; its hash slot, the node it went to, and
  // how often it was redirected and retried. Vectors keep their capacity across requests.
  ClusterRuntime* cluster = nullptr;  // the runtime whose nodes frag_node names
  bool cluster_read = false;  // a read-only command: may go to a replica, then to the master
  std::vector<std::string> frag_frames;
  std::vector<uint16_t> frag_hslot;
  std::vector<uint32_t> frag_node;
  std::vector<uint8_t> frag_redirects;
  std::vector<uint8_t> frag_retries;

  // A fragment's reply is merged by where its items are (scan_reply marks): a memcached
  // multi-get, an MGET split, a per-key failover read.
  bool wants_marks() const {
    return kind == Kind::kMultiGet || merge == protocol::resp::Merge::kArrayInKeyOrder || per_key;
  }

  void reset() {
    kind = Kind::kReady;
    merge = protocol::resp::Merge::kNone;
    noreply = close_after = done = orphaned = dedicated = quiet = false;
    outstanding = 0;
    frag_rank.clear();
    acks_needed = acks = fails = 0;
    frame.clear();
    child = tried = 0;
    failover_on_miss = false;
    reply_kind = 0;
    read_pending = per_key = last_error = false;
    attempts = 0;
    held = 0;
    data.clear();
    for (auto& f : frags) f.clear();
    for (auto& m : frag_marks) m.clear();
    frag_error.clear();
    keys.clear();
    key_len.clear();
    key_frag.clear();
    if (cluster != nullptr) {
      cluster = nullptr;
      cluster_read = false;
      for (auto& f : frag_frames) f.clear();
      frag_hslot.clear();
      frag_node.clear();
      frag_redirects.clear();
      frag_retries.clear();
    }
  }
};

}  // namespace dproxy::core
