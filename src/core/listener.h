#pragma once
// Accepts a pool's client connections and hands them, round robin, to the worker threads.

#include <asio.hpp>
#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "core/config.h"

namespace dproxy::core {

class PoolHealth;
class Worker;

class Listener {
 public:
  Listener(asio::io_context& io, size_t pool_index, const PoolConfig& pool, PoolHealth& health,
           std::vector<std::unique_ptr<Worker>>& workers);
  ~Listener();
  // Binds and listens. On failure returns false with an error naming the address.
  bool open(std::string& error);
  void start();
  void close();

 private:
  void accept_next();

  asio::io_context& io_;
  size_t pool_index_;
  const PoolConfig& pool_;
  PoolHealth& health_;
  std::string too_many_;  // the error a connection over client_connections gets
  std::vector<std::unique_ptr<Worker>>& workers_;
  asio::basic_socket_acceptor<asio::generic::stream_protocol> acceptor_;
  size_t next_worker_ = 0;
  uint64_t next_id_ = 1;
  bool unlink_on_close_ = false;
};

}  // namespace dproxy::core
