#pragma once
// A pool's TLS contexts (OpenSSL 3 through Asio's SSL support), built from its "tls" and
// "server_tls" settings at start and on every reload, and the per-connection helpers.
//
// NOTE: an SSL_CTX is shared read-only by the worker threads once built (OpenSSL allows
// SSL_new on a shared context from any thread); a reload builds new contexts and hands them to
// the workers, so connections made afterwards use the new certificates while established ones
// keep theirs (each SSL holds a reference to the context it was made from).

#include <asio.hpp>
#include <asio/ssl.hpp>
#include <memory>
#include <string>
#include <string_view>

#include "core/config.h"

namespace dproxy::core {

// The TLS stream of a client connection (over the connection's own socket) and of a backend
// connection (owning the connected socket).
using ClientTlsStream = asio::ssl::stream<asio::generic::stream_protocol::socket&>;
using BackendTlsStream = asio::ssl::stream<asio::generic::stream_protocol::socket>;

struct PoolTls {
  std::shared_ptr<asio::ssl::context> accept;   // towards clients; null: plaintext listener
  std::shared_ptr<asio::ssl::context> connect;  // towards servers; null: plaintext backends
  std::string server_name;                      // server_tls.server_name
  bool verify = true;                           // server_tls.verify
};

// Builds `pool`'s contexts (null when neither side uses TLS). On failure returns false and sets
// `error` to one line naming the key and the file, e.g.
//   pools.web.tls.key: /etc/dproxy/proxy.key: does not match the certificate of tls.cert
bool load_pool_tls(const PoolConfig& pool, std::shared_ptr<const PoolTls>& out, std::string& error);

// Before a backend handshake: SNI and the name (or IP address) the server's certificate must
// hold: server_tls.server_name when given, else `host` (the server's configured host).
void prepare_backend_ssl(SSL* ssl, const PoolTls& tls, const std::string& host);

// Asio's SSL engine sets SSL_MODE_RELEASE_BUFFERS: OpenSSL then frees its record buffers
// whenever they are empty and allocates them again for the next record, two heap allocations
// of about 17 KB per request. A data connection keeps them instead (about 34 KB per TLS
// connection), so the TLS data path makes no per-request buffer allocation.
inline void keep_tls_buffers(SSL* ssl) {
  SSL_clear_mode(ssl, SSL_MODE_RELEASE_BUFFERS);
}

// A handshake error as one short text: OpenSSL's reason (and the certificate check's when that
// failed), e.g. "certificate verify failed (certificate has expired)", "wrong version number".
std::string tls_error_text(const asio::error_code& ec, SSL* ssl);
// The same for a client's failed handshake, saying so when the bytes were no TLS at all
// ("wrong version number (plaintext on a TLS listener?)").
std::string tls_client_error_text(const asio::error_code& ec, SSL* ssl);

// True for a TLS read that ended because the peer closed the TCP connection without a TLS
// close_notify (most clients do): treated like a clean end of input.
inline bool is_tls_truncation(const asio::error_code& ec) {
  return ec == asio::ssl::error::stream_truncated;
}

}  // namespace dproxy::core
