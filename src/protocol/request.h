#pragma once
// Protocol-neutral view of one parsed client frame.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace dproxy::protocol {

// Request flags (bit set).
enum RequestFlag : uint32_t {
  kFlagRead = 1u << 0,         // reads data (get, GET, ...)
  kFlagWrite = 1u << 1,        // changes data (set, delete, SET, ...)
  kFlagNoreply = 1u << 2,      // memcached noreply: the client expects no reply at all
  kFlagMultiKey = 1u << 3,     // may be split per server and merged (get k1 k2 ...)
  kFlagBroadcast = 1u << 4,    // goes to every server of the pool (flush_all)
  kFlagLocal = 1u << 5,        // answered by dproxy itself (version, verbosity, PING ...)
  kFlagQuit = 1u << 6,         // close the connection after the replies before it are sent
  kFlagRejected = 1u << 7,     // known command that cannot work through the proxy
  kFlagHasData = 1u << 8,      // frame carries a data block (memcached storage commands)
  kFlagMeta = 1u << 9,         // memcached: the frame is a meta command (mg/ms/md/ma, sent for a
                               // binary client); its reply is a meta reply
  kFlagQuiet = 1u << 10,       // memcached meta flag q: sent followed by "mn" so that the server
                               // always answers; what it leaves out stays out
  kFlagCompareCas = 1u << 11,  // memcached meta flag C: compares a cas value (as `cas` does)
};

// NOTE: every string_view here points into the caller's read buffer and is valid only until
// that buffer is consumed or compacted. A Request object is meant to be reused: the parser
// clears `keys` without releasing its capacity, so steady-state parsing does not allocate.
struct Request {
  std::string_view frame;  // the whole frame, including any data block and trailing CRLF
  std::string_view name;   // the command name as sent by the client
  uint16_t command = 0;    // protocol-specific command id (e.g. memcache::Command)
  uint32_t flags = 0;      // RequestFlag bits
  std::vector<std::string_view> keys;
  // RESP: every argument of the command, args[0] being the command name. Unused by memcached.
  std::vector<std::string_view> args;
  // memcached: the " noreply" token (with its leading space) inside `frame`, empty if absent.
  // Forwarding frame minus this token makes the backend answer, so a backend error can never
  // shift the reply order; dproxy then drops the answer.
  std::string_view noreply_token;
  // memcached meta: the decoded bytes of a base64 key (flag b); keys[0] then points here. Keeps
  // its capacity from one request to the next.
  std::string decoded_key;

  bool has(uint32_t f) const { return (flags & f) != 0; }
  void reset() {
    frame = {};
    name = {};
    command = 0;
    flags = 0;
    keys.clear();
    args.clear();
    noreply_token = {};
  }
};

}  // namespace dproxy::protocol
