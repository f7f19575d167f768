#pragma once
// Key distributions over a server list, placing keys exactly as twemproxy 0.5 does.

#include <cstdint>
#include <memory>
#include <span>
#include <string_view>

#include "routing/server_spec.h"

namespace dproxy::routing {

enum class DistributionKind : uint8_t { kKetama, kModula, kRandom };

// Maps a key hash to the index of a server in the list the distribution was built from.
class Distribution {
 public:
  virtual ~Distribution() = default;
  // Returns an index into the server list given to make_distribution. Must not be called on a
  // distribution built from an empty list.
  virtual uint32_t pick(uint32_t hash) const = 0;
};

// Builds the distribution for `servers` (all considered live). Servers with weight 0 get no keys.
std::unique_ptr<Distribution> make_distribution(DistributionKind kind,
                                                std::span<const ServerSpec> servers);

}  // namespace dproxy::routing
