#include "core/client_session.h"

#include <cstring>

#include "core/backend/pool_runtime.h"
#include "core/backend/server_health.h"
#include "core/log.h"
#include "core/read_hint.h"
#include "core/session/memcache_front_end.h"
#include "core/session/redis_front_end.h"
#include "core/stats.h"
#include "core/worker.h"
#include "protocol/byte_scan.h"
#include "protocol/memcache/reply_parser.h"

namespace dproxy::core {

using protocol::ParseStatus;
using protocol::Request;

namespace {
constexpr size_t kMaxLineBytes = 2 * 1024 * 1024;
}  // namespace

char* merge_scratch(size_t n) {
  thread_local std::unique_ptr<char[]> buf;
  thread_local size_t cap = 0;
  if (cap < n) {
    cap = std::max(n, cap * 2);
    buf.reset(new char[cap]);
  }
  return buf.get();
}

ClientSession::ClientSession(Worker& worker, size_t pool_id, PoolClients& clients,
                             asio::generic::stream_protocol::socket socket, uint64_t id)
    : Connection(
          worker, worker.slot(pool_id), std::move(socket), id,
          worker.slot(pool_id).runtime->config().max_value_bytes + kMaxLineBytes + (1 << 20)),
      pool_id_(pool_id),
      clients_(clients),
      redis_(pool().config().protocol == Protocol::kRedis) {
  if (redis_) {
    front_ = std::make_unique<RedisFrontEnd>(*this, pool().config());
  } else {
    front_ = std::make_unique<McFrontEnd>(*this, pool().config(), kMaxLineBytes);
  }
  ++slot_.counters.client_connections;
  ++slot_.counters.total_client_connections;
}

ClientSession::~ClientSession() {
  --slot_.counters.client_connections;
  clients_.count.fetch_sub(1);
}

PoolRuntime& ClientSession::pool() const {
  return *slot_.runtime;
}

void ClientSession::start() {
  worker_.add_session(id_, shared_from_this(), pool_id_);
  start_io();
}

std::string_view ClientSession::request_too_large_reply() const {
  return front_->request_too_large_reply();
}

void ClientSession::process() {
  while (!stop_input_ && !closed_) {
    if (discard_ > 0) {
      size_t n = std::min(discard_, rend_ - rstart_);
      rstart_ += n;
      discard_ -= n;
      if (discard_ > 0) break;
    }
    if (rstart_ == rend_ || paused()) break;
    std::string_view in(rbuf_.data() + rstart_, rend_ - rstart_);
    protocol::ParseResult r = front_->parse(in, req_);
    if (r.status == ParseStatus::kNeedMore) {
      need_ = r.size_hint;
      break;
    }
    need_ = 0;
    if (reads_pending_ > 0 && (r.status == ParseStatus::kOk || front_->refusal_waits_for_reads()) &&
        !front_->is_read(req_)) {
      // A replicated read of this session may still fail over: this request (and all after it)
      // stays in the buffer until that read is final (client_session_routes.cpp). A refused
      // request waits too when its answer may write (memcached).
      input_held_ = true;
      break;
    }
    ++slot_.counters.requests;
    cur_command_ = ReplySlot::kNoCommand;
    if (r.status == ParseStatus::kError) {
      ReplySlot* slot = front_->refuse(r, req_);
      rstart_ += std::min(r.consumed, in.size());
      discard_ = r.skip;
      if (r.close) {
        ++slot_.counters.client_err;
        slot->close_after = true;
        stop_input_ = true;
      }
      continue;
    }
    front_->dispatch(req_);
    rstart_ += r.consumed;
  }
  drain();
}

void ClientSession::append_frame(std::string& out, const Request& req) {
  if (req.noreply_token.empty()) {
    out.append(req.frame);
    return;
  }
  // Forward without "noreply" so the backend always answers and replies stay matched.
  size_t cut = static_cast<size_t>(req.noreply_token.data() - req.frame.data());
  out.append(req.frame.substr(0, cut));
  out.append(req.frame.substr(cut + req.noreply_token.size()));
}

void ClientSession::execute_memcache(const Request& req) {
  namespace mc = protocol::memcache;
  auto cmd = static_cast<mc::Command>(req.command);
  if (req.has(protocol::kFlagBroadcast)) {  // flush_all, stats <group> / reset / detail
    forward_memcache_broadcast(req);
    return;
  }
  if (pool().route_kind() != routing::Route::Kind::kShard) {
    dispatch_memcache_routed(req);
    return;
  }
  if (req.has(protocol::kFlagMultiKey) && req.keys.size() > 1) {
    forward_memcache_multiget(req);
    return;
  }
  uint32_t server = pool().server_for(req.keys[0]);
  if (pool().is_down(server)) {
    ready_slot(pool().down_error(server))->noreply = req.has(protocol::kFlagNoreply);
    return;
  }
  ServerConnection& conn = pool().connection(server, id_);
  ReplySlot* slot = new_slot(ReplySlot::Kind::kForward);
  slot->outstanding = 1;
  slot->noreply = req.has(protocol::kFlagNoreply);
  append_frame(conn.out(), req);
  conn.push(shared_from_this(), slot, 0, mc::reply_kind(cmd));
}

void ClientSession::forward_memcache_multiget(const Request& req) {
  namespace mc = protocol::memcache;
  PoolRuntime& pool_rt = pool();
  frag_of_server_.assign(pool_rt.server_count(), -1);
  frag_servers_.clear();
  ReplySlot* slot = new_slot(ReplySlot::Kind::kMultiGet);
  const size_t nkeys = req.keys.size();
  // The keys are kept as one copy of the line from the first key to the end of the last (keys
  // separated by spaces) plus each key's length: finish_multiget walks them in order.
  const std::string_view first = req.keys.front();
  const std::string_view last = req.keys.back();
  slot->keys.assign(first.data(), static_cast<size_t>(last.data() + last.size() - first.data()));
  slot->key_len.resize(nkeys);
  slot->key_frag.resize(nkeys);
  frag_counts_.clear();  // bytes of the keys (each with a space) per fragment
  for (size_t i = 0; i < nkeys; ++i) {
    const std::string_view key = req.keys[i];
    slot->key_len[i] = static_cast<uint32_t>(key.size());
    const uint16_t frag = fragment_of(pool_rt.server_for(key));
    frag_counts_[frag] += static_cast<uint32_t>(key.size() + 1);
    slot->key_frag[i] = frag;
  }
  size_t nfrags = frag_servers_.size();
  if (split_hits_down_server(slot)) return;
  if (nfrags == 1) {
    // Every key on one server: forward the frame untouched.
    slot->kind = ReplySlot::Kind::kForward;
    slot->outstanding = 1;
    ServerConnection& conn = pool_rt.connection(frag_servers_[0], id_);
    conn.out().append(req.frame);
    conn.push(shared_from_this(), slot, 0, mc::ReplyKind::kRetrieval);
    return;
  }
  expect_fragments(slot, nfrags);
  // "get" or "gat <exptime>": everything before the space that precedes the first key. Each
  // key is then copied with the space before it (the line has one there), into room made
  // once per fragment.
  std::string_view prefix(req.frame.data(), static_cast<size_t>(first.data() - req.frame.data()));
  prefix.remove_suffix(1);
  frag_write_.resize(nfrags);
  for (size_t f = 0; f < nfrags; ++f) {
    std::string& out = pool_rt.connection(frag_servers_[f], id_).out();
    const size_t at = out.size();
    out.resize(at + prefix.size() + frag_counts_[f] + 2);
    char* w = out.data() + at;
    std::memcpy(w, prefix.data(), prefix.size());
    frag_write_[f] = w + prefix.size();
  }
  for (size_t i = 0; i < nkeys; ++i) {
    const std::string_view key = req.keys[i];
    char*& w = frag_write_[slot->key_frag[i]];
    std::memcpy(w, key.data() - 1, key.size() + 1);
    w += key.size() + 1;
  }
  auto self = shared_from_this();
  for (size_t f = 0; f < nfrags; ++f) {
    std::memcpy(frag_write_[f], "\r\n", 2);
    pool_rt.connection(frag_servers_[f], id_)
        .push(self, slot, static_cast<uint16_t>(f), mc::ReplyKind::kRetrieval);
  }
}

void ClientSession::expect_fragments(ReplySlot* slot, size_t nfrags) {
  slot->outstanding = static_cast<uint32_t>(nfrags);
  slot_.counters.fragments += nfrags;
  if (slot->frags.size() < nfrags) slot->frags.resize(nfrags);
  slot->frag_error.assign(nfrags, 0);
}

void ClientSession::expect_resp_fragments(ReplySlot* slot, std::string_view command, bool pairs,
                                          size_t nfrags) {
  if (command == "mget") {
    slot->kind = ReplySlot::Kind::kRespArray;
  } else if (pairs) {
    slot->kind = ReplySlot::Kind::kRespAllOk;
  }
  expect_fragments(slot, nfrags);
}

bool ClientSession::split_hits_down_server(ReplySlot* slot) {
  for (uint32_t server : frag_servers_) {
    if (pool().is_down(server)) {
      // As when a shard fails: the whole reply is that server's error.
      slot->kind = ReplySlot::Kind::kReady;
      slot->data.assign(pool().down_error(server));
      slot->done = true;
      return true;
    }
  }
  return false;
}

void ClientSession::forward_memcache_broadcast(const Request& req) {
  size_t n = pool().server_count();
  for (uint32_t s = 0; s < n; ++s) {
    if (pool().is_down(s)) {
      ready_slot(pool().down_error(s))->noreply = req.has(protocol::kFlagNoreply);
      return;
    }
  }
  ReplySlot* slot = new_slot(ReplySlot::Kind::kBroadcast);
  slot->noreply = req.has(protocol::kFlagNoreply);
  slot_.counters.fragments += n;
  slot->outstanding = static_cast<uint32_t>(n);
  if (slot->frags.size() < n) slot->frags.resize(n);
  slot->frag_error.assign(n, 0);
  auto self = shared_from_this();
  for (uint32_t s = 0; s < n; ++s) {
    ServerConnection& conn = pool().connection(s, id_);
    append_frame(conn.out(), req);
    conn.push(
        self, slot, static_cast<uint16_t>(s),
        protocol::memcache::reply_kind(static_cast<protocol::memcache::Command>(req.command)));
  }
}

void ClientSession::on_backend_reply(ReplySlot* slot, uint16_t frag, std::string_view bytes,
                                     bool is_error, std::span<const size_t> marks) {
  if (frag == kIgnoredFrag) return;  // the reply to an ASKING (redis_cluster)
  if (slot->orphaned) {
    if (--slot->outstanding == 0) free_slots_.push_back(slot);
    return;
  }
  if (slot->cluster && is_error && cluster_intercept(slot, frag, bytes)) return;
  if (slot->kind == ReplySlot::Kind::kAck) {
    on_ack_reply(slot, frag, bytes, is_error);
    return;
  }
  if (slot->kind == ReplySlot::Kind::kFailover) {
    on_failover_reply(slot, bytes, is_error, marks);
    return;
  }
  if (slot->kind == ReplySlot::Kind::kForward) {
    slot->outstanding = 0;
    if (!slot->noreply && !closed_ && slots_.front() == slot) {
      // The common case: the oldest request's reply goes straight to the output buffer.
      out_buffer().append(bytes);
      record_latency(slot);
      free_slots_.push_back(slots_.pop_front());
    } else {
      hold_buffer(slot->data, bytes.size()).assign(bytes);
      slot->held = bytes.size();
      held_bytes_ += bytes.size();
      slot->done = true;
    }
    drain();
    return;
  }
  if (slot->kind == ReplySlot::Kind::kMultiGet || slot->kind == ReplySlot::Kind::kRespArray) {
    on_merge_reply(slot, frag, bytes, is_error, marks);
    return;
  }
  copy_with_headroom(slot->frags[frag], bytes);
  slot->held += bytes.size();
  held_bytes_ += bytes.size();
  slot->frag_error[frag] = is_error ? 1 : 0;
  if (--slot->outstanding > 0) return;
  switch (slot->kind) {
    case ReplySlot::Kind::kRespAllOk:
      finish_resp_all_ok(slot);
      break;
    case ReplySlot::Kind::kRespSum:
      finish_resp_sum(slot);
      break;
    case ReplySlot::Kind::kRespConcat:
    case ReplySlot::Kind::kRespAllSame:
    case ReplySlot::Kind::kRespAndArray:
    case ReplySlot::Kind::kRespScan:
    case ReplySlot::Kind::kRespAnyKey:
      finish_resp_broadcast(slot);
      break;
    default:
      finish_broadcast(slot);
      break;
  }
  slot->done = true;
  drain();
}

void ClientSession::on_merge_reply(ReplySlot* slot, uint16_t frag, std::string_view bytes,
                                   bool is_error, std::span<const size_t> marks) {
  // Every split (sharded or redis_cluster) sizes frags and frag_error; the marks follow here.
  if (slot->frag_marks.size() < slot->frag_error.size())
    slot->frag_marks.resize(slot->frag_error.size());
  slot->frag_error[frag] = is_error ? 1 : 0;
  if (--slot->outstanding > 0) {
    copy_with_headroom(slot->frags[frag], bytes);
    copy_with_headroom(slot->frag_marks[frag], marks);
    slot->held += bytes.size();
    held_bytes_ += bytes.size();
    return;
  }
  // NOTE: the last fragment is merged from the backend's buffer (valid during this call), the
  // others from their copies; the merged reply goes straight to the output buffer when it is
  // the oldest one (the common case), else to the slot.
  const size_t nfrags = slot->frag_error.size();
  frag_views_.resize(nfrags);
  frag_mark_views_.resize(nfrags);
  for (size_t f = 0; f < nfrags; ++f) {
    frag_views_[f] = slot->frags[f];
    frag_mark_views_[f] = slot->frag_marks[f];
  }
  frag_views_[frag] = bytes;
  frag_mark_views_[frag] = marks;
  const bool direct = !slot->noreply && !closed_ && slots_.front() == slot;
  size_t merged_bound = 0;
  for (size_t f = 0; f < nfrags; ++f) merged_bound += frag_views_[f].size();
  std::string& dst = direct ? out_buffer() : hold_buffer(slot->data, merged_bound);
  if (slot->kind == ReplySlot::Kind::kMultiGet) {
    finish_multiget(slot, dst);
  } else {
    finish_resp_array(slot, dst);
  }
  if (direct) {
    record_latency(slot);
    held_bytes_ -= slot->held;
    slot->held = 0;
    free_slots_.push_back(slots_.pop_front());
  } else {
    slot->done = true;
  }
  drain();
}

void ClientSession::finish_multiget(ReplySlot* slot, std::string& dst) {
  namespace mc = protocol::memcache;
  size_t nfrags = slot->frag_error.size();
  for (size_t f = 0; f < nfrags; ++f) {
    if (slot->frag_error[f]) {
      // One shard failed: the whole reply is that shard's error (documented in the README).
      dst.append(frag_views_[f]);
      return;
    }
  }
  // Each fragment's items, in its keys' order (memcached answers hits in request order), are
  // located by the marks its scan left: key offset, key length, end of item. An item starts
  // where the one before it ends (the first at 0).
  // The merged reply is at most every fragment plus "END\r\n": sized once, copied into.
  frag_cursor_.assign(nfrags, 0);
  size_t bound = 5;
  for (size_t f = 0; f < nfrags; ++f) bound += frag_views_[f].size();
  char* const out_start = merge_scratch(bound);
  char* o = out_start;
  const char* k = slot->keys.data();
  const char* const keys_end = k + slot->keys.size();
  for (size_t i = 0; i < slot->key_len.size(); ++i) {
    while (k < keys_end && *k == ' ') ++k;
    const size_t len = slot->key_len[i];
    const char* const key = k;
    k += len;
    const uint16_t f = slot->key_frag[i];
    const std::span<const size_t> m = frag_mark_views_[f];
    const size_t c = frag_cursor_[f];
    if (c >= m.size() || m[c + 1] != len) continue;
    const char* const reply = frag_views_[f].data();
    if (!protocol::byte_scan::equal(reply + m[c], key, len)) continue;
    const size_t start = c == 0 ? 0 : m[c - 1];
    std::memcpy(o, reply + start, m[c + 2] - start);
    o += m[c + 2] - start;
    frag_cursor_[f] = c + mc::kMarksPerItem;
  }
  std::memcpy(o, "END\r\n", 5);
  o += 5;
  dst.append(out_start, static_cast<size_t>(o - out_start));
}

void ClientSession::finish_broadcast(ReplySlot* slot) {
  namespace mc = protocol::memcache;
  const auto cmd = static_cast<mc::Command>(slot->command);
  if (cmd == mc::Command::kStatsGroup) {
    // Every server's lines in server order, then one END; the first server's error if any.
    for (size_t f = 0; f < slot->frag_error.size(); ++f) {
      if (slot->frag_error[f]) {
        slot->data.assign(slot->frags[f]);
        return;
      }
    }
    slot->data.clear();
    for (size_t f = 0; f < slot->frag_error.size(); ++f) {
      std::string_view frag = slot->frags[f];
      if (frag.ends_with("END\r\n")) frag.remove_suffix(5);
      slot->data.append(frag);
    }
    slot->data.append("END\r\n");
    return;
  }
  // flush_all, stats detail on|off: OK; stats reset: RESET; else the first other answer.
  const std::string_view all = cmd == mc::Command::kStatsReset ? "RESET\r\n" : "OK\r\n";
  for (size_t f = 0; f < slot->frag_error.size(); ++f) {
    if (slot->frag_error[f] || slot->frags[f] != all) {
      slot->data.assign(slot->frags[f]);
      return;
    }
  }
  slot->data.assign(all);
}

}  // namespace dproxy::core
