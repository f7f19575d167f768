#include "core/client_session.h"

#include <cstring>

#include "core/backend/pool_runtime.h"
#include "core/backend/server_health.h"
#include "core/log.h"
#include "core/read_hint.h"
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
    : worker_(worker),
      pool_id_(pool_id),
      slot_(worker.slot(pool_id)),
      clients_(clients),
      cur_command_(ReplySlot::kNoCommand),
      socket_(std::move(socket)),
      id_(id),
      redis_(pool().config().protocol == Protocol::kRedis),
      mc_parser_(
          protocol::memcache::RequestLimits{250, pool().config().max_value_bytes, kMaxLineBytes}),
      resp_parser_(
          protocol::resp::RequestLimits{pool().config().max_value_bytes, 1024 * 1024, 64 * 1024}),
      authenticated_(pool().config().client_password.empty()),
      max_request_bytes_(pool().config().max_value_bytes + kMaxLineBytes + (1 << 20)) {
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

void ClientSession::record_latency(const ReplySlot* slot) {
  if (slot->command == ReplySlot::kNoCommand) return;
  auto elapsed = worker_.now() - slot->started;
  int64_t us = std::chrono::duration_cast<std::chrono::microseconds>(elapsed).count();
  slot_.counters.record_latency(slot->command, us < 0 ? 0 : static_cast<uint64_t>(us));
}

void ClientSession::memcache_stats_reply() {
  // The figures are summed over every worker thread: the reply waits for them.
  ReplySlot* slot = new_slot(ReplySlot::Kind::kReady);
  worker_.collect_stats(
      socket_.get_executor(),
      [self = shared_from_this(), slot](const StatsSnapshot& snap, const ProcessInfo& info) {
        slot->data = format_memcached_stats(snap, info, self->slot_.name);
        slot->data.append("END\r\n");
        slot->done = true;
        self->drain();
      });
}

void ClientSession::start() {
  worker_.add_session(id_, weak_from_this(), pool_id_);
  asio::error_code ec;
  auto local = socket_.local_endpoint(ec);
  if (!ec && local.protocol().family() != AF_UNIX)
    socket_.set_option(asio::ip::tcp::no_delay(true), ec);
  start_read();
}

bool ClientSession::paused() const {
  return input_held_ || slots_.size() >= kMaxPendingSlots ||
         out_.size() + writing_buf_.size() + held_bytes_ >= kMaxBufferedReplyBytes;
}

void ClientSession::start_read() {
  if (reading_ || closed_ || stop_input_) return;
  if (paused()) {
    read_paused_ = true;  // drain() resumes reading once replies are written
    return;
  }
  if (rbuf_.empty()) {
    // Nothing read yet: wait for the first bytes without holding a read buffer, so that idle
    // connections stay small; the buffer is allocated once data arrives.
    reading_ = true;
    socket_.async_wait(
        asio::socket_base::wait_read,
        with_memory(read_memory_, [self = shared_from_this()](const asio::error_code& ec) {
          self->reading_ = false;
          if (self->closed_) return;
          if (ec) {
            self->close();
            return;
          }
          self->rbuf_.resize(kInitialReadBuffer);
          self->start_read();
        }));
    return;
  }
  if (rstart_ == rend_) rstart_ = rend_ = 0;
  if (rend_ - rstart_ >= max_request_bytes_ || need_ > max_request_bytes_) {
    // One request bigger than any value this pool accepts: refuse it rather than buffer more.
    ReplySlot* slot = ready_slot(redis_ ? "-ERR dproxy: request too large\r\n"
                                        : "SERVER_ERROR request too large\r\n");
    slot->close_after = true;
    stop_input_ = true;
    drain();
    return;
  }
  size_t want = std::max(need_, rend_ - rstart_ + 1);
  if (rbuf_.size() - rstart_ < want || rend_ == rbuf_.size()) {
    // Compact, then grow when the pending frame still does not fit.
    if (rstart_ > 0) {
      std::memmove(rbuf_.data(), rbuf_.data() + rstart_, rend_ - rstart_);
      rend_ -= rstart_;
      rstart_ = 0;
    }
    if (rbuf_.size() < want || rend_ == rbuf_.size())
      rbuf_.resize(std::max(want, rbuf_.size() * 2));
  }
  reading_ = true;
  read_tainted_ = write_waits_;
  size_t space = rbuf_.size() - rend_;
  socket_.async_read_some(asio::buffer(rbuf_.data() + rend_, space),
                          with_memory(read_memory_, [self = shared_from_this(), space](
                                                        const asio::error_code& ec, size_t n) {
                            if (!ec && n < space && self->read_queued_ && !self->read_tainted_)
                              read_hint::mark_drained(self->socket_);
                            self->on_read(ec, n);
                          }));
  read_queued_ = read_hint::read_queued(socket_);
}

void ClientSession::on_read(const asio::error_code& ec, size_t n) {
  reading_ = false;
  if (closed_) return;
  if (ec == asio::error::eof) {
    // The client finished sending (or half-closed): answer everything it sent, then close.
    ++slot_.counters.client_eof;
    stop_input_ = true;
    close_when_done_ = true;
    drain();
    return;
  }
  if (ec) {
    if (ec != asio::error::operation_aborted) {
      ++slot_.counters.client_err;
      LOG_DEBUG("client %llu: read error: %s", static_cast<unsigned long long>(id_),
                ec.message().c_str());
    }
    close();
    return;
  }
  worker_.tick();
  rend_ += n;
  process();
  start_read();
}

void ClientSession::begin_drain() {
  if (closed_) return;
  // Input held behind a replicated read was read: it is still answered (the read that ends
  // with EOF then stops the input).
  if (!input_held_) stop_input_ = true;
  close_when_done_ = true;
  // A read in progress ends with EOF; nothing more is read from this client.
  asio::error_code ignored;
  socket_.shutdown(asio::socket_base::shutdown_receive, ignored);
  drain();
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
    protocol::ParseResult r = redis_ ? resp_parser_.parse(in, req_) : mc_parser_.parse(in, req_);
    if (r.status == ParseStatus::kNeedMore) {
      need_ = r.size_hint;
      break;
    }
    need_ = 0;
    if (reads_pending_ > 0 && (r.status == ParseStatus::kOk || !redis_) && waits_for_reads(req_)) {
      // A replicated read of this session may still fail over: this request (and all after it)
      // stays in the buffer until that read is final (client_session_routes.cpp). A refused
      // memcached request waits too (its error path may write); the RESP parser remembers the
      // discard of a refused command, so only complete Redis commands can wait.
      input_held_ = true;
      break;
    }
    ++slot_.counters.requests;
    cur_command_ = ReplySlot::kNoCommand;
    if (r.status == ParseStatus::kError) {
      if (!redis_) refused_memcache_store(r.error, req_);
      // A request that asked for no reply gets none (an empty slot still closes in order).
      const bool silent = req_.has(protocol::kFlagNoreply);
      ReplySlot* slot = ready_slot(silent ? std::string_view() : r.error);
      rstart_ += std::min(r.consumed, in.size());
      discard_ = r.skip;
      if (r.close) {
        ++slot_.counters.client_err;
        slot->close_after = true;
        stop_input_ = true;
      }
      continue;
    }
    if (!redis_) {
      cur_command_ = req_.command;
      dispatch_memcache(req_);
    } else if (!req_.args.empty()) {
      dispatch_redis(req_);
    }
    rstart_ += r.consumed;
  }
  drain();
}

void ClientSession::refused_memcache_store(std::string_view error, const Request& req) {
  namespace mc = protocol::memcache;
  // memcached unlinks the old item when it refuses a `set` for its size (only `set`: the other
  // storage commands leave it), so a later get cannot return the value the client replaced.
  if (error != mc::errors::kTooLarge || req.keys.empty() ||
      static_cast<mc::Command>(req.command) != mc::Command::kSet)
    return;
  delete_scratch_.assign("delete ");
  delete_scratch_.append(req.keys[0]);
  delete_scratch_.append("\r\n");
  protocol::ParseResult r = mc_parser_.parse(delete_scratch_, delete_req_);
  if (r.status != ParseStatus::kOk) return;
  // Its reply is dropped; the refusal's own reply (or silence) follows it in order.
  delete_req_.flags |= protocol::kFlagNoreply;
  cur_command_ = delete_req_.command;
  dispatch_memcache(delete_req_);
  cur_command_ = ReplySlot::kNoCommand;
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

void ClientSession::dispatch_memcache(const Request& req) {
  namespace mc = protocol::memcache;
  auto cmd = static_cast<mc::Command>(req.command);
  if (cmd == mc::Command::kStats) {
    if (req.has(protocol::kFlagRejected)) {
      ready_slot(
          "CLIENT_ERROR dproxy answers plain 'stats' only (its own figures); 'stats <group>' "
          "would need one backend\r\n");
    } else {
      memcache_stats_reply();
    }
    return;
  }
  if (req.has(protocol::kFlagRejected) || cmd == mc::Command::kUnsupported) {
    ReplySlot* slot = ready_slot("CLIENT_ERROR command '");
    slot->data.append(req.name);
    slot->data.append("' is not supported by dproxy\r\n");
    return;
  }
  switch (cmd) {
    case mc::Command::kVersion:
      ready_slot("VERSION " DPROXY_VERSION " dproxy\r\n");
      return;
    case mc::Command::kVerbosity:
      if (!req.has(protocol::kFlagNoreply)) ready_slot("OK\r\n");
      return;
    case mc::Command::kQuit: {
      ReplySlot* slot = ready_slot("");
      slot->close_after = true;
      stop_input_ = true;
      return;
    }
    case mc::Command::kFlushAll:
      forward_memcache_broadcast(req);
      return;
    default:
      break;
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
    ServerConnection& conn = pool().connection(s, id_);
    append_frame(conn.out(), req);
    conn.push(self, slot, static_cast<uint16_t>(s), protocol::memcache::ReplyKind::kOk);
  }
}

ReplySlot* ClientSession::new_slot(ReplySlot::Kind kind) {
  ReplySlot* slot;
  if (free_slots_.empty()) {
    slot_storage_.push_back(std::make_unique<ReplySlot>());
    slot = slot_storage_.back().get();
    // Room for a typical reply held back for ordering, kept by the slot: only larger ones
    // borrow a pool buffer (hold_buffer), so pipelined small replies do not tie up 2 KiB each.
    slot->data.reserve(ReplySlot::kHeldReplyCapacity);
  } else {
    slot = free_slots_.back();
    free_slots_.pop_back();
    slot->reset();
  }
  slot->kind = kind;
  slot->command = cur_command_;
  slot->started = worker_.now();
  slots_.push_back(slot);
  return slot;
}

std::string& ClientSession::out_buffer() {
  if (out_.empty() && out_.capacity() < BufferPool::kInitialCapacity)
    worker_.reply_buffers().take(out_);
  return out_;
}

std::string& ClientSession::hold_buffer(std::string& buf, size_t need) {
  if (buf.empty() && buf.capacity() < need) worker_.reply_buffers().take(buf);
  return buf;
}

ReplySlot* ClientSession::ready_slot(std::string_view reply) {
  ReplySlot* slot = new_slot(ReplySlot::Kind::kReady);
  slot->data.assign(reply);
  slot->done = true;
  return slot;
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

void ClientSession::finish_collected(ReplySlot* slot) {
  const size_t nfrags = slot->frag_error.size();
  frag_views_.resize(nfrags);
  for (size_t f = 0; f < nfrags; ++f) frag_views_[f] = slot->frags[f];
  const protocol::Fragments frags{frag_views_, slot->frag_error, {}};
  slot->data.clear();
  if (slot->kind == ReplySlot::Kind::kBroadcast) {
    protocol::memcache::merge_all_ok(frags, slot->data);
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

void ClientSession::drain() {
  while (!slots_.empty() && slots_.front()->done) {
    ReplySlot* slot = slots_.pop_front();
    record_latency(slot);
    held_bytes_ -= slot->held;
    slot->held = 0;
    if (!slot->noreply && !closed_) out_buffer().append(slot->data);
    // A reply held in a borrowed buffer (see hold_buffer) gives it back.
    if (slot->data.capacity() >= BufferPool::kInitialCapacity)
      worker_.reply_buffers().give(slot->data);
    bool close_after = slot->close_after;
    if (slot->outstanding > 0) {
      // Answered before every fragment came back (write_ack majority/one): the late ones still
      // point at this slot, so it is recycled when the last arrives.
      slot->orphaned = true;
    } else {
      free_slots_.push_back(slot);
    }
    if (close_after) {
      close_after_write_ = true;
      break;
    }
  }
  // Not while a posted process() (held or paused input) may still add replies.
  if (close_when_done_ && slots_.empty() && !resume_posted_) close_after_write_ = true;
  start_write();
  if (read_paused_ && !reading_ && !closed_ && !stop_input_ && !paused() && !resume_posted_) {
    // Reading was paused by backpressure: resume outside the current call stack.
    read_paused_ = false;
    resume_posted_ = true;
    asio::post(socket_.get_executor(), [self = shared_from_this()] {
      self->resume_posted_ = false;
      self->process();
      self->start_read();
    });
  }
}

void ClientSession::start_write() {
  if (closed_ || writing_) return;
  if (out_.empty()) {
    if (close_after_write_) close();
    return;
  }
  writing_ = true;
  // writing_buf_ gave its memory back when the last write completed: the output buffer moves
  // over, and the next reply borrows another one (out_buffer()).
  writing_buf_ = std::move(out_);
  out_.clear();
  asio::async_write(
      socket_, asio::buffer(writing_buf_),
      with_memory(write_memory_, [self = shared_from_this()](const asio::error_code& ec, size_t) {
        self->writing_ = false;
        self->write_waits_ = false;
        self->worker_.reply_buffers().give(self->writing_buf_);
        if (ec) {
          ++self->slot_.counters.client_err;
          self->close();
          return;
        }
        self->drain();
      }));
  if (read_hint::write_may_wait(socket_)) write_waits_ = read_tainted_ = true;
}

void ClientSession::close() {
  if (closed_) return;
  closed_ = true;
  worker_.remove_session(id_);
  asio::error_code ignored;
  socket_.shutdown(asio::socket_base::shutdown_both, ignored);
  socket_.close(ignored);
  worker_.reply_buffers().give(out_);
}

}  // namespace dproxy::core
