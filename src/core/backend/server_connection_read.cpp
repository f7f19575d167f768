// ServerConnection's read side: the reply stream of a backend connection, matched to the
// pending requests in order (setup replies first, RESP3 pushes skipped or relayed), and the
// read buffer's growth and shrinking.

#include "core/backend/server_connection.h"
#include "core/log.h"
#include "core/read_hint.h"
#include "core/worker.h"
#include "protocol/memcache/reply_parser.h"

namespace dproxy::core {

namespace mc = protocol::memcache;

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

ServerConnection::Step ServerConnection::take_frame(std::string_view& frame) {
  std::string_view view(in_.data() + in_start_, in_end_ - in_start_);
  protocol::ParseResult r = protocol::resp::scan_reply(view, scan_state_, nullptr, nullptr);
  if (r.status == protocol::ParseStatus::kNeedMore) return Step::kMore;
  if (r.status == protocol::ParseStatus::kError) {
    fail_all("sent a malformed reply");
    return Step::kStop;
  }
  in_start_ += r.consumed;
  scan_state_ = {};
  frame = view.substr(0, r.consumed);
  return Step::kNext;
}

ServerConnection::Step ServerConnection::read_push() {
  // Subscriber mode: every frame goes to the session as it is.
  std::string_view frame;
  if (const Step step = take_frame(frame); step != Step::kNext) return step;
  ++counters_.responses;
  counters_.response_bytes += frame.size();
  push_sink_->on_push(push_id_, frame);
  // The session may have let this connection go (closed the client).
  return push_sink_ == nullptr ? Step::kStop : Step::kNext;
}

ServerConnection::Step ServerConnection::skip_push() {
  std::string_view frame;
  return take_frame(frame);
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

}  // namespace dproxy::core
