#pragma once
// Idle dedicated backend connections of one pool on one worker thread, kept for reuse (a worker
// looping on BLPOP takes the same connection back instead of connecting per call).

#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

#include "core/backend/server_connection.h"

namespace dproxy::core {

class DedicatedIdle {
 public:
  // At most this many idle connections are kept per pool and worker thread; more are closed.
  static constexpr size_t kMaxIdle = 16;

  // An idle connection to `address` in database `db` (-1: the pool's own) speaking RESP3 or
  // not (`resp3`: its setup said HELLO 3), or null.
  std::unique_ptr<ServerConnection> take(std::string_view address, int32_t db, bool resp3 = false) {
    for (size_t i = idle_.size(); i-- > 0;) {
      if (idle_[i].db == db && idle_[i].resp3 == resp3 && idle_[i].conn->address() == address) {
        auto c = std::move(idle_[i].conn);
        idle_.erase(idle_.begin() + static_cast<std::ptrdiff_t>(i));
        return c;
      }
    }
    return nullptr;
  }
  // Keeps `c` (no request in flight) for reuse; false when full, or when `c` was taken or made
  // under an older configuration of the pool (`generation`), and the caller closes it.
  bool put(std::unique_ptr<ServerConnection>& c, int32_t db, bool resp3, uint64_t generation) {
    if (idle_.size() >= kMaxIdle || c->busy() || generation != generation_) return false;
    idle_.push_back(Entry{db, resp3, std::move(c)});
    return true;
  }
  size_t size() const { return idle_.size(); }
  size_t buffer_bytes() const {
    size_t n = 0;
    for (const auto& e : idle_) n += e.conn->buffer_bytes();
    return n;
  }
  void clear() { idle_.clear(); }
  // A reload replaced the pool's configuration: the idle connections were made with the old
  // one (its db, server_password, server_tls), so they go, and so do held ones when given back.
  void renew() {
    idle_.clear();
    ++generation_;
  }
  uint64_t generation() const { return generation_; }

 private:
  struct Entry {
    int32_t db;
    bool resp3;
    std::unique_ptr<ServerConnection> conn;
  };
  std::vector<Entry> idle_;
  uint64_t generation_ = 0;
};

}  // namespace dproxy::core
