#pragma once
// What routing needs to know about one backend server: no sockets, no config file details.

#include <cstdint>
#include <string>

namespace dproxy::routing {

struct ServerSpec {
  std::string host;  // IP/host name, or a unix socket path (then port is 0)
  uint16_t port = 0;
  uint32_t weight = 1;
  std::string name;  // optional name from the config; empty when none

  // The string twemproxy feeds to the ketama continuum for this server: the configured name if
  // any, else "host" when port is 11211 (libmemcached compatibility), else "host:port".
  std::string ketama_name() const;
  // "host:port" (or the socket path), for messages.
  std::string address() const;
};

}  // namespace dproxy::routing
