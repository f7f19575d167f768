#pragma once
// memcached ASCII commands known to dproxy.

#include <cstdint>
#include <string_view>

namespace dproxy::protocol::memcache {

enum class Command : uint16_t {
  kGet,
  kGets,
  kGat,
  kGats,
  kSet,
  kAdd,
  kReplace,
  kAppend,
  kPrepend,
  kCas,
  kDelete,
  kIncr,
  kDecr,
  kTouch,
  kVersion,
  kQuit,
  kFlushAll,
  kVerbosity,
  kUnsupported,  // a real memcached command dproxy does not proxy (stats, meta commands, ...)
};

// The shape of the backend reply a command expects.
enum class ReplyKind : uint8_t {
  kRetrieval,  // zero or more "VALUE ..." items then "END", or one error line
  kLine,       // exactly one line (STORED, DELETED, a number, OK, VERSION x, an error ...)
};

inline ReplyKind reply_kind(Command c) {
  switch (c) {
    case Command::kGet:
    case Command::kGets:
    case Command::kGat:
    case Command::kGats:
      return ReplyKind::kRetrieval;
    default:
      return ReplyKind::kLine;
  }
}

}  // namespace dproxy::protocol::memcache
