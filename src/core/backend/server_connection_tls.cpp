// ServerConnection's TLS part (server_tls pools): the handshake, reads and writes over the TLS
// stream that owns the connected socket.
// NOTE: a translation unit of its own, so that Asio's SSL operations do not change how GCC
// inlines the plaintext socket operations of server_connection.cpp (see connection_tls.cpp).

#include "core/backend/server_connection.h"
#include "core/worker.h"

namespace dproxy::core {

void ServerConnection::start_handshake(uint64_t gen) {
  const PoolTls* contexts =
      pool_slot_ != nullptr && pool_slot_->tls ? pool_slot_->tls.get() : nullptr;
  if (contexts == nullptr || !contexts->connect) {
    connect_timer_.cancel();
    fail_all("TLS handshake failed: no TLS context");
    return;
  }
  if (!shared_->tls_read) {
    shared_->tls_read = std::make_unique<TlsHandlerMemory>();
    shared_->tls_write = std::make_unique<TlsHandlerMemory>();
  }
  // The stream takes the connected socket (and the current certificates: a reload since the
  // last connection applies from here on).
  tls_ = std::make_shared<BackendTlsStream>(std::move(socket_), *contexts->connect);
  socket_ = asio::generic::stream_protocol::socket(worker_.io());
  prepare_backend_ssl(tls_->native_handle(), *contexts, host_);
  keep_tls_buffers(tls_->native_handle());
  tls_->async_handshake(asio::ssl::stream_base::client,
                        [this, alive = alive_, gen, tls = tls_](const asio::error_code& err) {
                          if (!*alive || gen != gen_) return;
                          connect_timer_.cancel();
                          if (err) {
                            if (err == asio::error::operation_aborted) return;
                            const std::string why = tls_error_text(err, tls->native_handle());
                            if (pool_slot_ != nullptr)
                              ++pool_slot_->counters.server_tls_handshake_failures;
                            fail_all("TLS handshake failed: " + why);
                            return;
                          }
                          if (pool_slot_ != nullptr) {
                            ++pool_slot_->counters.server_tls_handshakes;
                            ++pool_slot_->counters.server_tls_connections;
                            tls_counted_ = true;
                          }
                          on_connected();
                        });
}

void ServerConnection::tls_write_buffer() {
  asio::async_write(*tls_, asio::buffer(writing_buf_),
                    with_memory(*shared_->tls_write, [this, alive = alive_, gen = gen_, tls = tls_](
                                                         const asio::error_code& err, size_t) {
                      if (!*alive || gen != gen_) return;
                      on_written(err);
                    }));
}

void ServerConnection::tls_start_read() {
  read_queued_ = false;  // the read hint is about the raw socket: not used under TLS
  tls_->async_read_some(
      asio::buffer(in_.data() + in_end_, in_.size() - in_end_),
      with_memory(*shared_->tls_read, [this, alive = alive_, gen = gen_, tls = tls_](
                                          const asio::error_code& err, size_t n) {
        if (!*alive || gen != gen_) return;
        if (err) {
          // A server that closes without close_notify: the same as a plain EOF.
          on_read_failed(is_tls_truncation(err) ? asio::error_code(asio::error::eof) : err);
          return;
        }
        on_read(n);
      }));
}

}  // namespace dproxy::core
