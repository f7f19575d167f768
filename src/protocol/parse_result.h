#pragma once
// Result of one parser step. Parsers never throw and never allocate to report an error.

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace dproxy::protocol {

enum class ParseStatus : uint8_t {
  kOk,        // one complete frame was parsed; `consumed` bytes belong to it
  kNeedMore,  // the input holds no complete frame yet; call again with more bytes
  kError,     // a malformed frame; see `error`, `consumed`, `skip`, `close`
};

struct ParseResult {
  ParseStatus status = ParseStatus::kNeedMore;
  // kOk: size of the frame. kError: bytes of the input to drop (the bad frame's line).
  size_t consumed = 0;
  // kError only: further bytes to discard after `consumed` (e.g. the data block of an oversize
  // value). May be larger than what is buffered now; the caller discards them as they arrive.
  size_t skip = 0;
  // kError only: framing is lost; the caller sends `error` and then closes the connection.
  bool close = false;
  // kNeedMore: a hint of how many bytes the frame needs in total, 0 when unknown.
  size_t size_hint = 0;
  // kError only: the complete protocol error reply to send, including "\r\n".
  // NOTE: points at static storage, valid forever.
  std::string_view error;

  static ParseResult Ok(size_t n) { return {ParseStatus::kOk, n, 0, false, 0, {}}; }
  static ParseResult NeedMore(size_t hint = 0) {
    return {ParseStatus::kNeedMore, 0, 0, false, hint, {}};
  }
  static ParseResult Error(std::string_view err, size_t consumed, size_t skip = 0,
                           bool close = false) {
    return {ParseStatus::kError, consumed, skip, close, 0, err};
  }
};

}  // namespace dproxy::protocol
