#pragma once
// What the backend side sees of a client session: one narrow callback interface.

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "core/reply_slot.h"

namespace dproxy::core {

// Implemented by the client session. Backend connections (ServerConnection) and the Redis
// Cluster runtime hold a shared_ptr<ReplySink> per pending request and call back through it;
// they know nothing else of sessions.
// NOTE: a pending record's shared_ptr keeps the sink (and so `slot`) alive until the callback.
class ReplySink {
 public:
  // The reply (or, with is_error and a failed backend, an error line of dproxy's) for fragment
  // `frag` of `slot`. `bytes` is only valid during the call. `marks`: where a multi-get
  // fragment's items are (the backend's reply scan noted them), or empty.
  virtual void on_backend_reply(ReplySlot* slot, uint16_t frag, std::string_view bytes,
                                bool is_error, std::span<const size_t> marks = {}) = 0;
  // redis_cluster pools: re-send fragment `frag` of `slot` (after a TRYAGAIN / CLUSTERDOWN
  // backoff), called by the worker's ClusterRuntime.
  virtual void cluster_retry(ReplySlot* slot, uint16_t frag) = 0;

 protected:
  ~ReplySink() = default;
};

// Implemented by a client session that subscribed (Redis pub/sub): its subscriber connections
// deliver every frame the server sends, with no request/reply matching.
// NOTE: held as a plain pointer; the session clears it before it lets the connection go.
class PushSink {
 public:
  // One complete frame from subscriber connection `id` (a subscription confirmation, a message,
  // a PONG). `frame` is only valid during the call.
  virtual void on_push(uint32_t id, std::string_view frame) = 0;
  // Subscriber connection `id` failed (its subscriptions are gone).
  virtual void on_push_lost(uint32_t id, std::string_view why) = 0;

 protected:
  ~PushSink() = default;
};

}  // namespace dproxy::core
