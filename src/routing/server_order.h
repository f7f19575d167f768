#pragma once
// The order in which twemproxy keeps a pool's servers (routing-internal helper).

#include <cstdint>
#include <span>
#include <vector>

#include "routing/server_spec.h"

namespace dproxy::routing {

// Indices of `servers` in twemproxy's internal order. While checking for duplicate names its
// config loader sorts the pool's servers by ketama name, shorter names first and equal
// lengths bytewise, and keeps that order. Modula slots follow it, and ketama breaks ties
// between equal points with it. Equal names keep their list order.
std::vector<uint32_t> twemproxy_server_order(std::span<const ServerSpec> servers);

}  // namespace dproxy::routing
