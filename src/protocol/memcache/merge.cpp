#include "protocol/memcache/merge.h"

#include <cstring>

#include "protocol/byte_scan.h"
#include "protocol/memcache/reply_parser.h"

namespace dproxy::protocol::memcache {

void merge_multiget(const Fragments& frags, const SplitKeys& keys, MergeScratch& scratch,
                    std::string& dst) {
  const size_t nfrags = frags.size();
  if (const size_t failed = frags.first_error(); failed < nfrags) {
    // One shard failed: the whole reply is that shard's error (documented in the README).
    dst.append(frags.replies[failed]);
    return;
  }
  // Each fragment's items, in its keys' order, are located by the marks its scan left: key
  // offset, key length, end of item. An item starts where the one before it ends (the first at
  // 0). The merged reply is at most every fragment plus "END\r\n": sized once, copied into.
  std::vector<size_t>& cursor = scratch.cursor;
  cursor.assign(nfrags, 0);
  size_t bound = 5;
  for (size_t f = 0; f < nfrags; ++f) bound += frags.replies[f].size();
  char* const out_start = MergeScratch::bytes(bound);
  char* o = out_start;
  const char* k = keys.line.data();
  const char* const keys_end = k + keys.line.size();
  for (size_t i = 0; i < keys.len.size(); ++i) {
    while (k < keys_end && *k == ' ') ++k;
    const size_t len = keys.len[i];
    const char* const key = k;
    k += len;
    const uint16_t f = keys.frag[i];
    const std::span<const size_t> m = frags.marks[f];
    const size_t c = cursor[f];
    if (c >= m.size() || m[c + 1] != len) continue;
    const char* const reply = frags.replies[f].data();
    if (!byte_scan::equal(reply + m[c], key, len)) continue;
    const size_t start = c == 0 ? 0 : m[c - 1];
    std::memcpy(o, reply + start, m[c + 2] - start);
    o += m[c + 2] - start;
    cursor[f] = c + kMarksPerItem;
  }
  std::memcpy(o, "END\r\n", 5);
  o += 5;
  dst.append(out_start, static_cast<size_t>(o - out_start));
}

void merge_all_same(const Fragments& frags, std::string_view all, std::string& dst) {
  for (size_t f = 0; f < frags.size(); ++f) {
    if (frags.errors[f] != 0 || frags.replies[f] != all) {
      dst.append(frags.replies[f]);
      return;
    }
  }
  dst.append(all);
}

void merge_stat_lines(const Fragments& frags, std::string& dst) {
  for (size_t f = 0; f < frags.size(); ++f) {
    if (frags.errors[f] != 0) {
      dst.append(frags.replies[f]);
      return;
    }
  }
  for (size_t f = 0; f < frags.size(); ++f) {
    std::string_view lines = frags.replies[f];
    if (lines.ends_with("END\r\n")) lines.remove_suffix(5);
    dst.append(lines);
  }
  dst.append("END\r\n");
}

void merge_answered_keys(std::span<const std::string_view> replies,
                         std::span<const uint16_t> key_attempt, std::span<const size_t> key_span,
                         std::string& dst) {
  for (size_t i = 0; i < key_attempt.size(); ++i) {
    const uint16_t a = key_attempt[i];
    if (a == kNoAttempt) continue;
    const size_t from = key_span[2 * i];
    dst.append(replies[a].substr(from, key_span[2 * i + 1] - from));
  }
  dst.append("END\r\n");
}

}  // namespace dproxy::protocol::memcache
