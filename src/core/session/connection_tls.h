#pragma once
// Connection's TLS state (internal to connection*.cpp).

#include <asio.hpp>

#include "core/handler_memory.h"
#include "core/session/connection.h"
#include "core/tls_context.h"

namespace dproxy::core {

struct Connection::Tls {
  Tls(asio::generic::stream_protocol::socket& socket, asio::ssl::context& context)
      : stream(socket, context), timer(socket.get_executor()) {}
  ClientTlsStream stream;
  asio::steady_timer timer;
  TlsHandlerMemory read_memory;
  TlsHandlerMemory write_memory;
  bool established = false;  // handshake done: counted in tls_connections
};

}  // namespace dproxy::core
