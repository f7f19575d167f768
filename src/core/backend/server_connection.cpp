// ServerConnection: connecting, writing, timeouts and failure. The read side (replies, setup
// replies, RESP3 pushes) is in server_connection_read.cpp, TLS in server_connection_tls.cpp.

#include "core/backend/server_connection.h"

#include "core/log.h"
#include "core/read_hint.h"
#include "core/worker.h"
#include "protocol/memcache/reply_parser.h"

namespace dproxy::core {

using Clock = std::chrono::steady_clock;
namespace mc = protocol::memcache;

namespace {
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
