#pragma once
// What routing needs to know about one backend server: no sockets, no config file details.

#include <cstdint>
#include <optional>
#include <span>
#include <string>

namespace dproxy::routing {

struct ServerSpec {
  std::string host;  // IP/host name, or a unix socket path (then port is 0)
  uint16_t port = 0;
  uint32_t weight = 1;
  std::string name;  // optional name from the config; empty when none

  // The string twemproxy feeds to the ketama continuum for this server: the configured name if
  // any, else "host" when port is 11211 (libmemcached compatibility), else "host:port".
  // An unnamed unix socket server is "<path>:" (twemproxy keeps the separator). `host` must be
  // spelled as in the config: twemproxy uses the text, never the resolved address.
  std::string ketama_name() const;
  // "host:port" (or the socket path), for messages.
  std::string address() const;
};

// A ketama name shared by two of `servers`, if any. twemproxy refuses such a pool ("has
// servers with same name"), so config loading should too.
std::optional<std::string> duplicate_ketama_name(std::span<const ServerSpec> servers);

}  // namespace dproxy::routing
