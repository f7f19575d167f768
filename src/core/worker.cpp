#include "core/worker.h"

#include "core/log.h"
#include "core/pool_runtime.h"
#include "core/server_connection.h"

namespace dproxy::core {

Worker::Worker(unsigned index, const Config& config,
               const std::vector<std::vector<asio::generic::stream_protocol::endpoint>>& endpoints)
    : index_(index), work_(asio::make_work_guard(io_)) {
  for (size_t i = 0; i < config.pools.size(); ++i)
    pools_.push_back(std::make_unique<PoolRuntime>(*this, config.pools[i], endpoints[i]));
}

Worker::~Worker() {
  stop();
  join();
  // Backend connections go first: their pending records hold sessions.
  pools_.clear();
}

void Worker::start() {
  thread_ = std::thread([this] {
    io_.run();
    LOG_DEBUG("worker %u stopped", index_);
  });
}

void Worker::stop() {
  work_.reset();
  io_.stop();
}

void Worker::join() {
  if (thread_.joinable()) thread_.join();
}

void Worker::flush_dirty() {
  // NOTE: flushing can fail requests, which can make sessions queue more work (and call back
  // in here): the outermost call loops until nothing is dirty; nested calls return at once.
  if (flushing_now_) return;
  flushing_now_ = true;
  while (!dirty_.empty()) {
    flushing_.swap(dirty_);
    for (ServerConnection* c : flushing_) c->flush();
    flushing_.clear();
  }
  flushing_now_ = false;
}

}  // namespace dproxy::core
