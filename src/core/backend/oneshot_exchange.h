#pragma once
// One request and its replies on a short-lived connection of its own: the prober's health check
// of a down server, a redis_cluster slot map query.

#include <asio.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/config.h"
#include "core/tls_context.h"

namespace dproxy::core {

// Connects to `endpoint`, writes `request`, reads `replies` (>= 1) replies (RESP, or memcached
// answers to `version`: VERSION ... or an error line), closes. Every reply before the last must be
// a success; the last one is handed over whole, success or error (the caller judges it). The
// exchange fails when it has not ended within `limit` or when more than `max_bytes` have been
// read. run() starts it; `done(outcome, text)` then runs exactly once, on the io_context (never
// within run()), as long as the io_context runs. The exchange keeps itself alive until then.
class OneshotExchange : public std::enable_shared_from_this<OneshotExchange> {
 public:
  enum class Outcome : uint8_t {
    kReply,       // text: the last reply
    kErrorReply,  // a reply before the last was an error; text: that reply
    kMalformed,   // the bytes are no reply; text: up to 80 of them, from the bad reply's start
    kFailed,      // text: "connect failed: ...", "write failed: ...", "read failed: ...",
                  // "no answer in time" or "reply too large"
  };
  using Done = std::function<void(Outcome, std::string_view)>;
  // The pool's server_tls: when `wanted`, the exchange runs over TLS with `contexts->connect`
  // (a failed handshake is kFailed, "TLS handshake failed: ..."); `host` is the server's host
  // (the certificate's expected name unless server_tls.server_name is set).
  struct Tls {
    bool wanted = false;
    std::shared_ptr<const PoolTls> contexts;
    std::string host;
    // Told whether the handshake succeeded (the stats count it); may be empty.
    std::function<void(bool ok)> on_handshake;
  };

  OneshotExchange(asio::io_context& io, asio::generic::stream_protocol::endpoint endpoint,
                  std::string request, uint32_t replies, Protocol protocol,
                  std::chrono::milliseconds limit, size_t max_bytes, Tls tls, Done done);
  void run();

 private:
  void send();
  void read();
  void scan();
  void finish(Outcome outcome, std::string_view text);

  asio::generic::stream_protocol::socket socket_;
  Tls tls_;
  std::unique_ptr<BackendTlsStream> stream_;  // TLS: owns the connected socket
  asio::steady_timer timer_;
  asio::generic::stream_protocol::endpoint endpoint_;
  std::string request_;
  uint32_t replies_;
  Protocol protocol_;
  std::chrono::milliseconds limit_;
  size_t max_bytes_;
  Done done_;
  std::vector<char> buf_;
  size_t start_ = 0;  // the first reply not yet scanned
  size_t end_ = 0;    // the bytes read
  bool finished_ = false;
};

}  // namespace dproxy::core
