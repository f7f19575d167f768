#pragma once
// The stats listener: twemproxy's protocol (connect, read one JSON document) and a minimal HTTP
// server on the same port (GET /metrics: Prometheus text; GET /stats: the JSON). Runs on the
// main thread's io_context; the figures come from the workers through a StatsCollector.

#include <asio.hpp>
#include <string>

#include "core/config.h"
#include "core/worker.h"

namespace dproxy::core {

class StatsServer {
 public:
  StatsServer(asio::io_context& io, StatsCollector collector);
  ~StatsServer();
  // Binds and listens on `address`. On failure returns false with an error naming it.
  bool open(const ListenAddress& address, std::string& error);
  // The log line saying where it listens (after open; at start, once every listener opened).
  void log_listening() const;
  void close();
  bool is_open() const { return acceptor_.is_open(); }
  const ListenAddress& address() const { return address_; }

 private:
  void accept_next();

  asio::io_context& io_;
  StatsCollector collector_;
  asio::ip::tcp::acceptor acceptor_;
  ListenAddress address_;
};

}  // namespace dproxy::core
