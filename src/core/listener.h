#pragma once
// Accepts a pool's client connections and hands them, round robin, to the worker threads.

#include <asio.hpp>
#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "core/config.h"

namespace dproxy::core {

class Worker;
struct PoolClients;

class Listener {
 public:
  // `pool_id`: the pool's id on every worker (installed there before start()).
  Listener(asio::io_context& io, size_t pool_id, std::shared_ptr<const PoolConfig> pool,
           PoolClients& clients, std::vector<std::unique_ptr<Worker>>& workers);
  ~Listener();
  // Binds and listens. On failure returns false with an error naming the address.
  bool open(std::string& error);
  void start();
  bool started() const { return started_; }
  void close();
  // Config reload with the same listen address: new limits apply to the next connection.
  void set_config(std::shared_ptr<const PoolConfig> pool);
  const ListenAddress& address() const { return pool_->listen; }

 private:
  void accept_next();

  asio::io_context& io_;
  size_t pool_id_;
  std::shared_ptr<const PoolConfig> pool_;
  ListenAddress bound_;  // the address actually bound (kept when the config changes)
  PoolClients& clients_;
  std::string too_many_;  // the error a connection over client_connections gets
  std::vector<std::unique_ptr<Worker>>& workers_;
  asio::basic_socket_acceptor<asio::generic::stream_protocol> acceptor_;
  asio::generic::stream_protocol protocol_{AF_INET, 0};  // of the bound endpoint
  size_t next_worker_ = 0;
  // Session ids are unique over every listener (workers key their sessions by id). Listeners
  // accept on the main thread only.
  static inline uint64_t next_id_ = 1;
  bool unlink_on_close_ = false;
  bool started_ = false;
};

}  // namespace dproxy::core
