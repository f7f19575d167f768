#pragma once
// What every new backend connection of a pool sends before any request (data connections,
// dedicated and subscriber connections, health probes, Redis Cluster slot queries).

#include <cstdint>
#include <string>

#include "core/config.h"

namespace dproxy::core {

// The setup bytes for `config`'s backends and, in `replies`, how many replies they get:
// Redis: AUTH [server_user] server_password when a password is set, then HELLO 3 when `resp3`
// (the connections of RESP3 clients), then SELECT `db` when `db` != 0.
// memcached: memcached's ASCII authentication (a `set` whose data is "<user> <password>",
// answered STORED by a memcached started with -Y) when server_user/server_password are set.
// Empty (0 replies) when the pool needs no setup.
std::string backend_setup(const PoolConfig& config, int64_t db, uint32_t& replies,
                          bool resp3 = false);

}  // namespace dproxy::core
