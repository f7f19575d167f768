#include "protocol/resp/merge.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "protocol/resp/reply_parser.h"
#include "protocol/resp/reply_writer.h"

namespace dproxy::protocol::resp {

namespace {

// SCAN cursors: a backend cursor (up to 64 bits) times the server count plus the position.
__extension__ typedef unsigned __int128 U128;

constexpr std::string_view kNil = "$-1\r\n";
constexpr std::string_view kNull3 = "_\r\n";  // RESP3's null

// The first failed fragment's reply, if any, becomes the whole reply: true then.
bool append_first_error(const Fragments& frags, std::string& dst) {
  const size_t failed = frags.first_error();
  if (failed == frags.size()) return false;
  dst.append(frags.replies[failed]);
  return true;
}

}  // namespace

void append_merged(Merge merge, const Fragments& frags, const MergeContext& ctx,
                   MergeScratch& scratch, std::string& dst) {
  switch (merge) {
    case Merge::kNone:
      if (frags.size() > 0) dst.append(frags.replies[0]);
      return;
    case Merge::kArrayInKeyOrder:
      merge_array_in_key_order(frags, ctx.key_frag, scratch, dst);
      return;
    case Merge::kAllOk:
      merge_all_ok(frags, dst);
      return;
    case Merge::kSum:
      merge_sum(frags, dst);
      return;
    case Merge::kConcat:
      merge_concat(frags, dst);
      return;
    case Merge::kAllSame:
      merge_all_same(frags, dst);
      return;
    case Merge::kAndArray:
      merge_and_array(frags, scratch, dst);
      return;
    case Merge::kScanCursor:
      merge_scan_cursor(frags, ctx.position, ctx.servers, dst);
      return;
    case Merge::kAnyKey:
      merge_any_key(frags, ctx.position, dst);
      return;
    case Merge::kMax:
      merge_max(frags, dst);
      return;
    case Merge::kPairSum:
      merge_pair_sum(frags, scratch, dst);
      return;
    case Merge::kAnyOk:
      merge_any_ok(frags, dst);
      return;
  }
}

void merge_array_in_key_order(const Fragments& frags, std::span<const uint16_t> key_frag,
                              MergeScratch& scratch, std::string& dst) {
  if (append_first_error(frags, dst)) return;
  const size_t nfrags = frags.size();
  const size_t start = dst.size();
  append_array_header(dst, key_frag.size());
  // Fast path: each fragment is "*<n>\r\n" then n elements whose ends its scan marked (no
  // nested arrays), so element j of a fragment is [end of j - 1 (or of the header), end of j).
  std::vector<size_t>& cursor = scratch.cursor;
  cursor.resize(nfrags);
  bool marked = frags.marks.size() == nfrags;
  for (size_t f = 0; f < nfrags && marked; ++f) {
    const std::string_view v = frags.replies[f];
    int64_t n = 0;
    size_t next = 0;
    marked = v.size() > 1 && v[0] == '*' &&
             detail::read_integer_line(v, 1, n, next) == detail::LineStatus::kOk && n >= 0 &&
             static_cast<uint64_t>(n) == frags.marks[f].size();
    cursor[f] = next;
  }
  if (marked) {
    // cursor[f]: where the fragment's next element starts; taken[f]: elements taken. The
    // elements fit in the fragments' sizes: the output is sized once and copied into.
    std::vector<uint32_t>& counts = scratch.count;
    counts.assign(nfrags, 0);
    size_t bound = 0;
    for (size_t f = 0; f < nfrags; ++f) bound += frags.replies[f].size();
    char* const out_start = MergeScratch::bytes(bound);
    char* o = out_start;
    for (uint16_t f : key_frag) {
      const std::span<const size_t> m = frags.marks[f];
      uint32_t& taken = counts[f];
      if (taken == m.size()) {
        dst.resize(start);
        dst.append("-ERR dproxy: backend sent an MGET reply of the wrong shape\r\n");
        return;
      }
      const size_t from = cursor[f];
      std::memcpy(o, frags.replies[f].data() + from, m[taken] - from);
      o += m[taken] - from;
      cursor[f] = m[taken];
      ++taken;
    }
    dst.append(out_start, static_cast<size_t>(o - out_start));
    return;
  }
  std::vector<ArrayReader>& readers = scratch.readers;
  readers.clear();
  for (size_t f = 0; f < nfrags; ++f) readers.emplace_back(frags.replies[f]);
  std::string_view element;
  for (uint16_t f : key_frag) {
    if (!readers[f].next(element)) {
      dst.resize(start);
      dst.append("-ERR dproxy: backend sent an MGET reply of the wrong shape\r\n");
      return;
    }
    dst.append(element);
  }
}

void merge_all_ok(const Fragments& frags, std::string& dst) {
  if (append_first_error(frags, dst)) return;
  for (std::string_view reply : frags.replies) {
    if (reply != "+OK\r\n" && !reply.empty()) {
      dst.append(reply);
      return;
    }
  }
  dst.append("+OK\r\n");
}

void merge_sum(const Fragments& frags, std::string& dst) {
  if (append_first_error(frags, dst)) return;
  int64_t total = 0;
  for (std::string_view reply : frags.replies) {
    int64_t n = 0;
    if (!parse_integer_reply(reply, n)) {
      dst.append("-ERR dproxy: backend sent a non-integer reply to a counting command\r\n");
      return;
    }
    total += n;
  }
  append_integer(dst, total);
}

void merge_max(const Fragments& frags, std::string& dst) {
  if (append_first_error(frags, dst)) return;
  int64_t best = 0;
  for (std::string_view reply : frags.replies) {
    int64_t n = 0;
    if (!parse_integer_reply(reply, n)) {
      dst.append("-ERR dproxy: backend sent a non-integer reply to a counting command\r\n");
      return;
    }
    best = std::max(best, n);
  }
  append_integer(dst, best);
}

void merge_pair_sum(const Fragments& frags, MergeScratch& scratch, std::string& dst) {
  if (append_first_error(frags, dst)) return;
  constexpr std::string_view kWrongShape =
      "-ERR dproxy: backend sent a PUBSUB NUMSUB reply of the wrong shape\r\n";
  if (frags.size() == 0) {
    dst.append(kWrongShape);
    return;
  }
  const size_t n = frags.size();
  std::vector<ArrayReader>& readers = scratch.readers;
  readers.clear();
  for (std::string_view reply : frags.replies) {
    readers.emplace_back(reply);
    if (!readers.back().ok() || readers.back().size() != readers[0].size() ||
        readers.back().size() % 2 != 0) {
      dst.append(kWrongShape);
      return;
    }
  }
  const size_t start = dst.size();
  append_array_header(dst, static_cast<size_t>(readers[0].size()));
  std::string_view name, count;
  for (int64_t i = 0; i < readers[0].size(); i += 2) {
    int64_t total = 0;
    std::string_view first_name;
    for (size_t f = 0; f < n; ++f) {
      int64_t c = 0;
      if (!readers[f].next(name) || !readers[f].next(count) || !parse_integer_reply(count, c) ||
          (f > 0 && name != first_name)) {
        dst.resize(start);
        dst.append(kWrongShape);
        return;
      }
      if (f == 0) first_name = name;
      total += c;
    }
    dst.append(first_name);
    append_integer(dst, total);
  }
}

void merge_any_ok(const Fragments& frags, std::string& dst) {
  for (std::string_view reply : frags.replies) {
    if (reply == "+OK\r\n") {
      dst.append(reply);
      return;
    }
  }
  if (frags.size() > 0) dst.append(frags.replies[0]);
}

void merge_concat(const Fragments& frags, std::string& dst) {
  if (append_first_error(frags, dst)) return;
  int64_t total = 0;
  for (std::string_view reply : frags.replies) {
    ArrayReader reader(reply);
    if (!reader.ok() || reader.size() < 0) {
      dst.append("-ERR dproxy: backend sent a KEYS reply of the wrong shape\r\n");
      return;
    }
    total += reader.size();
  }
  append_array_header(dst, static_cast<size_t>(total));
  std::string_view element;
  for (std::string_view reply : frags.replies) {
    ArrayReader reader(reply);
    while (reader.next(element)) dst.append(element);
  }
}

void merge_all_same(const Fragments& frags, std::string& dst) {
  if (append_first_error(frags, dst)) return;
  if (frags.size() > 0) dst.append(frags.replies[0]);
}

void merge_and_array(const Fragments& frags, MergeScratch& scratch, std::string& dst) {
  if (append_first_error(frags, dst)) return;
  if (frags.size() == 0) return;
  std::vector<ArrayReader>& readers = scratch.readers;
  readers.clear();
  for (std::string_view reply : frags.replies) readers.emplace_back(reply);
  const int64_t count = readers[0].size();
  append_array_header(dst, static_cast<size_t>(count < 0 ? 0 : count));
  std::string_view element;
  for (int64_t i = 0; i < count; ++i) {
    bool all = true;
    for (auto& reader : readers) {
      if (!reader.next(element) || element != ":1\r\n") all = false;
    }
    append_integer(dst, all ? 1 : 0);
  }
}

void merge_scan_cursor(const Fragments& frags, uint32_t position, uint32_t servers,
                       std::string& dst) {
  if (append_first_error(frags, dst)) return;
  constexpr std::string_view kWrongShape =
      "-ERR dproxy: backend sent a SCAN reply of the wrong shape\r\n";
  if (frags.size() == 0) {
    dst.append(kWrongShape);
    return;
  }
  ArrayReader reader(frags.replies[0]);
  std::string_view cursor_bulk, keys;
  int64_t len = 0;
  if (!reader.next(cursor_bulk) || !reader.next(keys) || cursor_bulk.size() < 4 ||
      cursor_bulk[0] != '$') {
    dst.append(kWrongShape);
    return;
  }
  const size_t line_end = cursor_bulk.find("\r\n");
  if (!parse_int64(cursor_bulk.substr(1, line_end - 1), len) || len < 0) {
    dst.append(kWrongShape);
    return;
  }
  uint64_t next = 0;
  for (char c : cursor_bulk.substr(line_end + 2, static_cast<size_t>(len)))
    next = next * 10 + static_cast<uint64_t>(c - '0');
  U128 out = 0;
  if (next != 0) {
    out = static_cast<U128>(next) * servers + position;
  } else if (position + 1 < servers) {
    out = position + 1;  // this server is done: the next one, from its start
  }
  char digits[48];
  size_t d = sizeof digits;
  do {
    digits[--d] = static_cast<char>('0' + static_cast<unsigned>(out % 10));
    out /= 10;
  } while (out != 0);
  append_array_header(dst, 2);
  append_bulk(dst, std::string_view(digits + d, sizeof digits - d));
  dst.append(keys);
}

void merge_any_key(const Fragments& frags, uint32_t start, std::string& dst) {
  if (append_first_error(frags, dst)) return;
  // nil only when every server is empty, as Redis answers for an empty database (RESP2's or
  // RESP3's nil, as the servers sent it).
  const size_t n = frags.size();
  for (size_t i = 0; i < n; ++i) {
    const std::string_view reply = frags.replies[(start + i) % n];
    if (reply != kNil && reply != kNull3) {
      dst.append(reply);
      return;
    }
  }
  dst.append(n > 0 ? frags.replies[0] : kNil);
}

void merge_answered_keys(std::span<const std::string_view> replies,
                         std::span<const uint16_t> key_attempt, std::span<const size_t> key_span,
                         std::string& dst, bool resp3) {
  append_array_header(dst, key_attempt.size());
  for (size_t i = 0; i < key_attempt.size(); ++i) {
    const uint16_t a = key_attempt[i];
    if (a == kNoAttempt) {
      append_null(dst, resp3);
      continue;
    }
    const size_t from = key_span[2 * i];
    dst.append(replies[a].substr(from, key_span[2 * i + 1] - from));
  }
}

}  // namespace dproxy::protocol::resp
