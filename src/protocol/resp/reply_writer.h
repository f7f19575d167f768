#pragma once
// Appends RESP2 and RESP3 replies and commands to a std::string. No allocation beyond the
// string's growth.

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace dproxy::protocol::resp {

// "+<s>\r\n". A '\r' or '\n' inside `s` is written as ' ' (as Redis does) to keep one line.
void append_simple(std::string& out, std::string_view s);

// "-<message>\r\n", e.g. append_error(out, "ERR unknown command"). '\r' / '\n' become ' '.
void append_error(std::string& out, std::string_view message);

// ":<v>\r\n".
void append_integer(std::string& out, int64_t v);

// "$<len>\r\n<bytes>\r\n" (binary safe).
void append_bulk(std::string& out, std::string_view bytes);

// "$-1\r\n".
void append_null_bulk(std::string& out);

// "*-1\r\n".
void append_null_array(std::string& out);

// "*<n>\r\n"; the caller appends the n elements.
void append_array_header(std::string& out, size_t n);

// RESP3 (a client that said HELLO 3) --------------------------------------------------------
// The null of the client's protocol: "_\r\n" (RESP3), else "$-1\r\n".
void append_null(std::string& out, bool resp3);
// "%<n>\r\n" (a map of n pairs: the caller appends key, value, key, value ...), "~<n>\r\n" (a
// set), ">" (a push); each with its RESP2 form when !resp3: "*<2n>\r\n" or "*<n>\r\n".
void append_map_header(std::string& out, size_t n, bool resp3);
void append_set_header(std::string& out, size_t n, bool resp3);
void append_push_header(std::string& out, size_t n, bool resp3);
// A verbatim string "=<len>\r\ntxt:<text>\r\n" (RESP3: INFO, CLIENT INFO), else a bulk string.
void append_verbatim_text(std::string& out, std::string_view text, bool resp3);

// The multibulk encoding of a command: "*<argc>\r\n" then one bulk per argument, args[0] being
// the command name (e.g. re-encoding "MGET k1 k3" or "MSET k1 v1" for one backend). Byte for
// byte what hiredis's redisFormatCommandArgv produces.
void append_command(std::string& out, std::span<const std::string_view> args);

// Appends a command table name upper-cased, a subcommand separated by a space, as Redis names
// commands in its errors ("client|setname" -> "CLIENT SETNAME").
void append_upper_name(std::string& out, std::string_view name);

}  // namespace dproxy::protocol::resp
