#pragma once
// What a reload changes in a pool's server list, in words for the log.

#include <string>

#include "core/config.h"

namespace dproxy::core {

// The differences between the servers of `before` and `after` (the same pool, two configs):
// servers added, removed, whose address or weight changed, each named as the continuum knows it
// (its name, else host:port). "servers unchanged" when the lists match: then only settings
// changed. Example:
//   "servers added mc3 (10.0.0.3:11211); removed mc1 (10.0.0.1:11211);
//    address changed mc2 10.0.0.2:11211 -> 10.0.0.9:11211"
std::string describe_server_changes(const PoolConfig& before, const PoolConfig& after);

// True when `before` and `after` put every key (and Redis channel) on the same server: the same
// servers (address, weight, name), policy, hash, hash tag and auto_eject_hosts.
bool same_placement(const PoolConfig& before, const PoolConfig& after);

}  // namespace dproxy::core
