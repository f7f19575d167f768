#pragma once
// At start: one connect attempt to every server, in the background, and one warning line per
// server that cannot be connected (nutcracker users know this from preconnect). Start never
// waits for it; nothing else depends on the result (health is the backends' business).

#include <asio.hpp>
#include <string>
#include <vector>

#include "core/config.h"

namespace dproxy::core {

// Connects to each of `endpoints` (the servers of `pool`, in order) on `io`, giving up after the
// pool's connect_timeout_ms; a failure logs
//   WARN pool <pool>: server <name> (<address>) cannot be connected: <reason>; ...
// The attempt's socket is closed at once either way. Runs on `io`'s thread; returns at once.
void warn_unreachable_servers(
    asio::io_context& io, const PoolConfig& pool,
    const std::vector<asio::generic::stream_protocol::endpoint>& endpoints);

}  // namespace dproxy::core
