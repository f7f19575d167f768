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

}  // namespace dproxy::core
