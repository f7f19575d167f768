#include "core/tls_context.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

namespace dproxy::core {

namespace {

// OpenSSL's reason for the last error of this thread's queue (emptied), or `fallback`.
std::string openssl_reason(const char* fallback) {
  unsigned long e = 0;
  unsigned long last = 0;
  while ((e = ERR_get_error()) != 0) last = e;
  if (last == 0) return fallback;
  const char* reason = ERR_reason_error_string(last);
  return reason != nullptr ? reason : fallback;
}

// The settings both sides share: protocol floor and cipher lists.
bool apply_common(SSL_CTX* ctx, const TlsConfig& t, const std::string& p, std::string& error) {
  const int floor = t.min_version == "1.3" ? TLS1_3_VERSION : TLS1_2_VERSION;
  if (SSL_CTX_set_min_proto_version(ctx, floor) != 1) {
    error = p + ".min_version: " + openssl_reason("not supported");
    return false;
  }
  if (!t.ciphers.empty() && SSL_CTX_set_cipher_list(ctx, t.ciphers.c_str()) != 1) {
    error = p + ".ciphers: \"" + t.ciphers + "\": " + openssl_reason("no cipher matches");
    return false;
  }
  if (!t.ciphersuites.empty() && SSL_CTX_set_ciphersuites(ctx, t.ciphersuites.c_str()) != 1) {
    error = p + ".ciphersuites: \"" + t.ciphersuites + "\": " + openssl_reason("no suite matches");
    return false;
  }
  // Established connections do not renegotiate; session tickets are fine (stateless).
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION);
  return true;
}

// Certificate chain and key, checked against each other.
bool load_identity(asio::ssl::context& ctx, const TlsConfig& t, const std::string& p,
                   std::string& error) {
  if (t.cert.empty()) return true;
  asio::error_code ec;
  ERR_clear_error();
  ctx.use_certificate_chain_file(t.cert, ec);
  if (ec) {
    error = p + ".cert: " + t.cert + ": cannot load the certificate (" +
            openssl_reason(ec.message().c_str()) + ")";
    return false;
  }
  ctx.use_private_key_file(t.key, asio::ssl::context::pem, ec);
  if (ec) {
    // OpenSSL checks the key against the certificate as it loads it.
    const bool mismatch =
        ec.category() == asio::error::get_ssl_category() &&
        ERR_GET_REASON(static_cast<unsigned long>(ec.value())) == X509_R_KEY_VALUES_MISMATCH;
    const std::string reason = openssl_reason(ec.message().c_str());
    error = mismatch ? p + ".key: " + t.key + ": does not match the certificate of " + t.cert
                     : p + ".key: " + t.key + ": cannot load the private key (" + reason + ")";
    return false;
  }
  if (SSL_CTX_check_private_key(ctx.native_handle()) != 1) {
    ERR_clear_error();
    error = p + ".key: " + t.key + ": does not match the certificate of " + t.cert;
    return false;
  }
  return true;
}

bool load_ca(asio::ssl::context& ctx, const TlsConfig& t, const std::string& p,
             std::string& error) {
  asio::error_code ec;
  ERR_clear_error();
  ctx.load_verify_file(t.ca, ec);
  if (ec) {
    error = p + ".ca: " + t.ca + ": cannot load the CA certificates (" +
            openssl_reason(ec.message().c_str()) + ")";
    return false;
  }
  return true;
}

std::shared_ptr<asio::ssl::context> make_accept(const PoolConfig& pool, std::string& error) {
  const TlsConfig& t = pool.tls;
  const std::string p = "pools." + pool.name + ".tls";
  auto ctx = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_server);
  if (!apply_common(ctx->native_handle(), t, p, error) || !load_identity(*ctx, t, p, error))
    return nullptr;
  if (!t.ca.empty() && !load_ca(*ctx, t, p, error)) return nullptr;
  if (t.verify) {
    // The CA names are sent in the CertificateRequest so clients can pick their certificate.
    STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(t.ca.c_str());
    if (names != nullptr) SSL_CTX_set_client_CA_list(ctx->native_handle(), names);
    ERR_clear_error();
    asio::error_code ec;
    ctx->set_verify_mode(asio::ssl::verify_peer | asio::ssl::verify_fail_if_no_peer_cert, ec);
  }
  // Resumed sessions skip the certificate exchange: keep them to this pool's context.
  const std::string id = "dproxy:" + pool.name;
  SSL_CTX_set_session_id_context(ctx->native_handle(),
                                 reinterpret_cast<const unsigned char*>(id.data()),
                                 static_cast<unsigned>(std::min<size_t>(id.size(), 32)));
  return ctx;
}

std::shared_ptr<asio::ssl::context> make_connect(const PoolConfig& pool, std::string& error) {
  const TlsConfig& t = pool.server_tls;
  const std::string p = "pools." + pool.name + ".server_tls";
  auto ctx = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_client);
  if (!apply_common(ctx->native_handle(), t, p, error) || !load_identity(*ctx, t, p, error))
    return nullptr;
  if (!t.ca.empty()) {
    if (!load_ca(*ctx, t, p, error)) return nullptr;
  } else if (t.verify) {
    asio::error_code ec;
    ctx->set_default_verify_paths(ec);
  }
  asio::error_code ec;
  ctx->set_verify_mode(t.verify ? asio::ssl::verify_peer : asio::ssl::verify_none, ec);
  return ctx;
}

}  // namespace

bool load_pool_tls(const PoolConfig& pool, std::shared_ptr<const PoolTls>& out,
                   std::string& error) {
  out.reset();
  if (!pool.tls.enabled && !pool.server_tls.enabled) return true;
  auto tls = std::make_shared<PoolTls>();
  if (pool.tls.enabled && !(tls->accept = make_accept(pool, error))) return false;
  if (pool.server_tls.enabled && !(tls->connect = make_connect(pool, error))) return false;
  tls->server_name = pool.server_tls.server_name;
  tls->verify = pool.server_tls.verify;
  out = std::move(tls);
  return true;
}

void prepare_backend_ssl(SSL* ssl, const PoolTls& tls, const std::string& host) {
  const std::string& name = tls.server_name.empty() ? host : tls.server_name;
  asio::error_code ec;
  asio::ip::make_address(name, ec);
  const bool is_ip = !ec;
  // SNI carries host names only (RFC 6066).
  if (!is_ip && !name.empty()) SSL_set_tlsext_host_name(ssl, name.c_str());
  if (!tls.verify || name.empty()) return;
  if (is_ip) {
    X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name.c_str());
  } else {
    SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    SSL_set1_host(ssl, name.c_str());
  }
}

std::string tls_error_text(const asio::error_code& ec, SSL* ssl) {
  std::string text;
  if (ec.category() == asio::error::get_ssl_category()) {
    const char* reason = ERR_reason_error_string(static_cast<unsigned long>(ec.value()));
    text = reason != nullptr ? reason : ec.message();
  } else if (ec == asio::ssl::error::stream_truncated || ec == asio::error::eof) {
    text = "connection closed during the handshake";
  } else {
    text = ec.message();
  }
  if (ssl != nullptr) {
    const long v = SSL_get_verify_result(ssl);
    if (v != X509_V_OK) text += std::string(" (") + X509_verify_cert_error_string(v) + ")";
  }
  return text;
}

std::string tls_client_error_text(const asio::error_code& ec, SSL* ssl) {
  std::string text = tls_error_text(ec, ssl);
  if (ec.category() == asio::error::get_ssl_category()) {
    switch (ERR_GET_REASON(static_cast<unsigned long>(ec.value()))) {
      case SSL_R_WRONG_VERSION_NUMBER:
      case SSL_R_HTTP_REQUEST:
      case SSL_R_HTTPS_PROXY_REQUEST:
      case SSL_R_UNKNOWN_PROTOCOL:
      case SSL_R_PACKET_LENGTH_TOO_LONG:
      case SSL_R_RECORD_LENGTH_MISMATCH:
        text += " (plaintext on a TLS listener?)";
        break;
      default:
        break;
    }
  }
  return text;
}

}  // namespace dproxy::core
