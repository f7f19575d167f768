#pragma once
// Merge units for Redis commands split (kMultiKeySplit) or broadcast (kBroadcast) over several
// servers: pure functions over the fragments' reply bytes (no sockets, no session), each
// appending the client's reply to `dst`. The command table's `merge` column names the unit a
// command uses; append_merged applies it. Unit-tested in tests/unit/protocol/resp_merge_test.cpp.
//
// Every unit passes the first failed fragment's reply on as the whole reply (as when a shard
// fails), and answers a fragment of an unexpected shape with a "-ERR dproxy: backend sent ...
// of the wrong shape" error rather than a malformed reply.

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "protocol/fragments.h"
#include "protocol/merge_scratch.h"
#include "protocol/resp/command_table.h"

namespace dproxy::protocol::resp {

// What some merges need besides the replies.
struct MergeContext {
  std::span<const uint16_t> key_frag;  // kArrayInKeyOrder: the fragment of each key, in order
  // kScanCursor: the position of the server that answered among `servers` (the reply is
  // fragment 0). kAnyKey: the fragment to look at first.
  uint32_t position = 0;
  uint32_t servers = 0;  // kScanCursor: how many servers the cursor walks
};

// Applies the merge unit `merge` names (kNone: the first reply as it is).
void append_merged(Merge merge, const Fragments& frags, const MergeContext& ctx,
                   MergeScratch& scratch, std::string& dst);

// MGET: "*<keys>" then each key's element from its fragment, in key order. Fast path when every
// fragment has scan marks (one per element): elements are copied by offset; else each fragment
// is read with an ArrayReader. A fragment with fewer elements than keys: a wrong-shape error.
void merge_array_in_key_order(const Fragments& frags, std::span<const uint16_t> key_frag,
                              MergeScratch& scratch, std::string& dst);
// "+OK" when every fragment says +OK, else the first reply that is not.
void merge_all_ok(const Fragments& frags, std::string& dst);
// The sum of the fragments' integer replies; a non-integer reply: an error.
void merge_sum(const Fragments& frags, std::string& dst);
// One array of every fragment's elements, in fragment order (a null array: an error).
void merge_concat(const Fragments& frags, std::string& dst);
// The first fragment's reply.
void merge_all_same(const Fragments& frags, std::string& dst);
// An array as long as the first fragment's: element i is :1 when element i of every fragment is
// :1, else :0.
void merge_and_array(const Fragments& frags, MergeScratch& scratch, std::string& dst);
// SCAN on the server at `position` of `servers`, its reply in fragment 0: "*2" then the client
// cursor = backend cursor * servers + position (backend cursor 0: the next server's start, or 0
// after the last server), then the keys array as the server sent it.
void merge_scan_cursor(const Fragments& frags, uint32_t position, uint32_t servers,
                       std::string& dst);
// The first non-nil reply looking from fragment `start` on (wrapping around), nil when all are
// (RESP2's "$-1" and RESP3's "_" are both nil; the nil sent is the first fragment's).
void merge_any_key(const Fragments& frags, uint32_t start, std::string& dst);
// The largest of the fragments' integer replies (a non-integer reply: an error).
void merge_max(const Fragments& frags, std::string& dst);
// Arrays of [name, count, name, count ...] with the same names in the same order (PUBSUB
// NUMSUB): the first fragment's names, each with its counts summed over the fragments.
void merge_pair_sum(const Fragments& frags, MergeScratch& scratch, std::string& dst);
// +OK when any fragment is +OK (the server that was running the script killed it), else the
// first fragment's reply (every server's NOTBUSY, say).
void merge_any_ok(const Fragments& frags, std::string& dst);

// A replicated read failed over per key (MGET): replies[a] is the reply of attempt a;
// key_attempt[i] the attempt that answered key i (kNoAttempt: none, a miss) and key_span[2i],
// key_span[2i + 1] where that key's element is in that reply. "*<keys>" then each answered
// key's element, or a nil for a miss (RESP3's "_" when `resp3`, else a nil bulk).
inline constexpr uint16_t kNoAttempt = 0xffff;
void merge_answered_keys(std::span<const std::string_view> replies,
                         std::span<const uint16_t> key_attempt, std::span<const size_t> key_span,
                         std::string& dst, bool resp3 = false);

}  // namespace dproxy::protocol::resp
