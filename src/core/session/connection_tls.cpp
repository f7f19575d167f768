// Connection's TLS part (see connection.h): the handshake, reads and writes over the TLS stream.
// NOTE: a translation unit of its own: instantiating Asio's SSL operations next to the plaintext
// socket operations changed GCC's inlining of the latter (callgrind: +4% instructions per
// unpipelined plaintext request); apart, the plaintext path compiles as before.

#include "core/session/connection_tls.h"

#include <cstring>

#include "core/log.h"
#include "core/session/connection.h"
#include "core/tls_context.h"
#include "core/worker.h"

namespace dproxy::core {

namespace {
// A client that has not finished its TLS handshake by then is closed.
constexpr std::chrono::seconds kTlsHandshakeTimeout{10};
}  // namespace

void Connection::tls_closed() {
  if (!tls_->established) return;
  tls_->established = false;
  --slot_.counters.tls_connections;
}

std::string Connection::peer_name() const {
  asio::error_code ec;
  const auto peer = socket_.remote_endpoint(ec);
  if (ec) return "(unknown peer)";
  if (peer.protocol().family() == AF_INET || peer.protocol().family() == AF_INET6) {
    asio::ip::tcp::endpoint tcp;
    tcp.resize(peer.size());
    std::memcpy(tcp.data(), peer.data(), peer.size());
    if (tcp.address().is_v6())
      return "[" + tcp.address().to_string() + "]:" + std::to_string(tcp.port());
    return tcp.address().to_string() + ":" + std::to_string(tcp.port());
  }
  return "unix socket client";
}

void Connection::start_handshake() {
  // The certificates of the last (re)load: a reload applies to the connections accepted after it.
  tls_ = std::make_unique<Tls>(socket_, *slot_.tls->accept);
  keep_tls_buffers(tls_->stream.native_handle());
  reading_ = true;  // no read until the handshake is done
  tls_->timer.expires_after(kTlsHandshakeTimeout);
  tls_->timer.async_wait([self = shared_from_this()](const asio::error_code& ec) {
    if (ec || self->closed_ || self->tls_->established) return;
    ++self->slot_.counters.tls_handshake_failures;
    LOG_WARN("pool %s: client %s: TLS handshake failed: no handshake within %lld s; closed",
             self->slot_.name.c_str(), self->peer_name().c_str(),
             static_cast<long long>(kTlsHandshakeTimeout.count()));
    self->close();
  });
  tls_->stream.async_handshake(
      asio::ssl::stream_base::server,
      with_memory(tls_->read_memory, [self = shared_from_this()](const asio::error_code& ec) {
        self->reading_ = false;
        self->tls_->timer.cancel();
        if (self->closed_) return;
        if (ec) {
          ++self->slot_.counters.tls_handshake_failures;
          LOG_WARN("pool %s: client %s: TLS handshake failed: %s; closed", self->slot_.name.c_str(),
                   self->peer_name().c_str(),
                   tls_client_error_text(ec, self->tls_->stream.native_handle()).c_str());
          self->close();
          return;
        }
        self->tls_->established = true;
        ++self->slot_.counters.tls_handshakes;
        ++self->slot_.counters.tls_connections;
        // Decrypted bytes may already wait inside the stream: read at once, not after a
        // readiness wait on the socket.
        self->rbuf_.resize(kInitialReadBuffer);
        self->start_read();
      }));
}

void Connection::tls_read() {
  tls_->stream.async_read_some(
      asio::buffer(rbuf_.data() + rend_, rbuf_.size() - rend_),
      with_memory(
          tls_->read_memory, [self = shared_from_this()](const asio::error_code& ec, size_t n) {
            // A client that closes without close_notify (most do): a plain EOF.
            self->on_read(is_tls_truncation(ec) ? asio::error_code(asio::error::eof) : ec, n);
          }));
}

void Connection::tls_write() {
  asio::async_write(tls_->stream, asio::buffer(writing_buf_),
                    with_memory(tls_->write_memory,
                                [self = shared_from_this()](const asio::error_code& ec, size_t) {
                                  self->writing_ = false;
                                  self->worker_.reply_buffers().give(self->writing_buf_);
                                  if (ec) {
                                    ++self->slot_.counters.client_err;
                                    self->close();
                                    return;
                                  }
                                  self->drain();
                                }));
}

}  // namespace dproxy::core
