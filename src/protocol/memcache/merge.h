#pragma once
// Merge units for memcached ASCII requests split or broadcast over several servers: pure
// functions over the fragments' reply bytes (no sockets, no session), each appending the
// client's reply to `dst`. Unit-tested in tests/unit/protocol/memcache_merge_test.cpp.

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "protocol/fragments.h"
#include "protocol/merge_scratch.h"

namespace dproxy::protocol::memcache {

// The keys of a split get, in request order.
struct SplitKeys {
  // The request line from the first key to the end of the last: keys separated by spaces.
  std::string_view line;
  std::span<const uint32_t> len;   // len[i]: the length of key i
  std::span<const uint16_t> frag;  // frag[i]: the fragment key i went to
};

// get / gets / gat / gats split over servers: every hit's VALUE item, in the order the keys were
// asked, then "END". Each fragment is a complete retrieval reply with its scan marks (memcached
// answers hits in request order, so a fragment's items are found in key order); a key without
// an item in its fragment is a miss. A failed fragment: its reply is the whole reply.
// NOTE: the marks are required (memcache::scan_reply marks of every fragment).
void merge_multiget(const Fragments& frags, const SplitKeys& keys, MergeScratch& scratch,
                    std::string& dst);

// A command sent to every server whose success reply is `all` (flush_all and stats detail: "OK",
// stats reset: "RESET"): `all` when every server said it, else the first reply that is not (an
// error, or any other answer).
void merge_all_same(const Fragments& frags, std::string_view all, std::string& dst);
// stats <group> sent to every server: every server's STAT lines in server order, then one "END";
// a failed fragment: its reply is the whole reply.
void merge_stat_lines(const Fragments& frags, std::string& dst);

// A replicated read failed over per key (a multi-key get): replies[a] is the reply of attempt a;
// key_attempt[i] the attempt that answered key i (kNoAttempt: none did, a miss) and
// key_span[2i], key_span[2i + 1] where that key's VALUE item is in that reply. The items of the
// answered keys in key order, then "END".
inline constexpr uint16_t kNoAttempt = 0xffff;
void merge_answered_keys(std::span<const std::string_view> replies,
                         std::span<const uint16_t> key_attempt, std::span<const size_t> key_span,
                         std::string& dst);

}  // namespace dproxy::protocol::memcache
