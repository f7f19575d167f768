#include "core/backend/server_connection.h"

#include "core/log.h"
#include "core/read_hint.h"
#include "core/worker.h"
#include "protocol/memcache/reply_parser.h"

namespace dproxy::core {

using Clock = std::chrono::steady_clock;
namespace mc = protocol::memcache;

namespace {
constexpr size_t kReadChunk = 16 * 1024;
// A buffer that grew past this during a burst is given back once it is empty again, so a
// connection returns to its working size after a burst (issue 24: memory after faults).
constexpr size_t kShrinkAbove = 256 * 1024;
constexpr size_t kMaxAbandoned = 65536;  // a backend this far behind is treated as dead
constexpr std::chrono::milliseconds kMinBackoff{50};
constexpr std::chrono::milliseconds kMaxBackoff{2000};
}  // namespace

ServerConnection::ServerConnection(Worker& worker,
                                   asio::generic::stream_protocol::endpoint endpoint,
                                   std::string address, const PoolConfig& config,
                                   PoolHealth* health, uint32_t index, std::string setup,
                                   uint32_t setup_replies, PoolSlot* slot)
    : worker_(worker),
      endpoint_(std::move(endpoint)),
      address_(std::move(address)),
      timeout_(config.timeout_ms),
      connect_timeout_(config.connect_timeout_ms),
      health_(health),
      index_(index),
      socket_(worker.io()),
      tls_wanted_(config.server_tls.enabled),
      pool_slot_(slot),
      timer_(worker.io()),
      connect_timer_(worker.io()),
      redis_(config.protocol == Protocol::kRedis),
      keepalive_(config.tcp_keepalive),
      setup_(std::move(setup)),
      setup_replies_(setup_replies) {
  if (redis_ && health_ != nullptr) {
    // The server's version, for the INFO dproxy answers (the pool's lowest); its reply never
    // fails the connection (a user without +info still gets through).
    setup_.append("*2\r\n$4\r\nINFO\r\n$6\r\nserver\r\n");
    ++setup_replies_;
    setup_info_ = true;
  }
  // A backend connection carries the requests of many clients per write: sized once for a
  // typical batch rather than grown step by step at each new peak under load.
  out_.reserve(kInitialWriteBuffer);
  writing_buf_.reserve(kInitialWriteBuffer);
  pending_.reserve(kInitialPending);
  if (tls_wanted_) {
    // "host:port" or "[v6]:port": the host the certificate must name (unless server_name).
    host_ = address_.substr(0, address_.rfind(':'));
    if (host_.size() > 2 && host_.front() == '[' && host_.back() == ']')
      host_ = host_.substr(1, host_.size() - 2);
  }
}

ServerConnection::~ServerConnection() {
  // A dedicated connection can go while a flush of it is scheduled.
  if (dirty_) worker_.forget_dirty(this);
  *alive_ = false;
  close_socket();
  timer_.cancel();
  connect_timer_.cancel();
}

void ServerConnection::push(std::shared_ptr<ReplySink> session, ReplySlot* slot, uint16_t frag,
                            mc::ReplyKind kind, bool blocking) {
  const auto bytes = static_cast<uint32_t>(out_.size() - out_mark_);
  out_mark_ = out_.size();
  ++counters_.requests;
  counters_.request_bytes += bytes;
  ++unsent_;
  pending_.push_back(Pending{
      std::move(session), slot, frag, kind, false, bytes,
      timeout_.count() == 0 || blocking ? Clock::time_point::max() : Clock::now() + timeout_});
  if (!dirty_) {
    dirty_ = true;
    worker_.mark_dirty(this);
  }
}

void ServerConnection::mark_dirty() {
  worker_.mark_dirty(this);
}

void ServerConnection::flush() {
  dirty_ = false;
  switch (state_) {
    case State::kConnected:
      if (!writing_) start_write();
      break;
    case State::kConnecting:
      break;  // written once connected
    case State::kDisconnected:
      if (Clock::now() < retry_after_) {
        // The server failed moments ago: fail fast instead of piling up requests.
        fail_all(last_error_, false);
        return;
      }
      start_connect();
      break;
  }
  arm_timer();
}

void ServerConnection::preconnect() {
  if (state_ == State::kDisconnected) start_connect();
}

void ServerConnection::start_connect() {
  state_ = State::kConnecting;
  close_socket();
  socket_ = asio::generic::stream_protocol::socket(worker_.io());
  write_waits_ = read_tainted_ = false;
  LOG_DEBUG("backend %s: connecting", address_.c_str());
  uint64_t gen = ++gen_;
  connect_timer_.expires_after(connect_timeout_);
  connect_timer_.async_wait([this, alive = alive_, gen](const asio::error_code& err) {
    if (!*alive || err || gen != gen_ || state_ != State::kConnecting) return;
    LOG_WARN("backend %s: connect timed out after %lld ms", address_.c_str(),
             static_cast<long long>(connect_timeout_.count()));
    backoff_ = backoff_.count() == 0 ? kMinBackoff : std::min(backoff_ * 2, kMaxBackoff);
    retry_after_ = Clock::now() + backoff_;
    fail_all("connect timed out");
  });
  socket_.async_connect(endpoint_, [this, alive = alive_, gen](const asio::error_code& err) {
    if (!*alive || gen != gen_) return;
    if (!tls_wanted_ || err) connect_timer_.cancel();  // TLS: the handshake is timed too
    if (err) {
      if (err == asio::error::operation_aborted) return;
      LOG_WARN("backend %s: connect failed: %s", address_.c_str(), err.message().c_str());
      backoff_ = backoff_.count() == 0 ? kMinBackoff : std::min(backoff_ * 2, kMaxBackoff);
      retry_after_ = Clock::now() + backoff_;
      fail_all("connect failed: " + err.message());
      return;
    }
    if (endpoint_.protocol().family() != AF_UNIX) {
      asio::error_code ignored;
      socket_.set_option(asio::ip::tcp::no_delay(true), ignored);
      if (keepalive_) socket_.set_option(asio::socket_base::keep_alive(true), ignored);
    }
    if (tls_wanted_) {
      start_handshake(gen);
      return;
    }
    on_connected();
  });
}

void ServerConnection::close_socket() {
  asio::error_code ignored;
  socket_.close(ignored);
  if (tls_) {
    tls_->next_layer().close(ignored);
    tls_.reset();  // its pending operations hold it until they complete
  }
  if (tls_counted_) {
    tls_counted_ = false;
    --pool_slot_->counters.server_tls_connections;
  }
}

void ServerConnection::on_connected() {
  LOG_INFO("backend %s: connected%s", address_.c_str(), tls_ ? " (TLS)" : "");
  state_ = State::kConnected;
  backoff_ = std::chrono::milliseconds(0);
  scan_state_ = {};
  mc_scan_state_ = {};
  start_read();
  if (!setup_.empty()) {
    // AUTH / SELECT go alone: requests are written only once every setup reply is +OK, so a
    // refused setup can never let a request run unauthenticated or in the wrong database.
    setup_pending_ = setup_replies_;
    writing_ = true;
    writing_buf_.assign(setup_);
    write_buffer();
    return;
  }
  start_write();
}

void ServerConnection::start_write() {
  if (out_.empty() || setup_pending_ > 0) return;
  writing_ = true;
  std::swap(out_, writing_buf_);
  sent_bytes_ += writing_buf_.size();
  unsent_ = 0;
  out_mark_ = 0;
  write_buffer();
}

void ServerConnection::write_buffer() {
  if (tls_) [[unlikely]] {
    tls_write_buffer();
    return;
  }
  asio::async_write(socket_, asio::buffer(writing_buf_),
                    with_memory(shared_->write, [this, alive = alive_, gen = gen_](
                                                    const asio::error_code& err, size_t) {
                      if (!*alive || gen != gen_) return;
                      on_written(err);
                    }));
  if (read_hint::write_may_wait(socket_)) write_waits_ = read_tainted_ = true;
}

void ServerConnection::on_written(const asio::error_code& err) {
  writing_ = false;
  write_waits_ = false;
  writing_buf_.clear();
  if (writing_buf_.capacity() > kShrinkAbove) {
    std::string().swap(writing_buf_);
    writing_buf_.reserve(kInitialWriteBuffer);
  }
  if (err) {
    if (state_ == State::kConnected) fail_all("write failed: " + err.message());
    return;
  }
  if (!out_.empty()) start_write();
}

void ServerConnection::start_read() {
  if (in_.size() - in_end_ < kReadChunk / 2) {
    if (in_start_ > 0) {
      std::memmove(in_.data(), in_.data() + in_start_, in_end_ - in_start_);
      in_end_ -= in_start_;
      in_start_ = 0;
    }
    if (in_.size() - in_end_ < kReadChunk / 2) in_.resize(std::max(in_.size() * 2, kReadChunk));
  }
  if (tls_) [[unlikely]] {
    tls_start_read();
    return;
  }
  read_tainted_ = write_waits_;
  size_t space = in_.size() - in_end_;
  socket_.async_read_some(asio::buffer(in_.data() + in_end_, space),
                          with_memory(shared_->read, [this, alive = alive_, gen = gen_, space](
                                                         const asio::error_code& err, size_t n) {
                            if (!*alive || gen != gen_) return;
                            if (!err && n < space && read_queued_ && !read_tainted_)
                              read_hint::mark_drained(socket_);
                            if (err) {
                              on_read_failed(err);
                              return;
                            }
                            on_read(n);
                          }));
  read_queued_ = read_hint::read_queued(socket_);
}

void ServerConnection::on_read_failed(const asio::error_code& err) {
  if (err == asio::error::operation_aborted || state_ != State::kConnected) return;
  // An idle connection closed by the server is either its idle timeout (Redis
  // "timeout") or the server going away: reconnect at once and let that attempt tell.
  // Only a failed reconnect counts as a failure of the server.
  if (err == asio::error::eof && pending_.empty() && setup_pending_ == 0 && out_.empty() &&
      push_sink_ == nullptr) {
    LOG_DEBUG("backend %s: closed an idle connection; reconnecting", address_.c_str());
    ++counters_.server_eof;
    ++gen_;
    state_ = State::kDisconnected;
    close_socket();
    in_start_ = in_end_ = 0;
    scan_state_ = {};
    mc_scan_state_ = {};
    start_connect();
    return;
  }
  fail_all(err == asio::error::eof ? std::string("closed the connection")
                                   : "connection lost: " + err.message());
}

ServerConnection::Step ServerConnection::read_setup_reply() {
  bool is_error = false;
  std::string_view view(in_.data() + in_start_, in_end_ - in_start_);
  if (!redis_) {
    // memcached's ASCII authentication: one line, STORED when the credentials were taken.
    const size_t eol = view.find('\n');
    if (eol == std::string_view::npos) return view.size() > 1024 ? fail_setup(view) : Step::kMore;
    if (view.substr(0, eol + 1) != "STORED\r\n") return fail_setup(view.substr(0, eol));
    in_start_ += eol + 1;
    if (--setup_pending_ == 0 && !writing_) start_write();
    return Step::kNext;
  }
  protocol::ParseResult r = protocol::resp::scan_reply(view, &is_error);
  if (r.status == protocol::ParseStatus::kNeedMore) return Step::kMore;
  if (setup_pending_ == 1 && setup_info_ && r.status == protocol::ParseStatus::kOk) {
    // INFO server: the version, if the server would say it.
    if (!is_error) note_version(view.substr(0, r.consumed));
  } else if (r.status == protocol::ParseStatus::kError) {
    LOG_WARN("backend %s: malformed reply to the connection setup; reconnecting", address_.c_str());
    fail_all("sent a malformed reply");
    return Step::kStop;
  } else if (is_error) {
    std::string_view reply = view.substr(0, r.consumed);
    while (!reply.empty() && (reply.back() == '\n' || reply.back() == '\r')) reply.remove_suffix(1);
    if (!reply.empty() && reply.front() == '-') reply.remove_prefix(1);
    return fail_setup(reply);
  }
  in_start_ += r.consumed;
  if (--setup_pending_ == 0 && !writing_) start_write();
  return Step::kNext;
}

ServerConnection::Step ServerConnection::fail_setup(std::string_view reply) {
  while (!reply.empty() && (reply.back() == '\n' || reply.back() == '\r')) reply.remove_suffix(1);
  if (reply.size() > 200) reply = reply.substr(0, 200);
  fail_all(std::string("refused the connection setup (") +
           (redis_ ? "AUTH/SELECT" : "authentication") + "): " + std::string(reply));
  return Step::kStop;
}

ServerConnection::Step ServerConnection::read_push() {
  // Subscriber mode: every frame goes to the session as it is.
  std::string_view view(in_.data() + in_start_, in_end_ - in_start_);
  protocol::ParseResult r = protocol::resp::scan_reply(view, scan_state_, nullptr, nullptr);
  if (r.status == protocol::ParseStatus::kNeedMore) return Step::kMore;
  if (r.status == protocol::ParseStatus::kError) {
    fail_all("sent a malformed reply");
    return Step::kStop;
  }
  in_start_ += r.consumed;
  scan_state_ = {};
  ++counters_.responses;
  counters_.response_bytes += r.consumed;
  push_sink_->on_push(push_id_, view.substr(0, r.consumed));
  // The session may have let this connection go (closed the client).
  return push_sink_ == nullptr ? Step::kStop : Step::kNext;
}

ServerConnection::Step ServerConnection::skip_push() {
  std::string_view view(in_.data() + in_start_, in_end_ - in_start_);
  protocol::ParseResult r = protocol::resp::scan_reply(view, scan_state_, nullptr, nullptr);
  if (r.status == protocol::ParseStatus::kNeedMore) return Step::kMore;
  if (r.status == protocol::ParseStatus::kError) {
    fail_all("sent a malformed reply");
    return Step::kStop;
  }
  in_start_ += r.consumed;
  scan_state_ = {};
  return Step::kNext;
}

void ServerConnection::on_read(size_t n) {
  worker_.tick();
  in_end_ += n;
  while (in_start_ < in_end_) {
    if (setup_pending_ > 0 || push_sink_ != nullptr) [[unlikely]] {
      // Replies to the connection setup come before any request's reply; a subscriber
      // connection has no requests.
      const Step step = setup_pending_ > 0 ? read_setup_reply() : read_push();
      if (step == Step::kMore) break;
      if (step == Step::kStop) return;
      continue;
    }
    if (redis_ && in_[in_start_] == '>') [[unlikely]] {
      // RESP3 (a connection that said HELLO 3): a push is out of band, no request's reply.
      const Step step = skip_push();
      if (step == Step::kMore) break;
      if (step == Step::kStop) return;
      continue;
    }
    if (pending_.empty()) {
      LOG_WARN("backend %s: unexpected bytes with no request pending; reconnecting",
               address_.c_str());
      fail_all("sent an unexpected reply");
      return;
    }
    Pending& p = pending_.front();
    bool is_error = false;
    std::string_view view(in_.data() + in_start_, in_end_ - in_start_);
    // A fragment of a multi-get (or a per-key failover read): the scan also notes where its
    // items are, for the merge.
    std::vector<size_t>* marks = nullptr;
    if (!p.abandoned && p.slot->wants_marks()) {
      marks = &marks_;
    }
    protocol::ParseResult r = redis_
                                  ? protocol::resp::scan_reply(view, scan_state_, &is_error, marks)
                                  : mc::scan_reply(view, p.kind, mc_scan_state_, &is_error, marks);
    if (r.status == protocol::ParseStatus::kNeedMore) break;
    if (r.status == protocol::ParseStatus::kError) {
      LOG_WARN("backend %s: malformed reply; reconnecting", address_.c_str());
      fail_all("sent a malformed reply");
      return;
    }
    Pending done = pending_.pop_front();
    ++counters_.responses;
    counters_.response_bytes += r.consumed;
    sent_bytes_ -= std::min<uint64_t>(sent_bytes_, done.bytes);
    in_start_ += r.consumed;
    scan_state_ = {};
    mc_scan_state_ = {};
    if (done.abandoned) {
      --abandoned_;
      continue;
    }
    if (health_ != nullptr) health_->record_success(index_);
    done.session->on_backend_reply(
        done.slot, done.frag, view.substr(0, r.consumed), is_error,
        marks != nullptr ? std::span<const size_t>(marks_) : std::span<const size_t>());
  }
  if (in_start_ == in_end_) {
    in_start_ = in_end_ = 0;
    if (in_.size() > kShrinkAbove) {
      in_.resize(kReadChunk);
      in_.shrink_to_fit();
    }
  }
  start_read();
}

void ServerConnection::note_version(std::string_view info) {
  constexpr std::string_view kField = "redis_version:";
  const size_t at = info.find(kField);
  if (at == std::string_view::npos) return;
  uint32_t parts[3] = {0, 0, 0};
  size_t part = 0;
  for (size_t i = at + kField.size(); i < info.size() && part < 3; ++i) {
    const char c = info[i];
    if (c >= '0' && c <= '9') {
      parts[part] = parts[part] * 10 + static_cast<uint32_t>(c - '0');
    } else if (c == '.') {
      ++part;
    } else {
      break;
    }
  }
  const uint32_t v =
      std::min(parts[0], 255u) << 16 | std::min(parts[1], 255u) << 8 | std::min(parts[2], 255u);
  health_->server(index_).redis_version.store(v, std::memory_order_relaxed);
}

void ServerConnection::arm_timer() {
  if (timer_armed_) return;
  for (size_t i = 0; i < pending_.size(); ++i) {
    Pending& p = pending_[i];
    if (p.abandoned) continue;
    if (p.deadline == Clock::time_point::max()) return;  // timeout_ms 0: no request times out
    timer_armed_ = true;
    timer_.expires_at(p.deadline);
    timer_.async_wait(
        with_memory(shared_->timer, [this, alive = alive_](const asio::error_code& err) {
          if (!*alive || err == asio::error::operation_aborted) return;
          timer_armed_ = false;
          on_timer();
        }));
    return;
  }
}

void ServerConnection::on_timer() {
  worker_.tick();
  auto now = Clock::now();
  bool any = false;
  for (size_t i = 0; i < pending_.size(); ++i) {
    Pending& p = pending_[i];
    if (p.abandoned) continue;
    if (p.deadline > now) break;
    if (!any) LOG_WARN("backend %s: request timed out", address_.c_str());
    any = true;
    deliver_error(p, "timed out");
    ++counters_.server_timedout;
    p.abandoned = true;
    p.session.reset();
    ++abandoned_;
  }
  if (any && health_ != nullptr) health_->record_failure(index_, "request timed out");
  if (abandoned_ > kMaxAbandoned) {
    fail_all("is not answering");
    return;
  }
  arm_timer();
}

void ServerConnection::deliver_error(Pending& p, std::string_view why) {
  error_scratch_.assign(redis_ ? "-ERR dproxy: backend " : "SERVER_ERROR backend ");
  error_scratch_.append(address_);
  error_scratch_.push_back(' ');
  error_scratch_.append(why);
  error_scratch_.append("\r\n");
  ++counters_.forward_errors;
  p.session->on_backend_reply(p.slot, p.frag, error_scratch_, true);
}

void ServerConnection::fail_all(std::string_view why, bool failure) {
  worker_.tick();
  if (why.data() != last_error_.data()) last_error_.assign(why);
  if (failure) {
    if (health_ != nullptr) health_->record_failure(index_, why);
    if (why == "closed the connection")
      ++counters_.server_eof;
    else
      ++counters_.server_err;
  }
  if (state_ != State::kDisconnected)
    LOG_WARN("backend %s: %s", address_.c_str(), last_error_.c_str());
  state_ = State::kDisconnected;
  ++gen_;
  writing_ = false;
  writing_buf_.clear();
  close_socket();
  timer_.cancel();
  connect_timer_.cancel();
  timer_armed_ = false;
  out_.clear();
  unsent_ = 0;
  out_mark_ = 0;
  sent_bytes_ = 0;
  in_start_ = in_end_ = 0;
  abandoned_ = 0;
  setup_pending_ = 0;
  scan_state_ = {};
  mc_scan_state_ = {};
  if (retry_after_ < Clock::now()) {
    backoff_ = backoff_.count() == 0 ? kMinBackoff : std::min(backoff_ * 2, kMaxBackoff);
    retry_after_ = Clock::now() + backoff_;
  }
  // Move the queue out first: delivering may make sessions enqueue new requests on us.
  RingQueue<Pending> failed;
  std::swap(failed, pending_);
  std::string why_copy(last_error_);
  while (!failed.empty()) {
    Pending p = failed.pop_front();
    if (!p.abandoned) deliver_error(p, why_copy);
  }
  if (push_sink_ != nullptr) {
    PushSink* sink = push_sink_;
    push_sink_ = nullptr;  // once: the session lets the connection go
    sink->on_push_lost(push_id_, why_copy);
  }
}

void ServerConnection::add_stats(ServerStats& s) const {
  if (state_ == State::kConnected) ++s.server_connections;
  s.counters += counters_;
  s.in_queue += unsent_;
  s.in_queue_bytes += out_.size();
  s.out_queue += pending_.size() - std::min(pending_.size(), unsent_);
  s.out_queue_bytes += sent_bytes_;
  s.buffer_bytes += buffer_bytes();
}

size_t ServerConnection::buffer_bytes() const {
  return out_.capacity() + writing_buf_.capacity() + in_.capacity();
}

}  // namespace dproxy::core
