#include "core/backend/oneshot_exchange.h"

#include <algorithm>

#include "protocol/memcache/reply_parser.h"
#include "protocol/resp/reply_parser.h"

namespace dproxy::core {

OneshotExchange::OneshotExchange(asio::io_context& io,
                                 asio::generic::stream_protocol::endpoint endpoint,
                                 std::string request, uint32_t replies, Protocol protocol,
                                 std::chrono::milliseconds limit, size_t max_bytes, Tls tls,
                                 Done done)
    : socket_(io),
      tls_(std::move(tls)),
      timer_(io),
      endpoint_(std::move(endpoint)),
      request_(std::move(request)),
      replies_(replies),
      protocol_(protocol),
      limit_(limit),
      max_bytes_(max_bytes),
      done_(std::move(done)) {}

void OneshotExchange::run() {
  timer_.expires_after(limit_);
  timer_.async_wait([self = shared_from_this()](const asio::error_code& ec) {
    if (!ec) self->finish(Outcome::kFailed, "no answer in time");
  });
  socket_.async_connect(endpoint_, [self = shared_from_this()](const asio::error_code& ec) {
    if (ec) return self->finish(Outcome::kFailed, "connect failed: " + ec.message());
    if (!self->tls_.wanted) return self->send();
    const PoolTls* contexts = self->tls_.contexts.get();
    if (contexts == nullptr || !contexts->connect)
      return self->finish(Outcome::kFailed, "TLS handshake failed: no TLS context");
    self->stream_ =
        std::make_unique<BackendTlsStream>(std::move(self->socket_), *contexts->connect);
    prepare_backend_ssl(self->stream_->native_handle(), *contexts, self->tls_.host);
    self->stream_->async_handshake(
        asio::ssl::stream_base::client, [self](const asio::error_code& err) {
          if (self->tls_.on_handshake) self->tls_.on_handshake(!err);
          if (err)
            return self->finish(
                Outcome::kFailed,
                "TLS handshake failed: " + tls_error_text(err, self->stream_->native_handle()));
          self->send();
        });
  });
}

void OneshotExchange::send() {
  auto done = [self = shared_from_this()](const asio::error_code& err, size_t) {
    if (err) return self->finish(Outcome::kFailed, "write failed: " + err.message());
    self->read();
  };
  if (stream_) {
    asio::async_write(*stream_, asio::buffer(request_), std::move(done));
  } else {
    asio::async_write(socket_, asio::buffer(request_), std::move(done));
  }
}

void OneshotExchange::read() {
  if (buf_.size() - end_ < 4096) buf_.resize(std::max<size_t>(buf_.size() * 2, 16384));
  auto done = [self = shared_from_this()](const asio::error_code& ec, size_t n) {
    if (ec) return self->finish(Outcome::kFailed, "read failed: " + ec.message());
    self->end_ += n;
    self->scan();
  };
  auto buffer = asio::buffer(buf_.data() + end_, buf_.size() - end_);
  if (stream_) {
    stream_->async_read_some(buffer, std::move(done));
  } else {
    socket_.async_read_some(buffer, std::move(done));
  }
}

void OneshotExchange::scan() {
  while (true) {
    std::string_view view(buf_.data() + start_, end_ - start_);
    bool is_error = false;
    protocol::ParseResult r = protocol_ == Protocol::kRedis
                                  ? protocol::resp::scan_reply(view, &is_error)
                                  : protocol::memcache::scan_reply(
                                        view, protocol::memcache::ReplyKind::kVersion, &is_error);
    if (r.status == protocol::ParseStatus::kNeedMore) break;
    if (r.status == protocol::ParseStatus::kError) {
      return finish(Outcome::kMalformed, view.substr(0, 80));
    }
    std::string_view reply = view.substr(0, r.consumed);
    if (--replies_ == 0) return finish(Outcome::kReply, reply);
    if (is_error) return finish(Outcome::kErrorReply, reply);
    start_ += r.consumed;
  }
  if (end_ > max_bytes_) return finish(Outcome::kFailed, "reply too large");
  read();
}

void OneshotExchange::finish(Outcome outcome, std::string_view text) {
  if (finished_) return;
  finished_ = true;
  timer_.cancel();
  asio::error_code ignored;
  socket_.close(ignored);
  if (stream_) stream_->next_layer().close(ignored);
  done_(outcome, text);
}

}  // namespace dproxy::core
