#pragma once
// twemproxy's ketama consistent-hash continuum (nc_ketama.c semantics, re-implemented).

#include <cstdint>
#include <span>
#include <vector>

#include "routing/distribution.h"
#include "routing/server_spec.h"

namespace dproxy::routing {

class KetamaDistribution final : public Distribution {
 public:
  // Each server with weight > 0 gets floor(weight / total_weight * 40 * live_servers) groups of
  // 4 points (computed in float as twemproxy does), point group N being the 4 little-endian
  // words of md5("<ketama_name>-N"). Weight 0 servers are left out as if absent.
  explicit KetamaDistribution(std::span<const ServerSpec> servers);

  // Server owning the first point >= hash, wrapping to the first point. 0 when empty.
  uint32_t pick(uint32_t hash) const override;

  struct Point {
    uint32_t value;
    uint32_t server_index;
  };
  // The sorted continuum, for tests and diagnostics.
  std::span<const Point> points() const { return points_; }

 private:
  std::vector<Point> points_;
  // Where to look for a hash: bucket b = hash >> bucket_shift_ covers points
  // [bucket_[b], bucket_[b + 1]) (the first point >= b << bucket_shift_ onwards), about one
  // point per bucket, so pick() searches a few points instead of the whole continuum.
  std::vector<uint32_t> bucket_;
  uint32_t bucket_shift_ = 32;
};

}  // namespace dproxy::routing
