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

void ClientSession::execute_memcache(const Request& req) {
  if (req.has(protocol::kFlagBroadcast)) {  // flush_all, stats <group> / reset / detail
    sharded_.memcache_broadcast(req);
    return;
  }
  if (pool().route_kind() != routing::Route::Kind::kShard) {
    routed_.dispatch_memcache(req);  // session/routed_execution.cpp
    return;
  }
  sharded_.dispatch_memcache(req);  // session/sharded_execution.cpp
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

void ClientSession::on_backend_reply(ReplySlot* slot, uint16_t frag, std::string_view bytes,
                                     bool is_error, std::span<const size_t> marks) {
  if (frag >= kExecFrag) [[unlikely]] {
    if (frag == kIgnoredFrag) return;  // the reply to an ASKING (redis_cluster), ...
    if (cluster_transaction_reply(slot, frag, bytes)) return;
    frag = 0;  // EXEC's reply: the transaction's
  }
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
  if (!slot->frame.empty() && !bytes.empty() && bytes[0] == '-' &&
      dedicated_.follow_redirect(slot, bytes))
    return;
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
