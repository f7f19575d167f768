#pragma once
// A worker thread: one io_context, the sessions accepted onto it and its own backend connections.

#include <asio.hpp>
#include <atomic>
#include <memory>
#include <thread>
#include <unordered_map>
#include <vector>

#include "core/config.h"

namespace dproxy::core {

class ClientSession;
class PoolHealth;
class PoolRuntime;
class ServerConnection;

class Worker {
 public:
  Worker(unsigned index, const Config& config,
         const std::vector<std::unique_ptr<PoolHealth>>& health,
         const std::vector<std::vector<asio::generic::stream_protocol::endpoint>>& endpoints);
  ~Worker();

  asio::io_context& io() { return io_; }
  unsigned index() const { return index_; }
  PoolRuntime& pool(size_t i) { return *pools_[i]; }

  void start();
  void stop();
  void join();

  // Connections with bytes to send. They are flushed by one handler posted behind everything
  // the event loop has ready now, so the requests of every client served in this loop turn go
  // to each backend in one write.
  void mark_dirty(ServerConnection* c) {
    dirty_.push_back(c);
    if (!flush_posted_) {
      flush_posted_ = true;
      asio::post(io_, [this] {
        flush_posted_ = false;
        flush_dirty();
      });
    }
  }
  void flush_dirty();

  // Sessions register while their socket is open (worker thread only).
  void add_session(uint64_t id, std::weak_ptr<ClientSession> session);
  void remove_session(uint64_t id) { sessions_.erase(id); }
  // Graceful shutdown (worker thread): every session stops reading, finishes what it has in
  // flight, writes the replies and closes.
  void begin_drain();
  bool draining() const { return draining_; }
  // Worker thread: no open session and no request waiting for a backend.
  bool idle() const;
  // Written by the worker thread when asked, read by the main thread.
  std::atomic<bool> idle_report{false};

 private:
  unsigned index_;
  asio::io_context io_{1};
  asio::executor_work_guard<asio::io_context::executor_type> work_;
  std::vector<std::unique_ptr<PoolRuntime>> pools_;
  std::vector<ServerConnection*> dirty_;
  std::vector<ServerConnection*> flushing_;
  bool flushing_now_ = false;
  bool flush_posted_ = false;
  bool draining_ = false;
  std::unordered_map<uint64_t, std::weak_ptr<ClientSession>> sessions_;
  std::thread thread_;
};

}  // namespace dproxy::core
