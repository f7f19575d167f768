#include "core/client_session.h"

#include <cstring>

#include "core/backend/pool_runtime.h"
#include "core/backend/server_health.h"
#include "core/log.h"
#include "core/session/memcache_binary_front_end.h"
#include "core/session/memcache_front_end.h"
#include "core/session/redis_front_end.h"
#include "core/stats.h"
#include "core/worker.h"
#include "protocol/memcache/merge.h"
#include "protocol/memcache/reply_parser.h"
#include "protocol/resp/merge.h"

namespace dproxy::core {

using protocol::ParseStatus;
using protocol::Request;

namespace {
constexpr size_t kMaxLineBytes = 2 * 1024 * 1024;
}  // namespace

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

void ClientSession::choose_front_end() {
  front_chosen_ = true;
  // A binary request's magic byte chooses the binary front end (SASL in a pool with
  // credentials); ASCII clients of such a pool authenticate as memcached -Y asks.
  if (redis_ ||
      static_cast<unsigned char>(rbuf_[rstart_]) != protocol::memcache::binary::kRequestMagic)
    return;
  auto binary = std::make_unique<McBinaryFrontEnd>(*this, pool().config());
  translator_ = binary.get();
  front_ = std::move(binary);
}

void ClientSession::process() {
  if (!front_chosen_ && rstart_ < rend_) choose_front_end();
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
      // stays in the buffer until that read is final (session/routed_execution.cpp). A refused
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
    routed_.dispatch_memcache(req);
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
  ServerConnection& conn = pool().connection(server, id_, db_);
  ReplySlot* slot = new_slot(ReplySlot::Kind::kForward);
  slot->outstanding = 1;
  slot->noreply = req.has(protocol::kFlagNoreply);
  append_frame(conn.out(), req);
  mc::ReplyKind kind = mc::reply_kind(cmd);
  if (req.flags & (protocol::kFlagMeta | protocol::kFlagQuiet)) [[unlikely]]
    kind = meta_reply_kind(req, conn.out(), slot);
  conn.push(shared_from_this(), slot, 0, kind);
}

protocol::memcache::ReplyKind ClientSession::meta_reply_kind(const Request& req, std::string& out,
                                                             ReplySlot* slot) {
  if (!req.has(protocol::kFlagQuiet)) return protocol::memcache::ReplyKind::kMeta;
  // A quiet meta request: the server answers only what q does not leave out, so an "mn" after
  // it makes every request answer ("MN", dropped by on_backend_reply): replies stay matched.
  out.append("mn\r\n");
  slot->quiet = true;
  return protocol::memcache::ReplyKind::kMetaQuiet;
}

void ClientSession::forward_memcache_multiget(const Request& req) {
  namespace mc = protocol::memcache;
  PoolRuntime& pool_rt = pool();
  frag_of_server_.assign(pool_rt.server_count(), -1);
  frag_servers_.clear();
  ReplySlot* slot = new_slot(ReplySlot::Kind::kMultiGet);
  const size_t nkeys = req.keys.size();
  // The keys are kept as one copy of the line from the first key to the end of the last (keys
  // separated by spaces) plus each key's length: merge_multiget walks them in order.
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
    ServerConnection& conn = pool_rt.connection(frag_servers_[0], id_, db_);
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
    std::string& out = pool_rt.connection(frag_servers_[f], id_, db_).out();
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
    pool_rt.connection(frag_servers_[f], id_, db_)
        .push(self, slot, static_cast<uint16_t>(f), mc::ReplyKind::kRetrieval);
  }
}

void ClientSession::expect_fragments(ReplySlot* slot, size_t nfrags) {
  slot->outstanding = static_cast<uint32_t>(nfrags);
  slot_.counters.fragments += nfrags;
  if (slot->frags.size() < nfrags) slot->frags.resize(nfrags);
  slot->frag_error.assign(nfrags, 0);
}

void ClientSession::expect_resp_fragments(ReplySlot* slot, protocol::resp::Merge merge,
                                          size_t nfrags) {
  slot->kind = ReplySlot::Kind::kRespMerge;
  slot->merge = merge;
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
    ServerConnection& conn = pool().connection(s, id_, db_);
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
  if (slot->cluster && is_error && cluster_.intercept(slot, frag, bytes)) return;
  // A quiet meta request's reply ends with the server's "MN" (dproxy's own errors do not).
  if (slot->quiet && bytes.ends_with("MN\r\n")) [[unlikely]]
    bytes.remove_suffix(4);
  if (slot->kind == ReplySlot::Kind::kAck) {
    routed_.on_ack_reply(slot, frag, bytes, is_error);
    return;
  }
  if (slot->kind == ReplySlot::Kind::kFailover) {
    routed_.on_failover_reply(slot, bytes, is_error, marks);
    return;
  }
  if (slot->kind == ReplySlot::Kind::kForward) {
    if (slot->dedicated) [[unlikely]] {
      on_dedicated_reply(slot, bytes);
      return;
    }
    slot->outstanding = 0;
    if (!slot->noreply && !closed_ && slots_.front() == slot && translator_ == nullptr) {
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
  if (slot->kind == ReplySlot::Kind::kSelect) {
    on_select_reply(slot, bytes, is_error);
    return;
  }
  if (slot->kind == ReplySlot::Kind::kMultiGet ||
      slot->merge == protocol::resp::Merge::kArrayInKeyOrder) {
    on_merge_reply(slot, frag, bytes, is_error, marks);
    return;
  }
  copy_with_headroom(slot->frags[frag], bytes);
  slot->held += bytes.size();
  held_bytes_ += bytes.size();
  slot->frag_error[frag] = is_error ? 1 : 0;
  if (--slot->outstanding > 0) return;
  finish_collected(slot);
  slot->done = true;
  drain();
}

void ClientSession::on_dedicated_reply(ReplySlot* slot, std::string_view bytes) {
  const uint32_t server = slot->child;
  slot->outstanding = 0;
  hold_buffer(slot->data, bytes.size()).assign(bytes);
  slot->held = bytes.size();
  held_bytes_ += bytes.size();
  slot->done = true;
  dedicated_.on_reply(server);
  drain();
}

void ClientSession::on_closed() {
  front_->on_closed();
  dedicated_.release_all();
}

void ClientSession::finish_collected(ReplySlot* slot) {
  const size_t nfrags = slot->frag_error.size();
  frag_views_.resize(nfrags);
  for (size_t f = 0; f < nfrags; ++f) frag_views_[f] = slot->frags[f];
  const protocol::Fragments frags{frag_views_, slot->frag_error, {}};
  slot->data.clear();
  if (slot->kind == ReplySlot::Kind::kBroadcast) {
    namespace mc = protocol::memcache;
    // flush_all, stats detail on|off: OK; stats reset: RESET; stats <group>: every server's
    // lines (slot->command is the memcached command: the latency stats' id).
    switch (static_cast<mc::Command>(slot->command)) {
      case mc::Command::kStatsGroup:
        mc::merge_stat_lines(frags, slot->data);
        break;
      case mc::Command::kStatsReset:
        mc::merge_all_same(frags, "RESET\r\n", slot->data);
        break;
      default:
        mc::merge_all_same(frags, "OK\r\n", slot->data);
        break;
    }
    return;
  }
  // SCAN: the server's position and the server count; RANDOMKEY: where to start looking.
  const protocol::resp::MergeContext ctx{slot->key_frag, slot->child, slot->tried};
  protocol::resp::append_merged(slot->merge, frags, ctx, merge_scratch_, slot->data);
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
  const protocol::Fragments frags{frag_views_, slot->frag_error, frag_mark_views_};
  if (slot->kind == ReplySlot::Kind::kMultiGet) {
    protocol::memcache::merge_multiget(frags, {slot->keys, slot->key_len, slot->key_frag},
                                       merge_scratch_, dst);
  } else {
    protocol::resp::merge_array_in_key_order(frags, slot->key_frag, merge_scratch_, dst);
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

}  // namespace dproxy::core
