// RoutedExecution: requests of replicated and fanout pools (both protocols).
//
// Write path (replicated writes, every fanout request): the request goes to the key's server in
// every child; the reply is decided by the ack mode (write_ack / reply):
//   all       wait for every child; the worst reply wins
//   majority  the reply that completes a majority of acknowledgements, or the worst reply once
//             a majority can no longer be reached
//   one/first the first acknowledgement, or the worst reply when every child failed
// An acknowledgement is any reply that is not an error. Ranking, best to worst: success (0),
// negative answer such as NOT_STORED / NOT_FOUND / EXISTS / nil (1), error reply from the
// server (2), the backend failed: timeout, connection, down (3). Ties go to the first child.
//
// Read path (replicated reads): one child (read: first | round_robin | hash), then the next on
// an error, a timeout, a down server, and also on a miss with failover_on_miss. A multi-key get
// or MGET with failover_on_miss asks the next child for the missing keys only (per_key slots)
// and merges the answers in key order.
//
// Ordering: until every replicated read of the session is final (s_.reads_pending_), process()
// leaves the session's next request that is not a read, and everything after it, unparsed in the
// read buffer (input_held_), so a read that fails over never sees a write sent after it.

#include "core/session/routed_execution.h"

#include "core/backend/pool_runtime.h"
#include "core/backend/server_connection.h"
#include "core/client_session.h"
#include "protocol/byte_scan.h"
#include "protocol/memcache/command.h"
#include "protocol/memcache/merge.h"
#include "protocol/resp/merge.h"
#include "protocol/resp/reply_writer.h"

namespace dproxy::core {

namespace mc = protocol::memcache;
namespace resp = protocol::resp;
using protocol::Request;

namespace {

constexpr uint8_t kNoReply = 255;
static_assert(ReplySlot::kNoAttempt == mc::kNoAttempt && ReplySlot::kNoAttempt == resp::kNoAttempt);

uint32_t acks_needed(routing::AckMode mode, uint32_t n) {
  switch (mode) {
    case routing::AckMode::kAll:
      return n;
    case routing::AckMode::kMajority:
      return n / 2 + 1;
    case routing::AckMode::kOne:
      return 1;
  }
  return n;
}

// Appends `frame` without the bytes of `cut` (a memcached noreply token inside it), if any.
void append_without(std::string& out, std::string_view frame, std::string_view cut) {
  if (cut.empty()) {
    out.append(frame);
    return;
  }
  size_t at = static_cast<size_t>(cut.data() - frame.data());
  out.append(frame.substr(0, at));
  out.append(frame.substr(at + cut.size()));
}

}  // namespace

uint8_t RoutedExecution::reply_rank(std::string_view bytes, bool is_error) const {
  if (s_.redis_) {
    if (is_error) return bytes.starts_with("-ERR dproxy: backend ") ? 3 : 2;
    if (bytes == "$-1\r\n" || bytes == "*-1\r\n" || bytes == "_\r\n") return 1;
    return 0;
  }
  if (is_error) return bytes.starts_with("SERVER_ERROR backend ") ? 3 : 2;
  if (bytes == "NOT_STORED\r\n" || bytes == "EXISTS\r\n" || bytes == "NOT_FOUND\r\n") return 1;
  // The meta replies of binary clients' requests: not stored, exists, not found.
  if (bytes.starts_with("NS") || bytes.starts_with("EX") || bytes.starts_with("NF")) return 1;
  return 0;
}

bool RoutedExecution::keys_together_per_child(std::span<const std::string_view> keys) {
  for (size_t c = 0; c < s_.pool().child_count(); ++c) {
    uint32_t first = s_.pool().child_server(c, keys[0]);
    for (size_t i = 1; i < keys.size(); ++i) {
      if (s_.pool().child_server(c, keys[i]) == first) continue;
      ReplySlot* slot =
          s_.ready_slot(s_.redis_ ? "-CROSSSLOT dproxy: the keys of this request map to "
                                    "different servers of child "
                                  : "CLIENT_ERROR the keys of this request map to "
                                    "different servers of child ");
      slot->data.append(std::to_string(c));
      slot->data.append(
          " of this replicated/fanout pool; keep them together with a hash tag, e.g. {user1}.a "
          "and {user1}.b\r\n");
      return false;
    }
  }
  return true;
}

void RoutedExecution::send_to_children(std::string_view frame, std::string_view noreply_cut,
                                       std::string_view key, routing::AckMode mode, bool noreply,
                                       uint8_t reply_kind) {
  const auto n = static_cast<uint32_t>(s_.pool().child_count());
  ReplySlot* slot = s_.new_slot(ReplySlot::Kind::kAck);
  slot->noreply = noreply;
  slot->quiet = !s_.redis_ && reply_kind == static_cast<uint8_t>(mc::ReplyKind::kMetaQuiet);
  slot->outstanding = n;
  slot->acks_needed = acks_needed(mode, n);
  if (slot->frags.size() < n) slot->frags.resize(n);
  slot->frag_rank.assign(n, kNoReply);
  s_.frag_servers_.clear();  // the children whose server is down
  auto self = s_.shared_from_this();
  for (uint32_t c = 0; c < n; ++c) {
    uint32_t server = s_.pool().child_server(c, key);
    if (s_.pool().is_down(server)) {
      s_.frag_servers_.push_back(c);
      continue;
    }
    ServerConnection& conn = s_.pool().connection(server, s_.id_, s_.db_, s_.resp3_);
    append_without(conn.out(), frame, noreply_cut);
    conn.push(self, slot, static_cast<uint16_t>(c), static_cast<mc::ReplyKind>(reply_kind));
  }
  // NOTE: answered last, so the slot's fragment count is complete when a decision is made.
  for (uint32_t c : s_.frag_servers_)
    on_ack_reply(slot, static_cast<uint16_t>(c),
                 s_.pool().down_error(s_.pool().child_server(c, key)), true);
}

void RoutedExecution::on_ack_reply(ReplySlot* slot, uint16_t frag, std::string_view bytes,
                                   bool is_error) {
  const uint8_t rank = reply_rank(bytes, is_error);
  const auto n = static_cast<uint32_t>(slot->frag_rank.size());
  --slot->outstanding;
  if (!slot->done) {
    copy_with_headroom(slot->frags[frag], bytes);
    slot->held += bytes.size();
    s_.held_bytes_ += bytes.size();
    slot->frag_rank[frag] = rank;
    if (rank <= 1) {
      ++slot->acks;
    } else {
      ++slot->fails;
    }
    int decided = -1;  // the fragment whose reply the client gets
    const bool all = slot->acks_needed == n;
    if (!all && slot->acks >= slot->acks_needed) {
      decided = frag;
    } else if ((all && slot->outstanding == 0) || (!all && slot->fails > n - slot->acks_needed)) {
      // The worst reply so far (ties: the first child).
      for (uint32_t c = 0; c < n; ++c) {
        if (slot->frag_rank[c] == kNoReply) continue;
        if (decided < 0 || slot->frag_rank[c] > slot->frag_rank[decided])
          decided = static_cast<int>(c);
      }
    }
    if (decided >= 0) {
      slot->data.assign(slot->frags[decided]);
      slot->done = true;
      s_.drain();
      return;
    }
  }
  if (slot->orphaned && slot->outstanding == 0) s_.free_slots_.push_back(slot);
}

void RoutedExecution::send_with_failover(std::string_view frame,
                                         std::span<const std::string_view> keys, bool per_key,
                                         uint8_t reply_kind) {
  const routing::ReplicatedRoute* route = s_.pool().replicated();
  const std::string_view key = keys.empty() ? std::string_view() : keys[0];
  ReplySlot* slot = s_.new_slot(ReplySlot::Kind::kFailover);
  slot->quiet = !s_.redis_ && reply_kind == static_cast<uint8_t>(mc::ReplyKind::kMetaQuiet);
  slot->child = route->first_read_child(key, s_.read_turn_++);
  slot->failover_on_miss = route->failover_on_miss();
  slot->reply_kind = reply_kind;
  slot->outstanding = 1;
  // (A one-key MGET too: its miss is a nil element, not a nil reply.)
  if (per_key && (keys.size() > 1 || s_.redis_) && slot->failover_on_miss) {
    slot->per_key = true;
    // memcached: the command name as sent (get / gets); Redis: always MGET.
    slot->frame.assign(frame.substr(0, frame.find(' ')));
    for (std::string_view k : keys) {
      slot->keys.append(k);
      slot->key_len.push_back(static_cast<uint32_t>(k.size()));
    }
    slot->key_frag.assign(keys.size(), ReplySlot::kNoAttempt);
    slot->key_span.resize(2 * keys.size());
  } else {
    slot->frame.assign(frame);
    slot->keys.assign(key);
  }
  if (s_.pool().child_count() > 1) {
    // It may fail over: later writes of this session wait until its reply is final.
    slot->read_pending = true;
    ++s_.reads_pending_;
  }
  failover_next(slot);
}

void RoutedExecution::append_missing_keys(std::string& out, const ReplySlot* slot) const {
  size_t missing = 0;
  for (uint16_t a : slot->key_frag) missing += a == ReplySlot::kNoAttempt ? 1 : 0;
  if (s_.redis_) {
    resp::append_array_header(out, missing + 1);
    resp::append_bulk(out, "MGET");
  } else {
    out.append(slot->frame);
  }
  size_t at = 0;
  for (size_t i = 0; i < slot->key_len.size(); ++i) {
    const std::string_view k(slot->keys.data() + at, slot->key_len[i]);
    at += k.size();
    if (slot->key_frag[i] != ReplySlot::kNoAttempt) continue;
    if (s_.redis_) {
      resp::append_bulk(out, k);
    } else {
      out.push_back(' ');
      out.append(k);
    }
  }
  if (!s_.redis_) out.append("\r\n");
}

void RoutedExecution::failover_next(ReplySlot* slot) {
  const auto n = static_cast<uint32_t>(s_.pool().child_count());
  const std::string_view key =
      slot->per_key ? std::string_view(slot->keys.data(), slot->key_len[0]) : slot->keys;
  uint32_t down = 0;
  while (slot->tried < n) {
    uint32_t c = (slot->child + slot->tried) % n;
    ++slot->tried;
    uint32_t server = s_.pool().child_server(c, key);
    if (s_.pool().is_down(server)) {
      down = server;
      continue;
    }
    ServerConnection& conn = s_.pool().connection(server, s_.id_, s_.db_, s_.resp3_);
    if (slot->per_key) {
      append_missing_keys(conn.out(), slot);
    } else {
      conn.out().append(slot->frame);
    }
    conn.push(s_.shared_from_this(), slot, 0, static_cast<mc::ReplyKind>(slot->reply_kind));
    return;
  }
  // Every child left is down: their error, unless a per-key read already has answers (its
  // misses then stand, as a single key's miss does).
  slot->outstanding = 0;
  if (slot->per_key && slot->attempts > 0 && !slot->last_error) {
    finish_per_key(slot);
  } else {
    slot->data.assign(s_.pool().down_error(down));
  }
  failover_final(slot);
}

void RoutedExecution::failover_final(ReplySlot* slot) {
  slot->done = true;
  if (slot->read_pending) {
    slot->read_pending = false;
    if (--s_.reads_pending_ == 0) s_.resume_input();  // held input: a write and what follows it
  }
  s_.drain();
}

int RoutedExecution::note_per_key_reply(ReplySlot* slot, std::string_view bytes,
                                        std::span<const size_t> marks) {
  const uint16_t a = slot->attempts;
  // Redis: an MGET reply is "*<n>\r\n" then one element per key asked, each ending at its mark;
  // a nil element is a miss. memcached: the hits, in the order asked, each a VALUE item whose
  // key and end the marks give; a key with no item is a miss.
  size_t cursor = 0;  // Redis: where the next element starts; memcached: the next item's marks
  if (s_.redis_) {
    int64_t count = 0;
    size_t asked = 0;
    for (uint16_t f : slot->key_frag) asked += f == ReplySlot::kNoAttempt ? 1 : 0;
    if (bytes.size() < 2 || bytes[0] != '*' ||
        resp::detail::read_integer_line(bytes, 1, count, cursor) != resp::detail::LineStatus::kOk ||
        count < 0 || static_cast<size_t>(count) != asked || marks.size() != asked) {
      slot->data.assign("-ERR dproxy: backend sent an MGET reply of the wrong shape\r\n");
      return -1;
    }
  }
  copy_with_headroom(slot->frags[a], bytes);
  slot->held += bytes.size();
  s_.held_bytes_ += bytes.size();
  bool all = true;
  size_t at = 0;
  size_t element = 0;
  for (size_t i = 0; i < slot->key_len.size(); ++i) {
    const size_t len = slot->key_len[i];
    const char* const key = slot->keys.data() + at;
    at += len;
    if (slot->key_frag[i] != ReplySlot::kNoAttempt) continue;
    bool hit = false;
    size_t from = 0;
    size_t to = 0;
    if (s_.redis_) {
      from = cursor;
      to = marks[element++];
      cursor = to;
      const std::string_view item = bytes.substr(from, to - from);
      hit = item != "$-1\r\n" && item != "_\r\n";  // RESP2's or RESP3's nil
    } else if (cursor < marks.size() && marks[cursor + 1] == len &&
               protocol::byte_scan::equal(bytes.data() + marks[cursor], key, len)) {
      from = cursor == 0 ? 0 : marks[cursor - 1];
      to = marks[cursor + 2];
      cursor += mc::kMarksPerItem;
      hit = true;
    }
    if (hit) {
      slot->key_frag[i] = a;
      slot->key_span[2 * i] = from;
      slot->key_span[2 * i + 1] = to;
    } else {
      all = false;
    }
  }
  ++slot->attempts;
  return all ? 1 : 0;
}

void RoutedExecution::finish_per_key(ReplySlot* slot) {
  size_t bound = 5;  // "END\r\n"
  for (uint16_t a = 0; a < slot->attempts; ++a) bound += slot->frags[a].size();
  bound += 16 + 5 * slot->key_len.size();  // Redis: the header and a nil per key
  std::string& dst = s_.hold_buffer(slot->data, bound);
  dst.clear();
  s_.frag_views_.resize(slot->attempts);
  for (uint16_t a = 0; a < slot->attempts; ++a) s_.frag_views_[a] = slot->frags[a];
  if (s_.redis_) {
    resp::merge_answered_keys(s_.frag_views_, slot->key_frag, slot->key_span, dst, s_.resp3_);
  } else {
    mc::merge_answered_keys(s_.frag_views_, slot->key_frag, slot->key_span, dst);
  }
  slot->held += dst.size();
  s_.held_bytes_ += dst.size();
}

void RoutedExecution::on_failover_reply(ReplySlot* slot, std::string_view bytes, bool is_error,
                                        std::span<const size_t> marks) {
  // EN: a meta miss; nothing at all: a quiet mg's miss; _: a RESP3 null.
  const bool miss = s_.redis_ ? (bytes == "$-1\r\n" || bytes == "*-1\r\n" || bytes == "_\r\n")
                              : (bytes == "END\r\n" || bytes == "EN\r\n" ||
                                 (slot->quiet && bytes.empty() && !is_error));
  bool again = is_error || (slot->failover_on_miss && miss);
  if (slot->per_key) {
    slot->last_error = is_error;
    if (!is_error) {
      if (slot->frags.size() <= slot->attempts) slot->frags.resize(slot->attempts + 1u);
      const int noted = note_per_key_reply(slot, bytes, marks);
      again = noted == 0;
      if (noted < 0) {
        // A reply of the wrong shape: it is final (note_per_key_reply put it in slot->data).
        slot->outstanding = 0;
        slot->held += slot->data.size();
        s_.held_bytes_ += slot->data.size();
        failover_final(slot);
        return;
      }
    }
  }
  if (again && slot->tried < s_.pool().child_count()) {
    // Try the next child; a down one is skipped. If none is left, the reply below stands.
    const auto n = static_cast<uint32_t>(s_.pool().child_count());
    const std::string_view key =
        slot->per_key ? std::string_view(slot->keys.data(), slot->key_len[0]) : slot->keys;
    while (slot->tried < n) {
      uint32_t c = (slot->child + slot->tried) % n;
      uint32_t server = s_.pool().child_server(c, key);
      if (s_.pool().is_down(server)) {
        ++slot->tried;
        continue;
      }
      failover_next(slot);
      return;
    }
  }
  slot->outstanding = 0;
  if (slot->per_key && !is_error) {
    finish_per_key(slot);
  } else {
    slot->data.assign(bytes);
    slot->held += bytes.size();
    s_.held_bytes_ += bytes.size();
  }
  failover_final(slot);
}

void RoutedExecution::dispatch_memcache(const Request& req) {
  auto cmd = static_cast<mc::Command>(req.command);
  // Meta requests that compare a cas value (ms / md / ma with C) are refused as `cas` is.
  if (cmd == mc::Command::kCas || req.has(protocol::kFlagCompareCas)) {
    s_.ready_slot(
          "CLIENT_ERROR cas is not supported in a replicated or fanout pool (cas values differ "
          "between servers)\r\n")
        ->noreply = req.has(protocol::kFlagNoreply);
    return;
  }
  if (req.keys.size() > 1 && !keys_together_per_child(req.keys)) return;
  uint8_t kind = static_cast<uint8_t>(req.has(protocol::kFlagMeta) ? mc::ReplyKind::kMeta
                                                                   : mc::reply_kind(cmd));
  std::string_view frame = req.frame;
  const bool quiet = req.has(protocol::kFlagQuiet);
  if (quiet) {
    // As in ShardedExecution::dispatch_memcache: an "mn" after the request, its "MN" dropped from
    // every reply.
    frame_.assign(frame);
    frame_.append("mn\r\n");
    frame = frame_;
    kind = static_cast<uint8_t>(mc::ReplyKind::kMetaQuiet);
  }
  const bool noreply = req.has(protocol::kFlagNoreply);
  if (const routing::FanoutRoute* fanout = s_.pool().fanout()) {
    send_to_children(frame, req.noreply_token, req.keys[0], fanout->reply(), noreply, kind);
    return;
  }
  // Reads fail over: get / gets, and the meta reads (mg without T or N, me).
  if (cmd == mc::Command::kGet || cmd == mc::Command::kGets ||
      (req.has(protocol::kFlagRead) &&
       (cmd == mc::Command::kMetaGet || cmd == mc::Command::kMetaDebug))) {
    send_with_failover(frame, req.keys, true, kind);
    return;
  }
  send_to_children(frame, req.noreply_token, req.keys[0], s_.pool().replicated()->write_ack(),
                   noreply, kind);
}

void RoutedExecution::dispatch_redis(const resp::CommandInfo& cmd, const Request& req) {
  s_.args_scratch_.clear();
  for (uint32_t i : s_.key_idx_) s_.args_scratch_.push_back(req.args[i]);
  if (s_.args_scratch_.size() > 1 && !keys_together_per_child(s_.args_scratch_)) return;
  std::string_view key = s_.args_scratch_.empty() ? std::string_view() : s_.args_scratch_[0];
  std::string_view frame = req.frame;
  if (frame.empty() || frame[0] != '*') {
    // An inline command: send the multibulk form.
    s_.inline_scratch_.clear();
    resp::append_command(s_.inline_scratch_, req.args);
    frame = s_.inline_scratch_;
  }
  if (const routing::FanoutRoute* fanout = s_.pool().fanout()) {
    send_to_children(frame, {}, key, fanout->reply(), false, 0);
    return;
  }
  const bool write = cmd.has(resp::kCmdWrite);
  // EVAL / EVALSHA / FCALL may write, but the command table cannot say what a script does.
  const bool script = cmd.in_category(resp::kAclScripting) && !cmd.has(resp::kCmdReadonly);
  if (script) {
    ReplySlot* slot = s_.ready_slot("-ERR dproxy: ");
    for (char c : cmd.name) slot->data.push_back(c >= 'a' && c <= 'z' ? char(c - 'a' + 'A') : c);
    slot->data.append(
        " is not supported in a replicated pool (its writes would reach one replica only; "
        "read-only scripts can use EVAL_RO / EVALSHA_RO / FCALL_RO)\r\n");
    return;
  }
  if (write) {
    send_to_children(frame, {}, key, s_.pool().replicated()->write_ack(), false, 0);
  } else {
    send_with_failover(frame, s_.args_scratch_, cmd.merge == resp::Merge::kArrayInKeyOrder, 0);
  }
}

}  // namespace dproxy::core
