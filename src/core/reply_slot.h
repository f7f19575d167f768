#pragma once
// One client request's place in the session's reply order.

#include <cstdint>
#include <string>
#include <vector>

namespace dproxy::core {

// NOTE: slots are recycled by their session (strings and vectors keep their capacity), so a
// steady-state request reuses the memory of an earlier one. A slot is owned by its session and
// outlives every backend reference to it because pending backend records hold the session.
struct ReplySlot {
  enum class Kind : uint8_t {
    kReady,      // `data` is the complete reply (local answers, parse errors)
    kForward,    // one backend fragment; its reply is the client's reply
    kMultiGet,   // memcached get split over servers; merged in key order
    kBroadcast,  // sent to every server; "OK" only when all say OK (flush_all)
    kRespArray,  // Redis MGET split over servers: one array in key order
    kRespAllOk,  // Redis MSET split: +OK when every part says +OK
    kRespSum,    // Redis DEL/UNLINK/EXISTS/TOUCH split: the sum of the integer replies
  };
  Kind kind = Kind::kReady;
  bool noreply = false;      // drop the reply instead of sending it
  bool close_after = false;  // close the client connection once this reply is written
  bool done = false;         // `data` holds the final reply
  uint32_t outstanding = 0;  // backend fragments still expected
  size_t held = 0;           // reply bytes stored in this slot (counted against backpressure)
  std::string data;
  // kMultiGet / kBroadcast: per-fragment replies and whether each was an error.
  std::vector<std::string> frags;
  std::vector<uint8_t> frag_error;
  // kMultiGet: copy of the requested keys (concatenated) with each key's fragment, in order.
  // kRespArray: key_frag only.
  std::string keys;
  std::vector<uint32_t> key_len;
  std::vector<uint16_t> key_frag;

  void reset() {
    kind = Kind::kReady;
    noreply = close_after = done = false;
    outstanding = 0;
    held = 0;
    data.clear();
    for (auto& f : frags) f.clear();
    frag_error.clear();
    keys.clear();
    key_len.clear();
    key_frag.clear();
  }
};

}  // namespace dproxy::core
