#include "core/worker.h"

#include "core/client_session.h"
#include "core/log.h"
#include "core/pool_runtime.h"
#include "core/server_connection.h"

namespace dproxy::core {

Worker::Worker(unsigned index, const Config& config,
               const std::vector<std::unique_ptr<PoolHealth>>& health,
               const std::vector<std::vector<asio::generic::stream_protocol::endpoint>>& endpoints)
    : index_(index), work_(asio::make_work_guard(io_)) {
  for (size_t i = 0; i < config.pools.size(); ++i)
    pools_.push_back(
        std::make_unique<PoolRuntime>(*this, config.pools[i], *health[i], endpoints[i]));
}

void Worker::add_session(uint64_t id, std::weak_ptr<ClientSession> session) {
  sessions_.emplace(id, std::move(session));
  if (draining_) {
    if (auto s = sessions_[id].lock()) s->begin_drain();
  }
}

void Worker::begin_drain() {
  draining_ = true;
  // Copy first: draining a session may close it, which removes it from the map.
  std::vector<std::shared_ptr<ClientSession>> live;
  for (auto& [id, weak] : sessions_) {
    if (auto s = weak.lock()) live.push_back(std::move(s));
  }
  for (auto& s : live) s->begin_drain();
}

bool Worker::idle() const {
  if (!sessions_.empty()) return false;
  for (const auto& pool : pools_) {
    if (pool->pending() > 0) return false;
  }
  return true;
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
