#pragma once
// COMMAND INFO / COMMAND DOCS replies for a RESP3 client. The command table holds each command's
// entries in RESP2 (as Redis 7.0 sends them to a RESP2 client); these re-encode them with the
// types Redis 7.0 uses in RESP3: command flags, ACL categories, tips, key specs and history are
// sets, key specs, docs and arguments are maps, and an empty subcommand list is an empty set.
// Checked byte for byte against a real redis-server in tests/integration/test_redis_resp3.py.

#include <string>
#include <string_view>

namespace dproxy::protocol::resp {

// Appends the RESP3 form of one COMMAND INFO entry ("*10\r\n$3\r\nget\r\n:2\r\n*2\r\n+readonly..."
// becomes "*10\r\n$3\r\nget\r\n:2\r\n~2\r\n+readonly..."). False (out unchanged) when `entry`
// is not a complete entry of that shape.
bool append_command_info_resp3(std::string& out, std::string_view entry);

// Appends the RESP3 form of one COMMAND DOCS pair: the name's bulk string, then its doc (an
// array of field, value ... in RESP2, a map in RESP3). False (out unchanged) when malformed.
bool append_command_docs_resp3(std::string& out, std::string_view pair);

}  // namespace dproxy::protocol::resp
