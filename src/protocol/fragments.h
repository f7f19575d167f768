#pragma once
// The replies of one split or broadcast request, as a merge unit reads them.

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

namespace dproxy::protocol {

// One reply per fragment, in fragment order (fragment f = the f-th server a request went to).
// Views only: the caller keeps the bytes alive for the duration of the merge.
struct Fragments {
  std::span<const std::string_view> replies;
  // errors[f] != 0: fragment f failed (the backend's error reply, or dproxy's error line for a
  // failed backend); its reply is then passed on as the whole reply. Same size as `replies`.
  std::span<const uint8_t> errors;
  // The scan marks of each fragment's reply (memcache / resp scan_reply `marks`), for the merges
  // in key order; may be empty (then a merge that can use them falls back to reading the bytes).
  std::span<const std::span<const size_t>> marks;

  size_t size() const { return replies.size(); }
  // The first failed fragment, or size() when none failed.
  size_t first_error() const {
    for (size_t f = 0; f < errors.size(); ++f) {
      if (errors[f] != 0) return f;
    }
    return size();
  }
};

}  // namespace dproxy::protocol
