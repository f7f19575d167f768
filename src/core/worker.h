#pragma once
// A worker thread: one io_context, the sessions accepted onto it and its own backend connections.

#include <asio.hpp>
#include <memory>
#include <thread>
#include <vector>

#include "core/config.h"

namespace dproxy::core {

class PoolRuntime;
class ServerConnection;

class Worker {
 public:
  Worker(unsigned index, const Config& config,
         const std::vector<std::vector<asio::generic::stream_protocol::endpoint>>& endpoints);
  ~Worker();

  asio::io_context& io() { return io_; }
  unsigned index() const { return index_; }
  PoolRuntime& pool(size_t i) { return *pools_[i]; }

  void start();
  void stop();
  void join();

  // Connections with bytes to send; flushed once at the end of a processing batch.
  void mark_dirty(ServerConnection* c) { dirty_.push_back(c); }
  void flush_dirty();

 private:
  unsigned index_;
  asio::io_context io_{1};
  asio::executor_work_guard<asio::io_context::executor_type> work_;
  std::vector<std::unique_ptr<PoolRuntime>> pools_;
  std::vector<ServerConnection*> dirty_;
  std::vector<ServerConnection*> flushing_;
  bool flushing_now_ = false;
  std::thread thread_;
};

}  // namespace dproxy::core
