#pragma once
// A front end whose client protocol differs from what its backends speak (memcached binary
// clients served over ASCII/meta backend connections) sees every reply as it leaves the queue.

#include <string>

#include "core/reply_slot.h"

namespace dproxy::core {

class ReplyTranslator {
 public:
  // `slot` leaves the reply queue in order; its reply goes to `out` in the client's protocol
  // (`out` is null when the reply is dropped: noreply, or the connection is closed).
  virtual void translate(const ReplySlot& slot, std::string* out) = 0;

 protected:
  ~ReplyTranslator() = default;
};

}  // namespace dproxy::core
