#include "routing/ketama.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "routing/md5.h"
#include "routing/server_order.h"

namespace dproxy::routing {

namespace {

constexpr uint32_t kPointsPerServer = 160;  // at equal weights
constexpr uint32_t kPointsPerDigest = 4;    // one md5 digest yields four 32-bit points

// Number of continuum points for a server, with twemproxy's exact float arithmetic: the
// per-server share is computed in single precision, a tiny epsilon is added in double, and
// the result is floored to a multiple of 4.
uint32_t points_for(uint32_t weight, uint32_t total_weight, uint32_t live_servers) {
  const float share = static_cast<float>(weight) / static_cast<float>(total_weight);
  const float digests = share * static_cast<float>(kPointsPerServer) /
                        static_cast<float>(kPointsPerDigest) * static_cast<float>(live_servers);
  const float nudged = static_cast<float>(static_cast<double>(digests) + 0.0000000001);
  return static_cast<uint32_t>(std::floor(nudged) * static_cast<float>(kPointsPerDigest));
}

}  // namespace

KetamaDistribution::KetamaDistribution(std::span<const ServerSpec> servers) {
  uint32_t live_servers = 0;
  uint32_t total_weight = 0;
  for (const ServerSpec& server : servers) {
    if (server.weight == 0) continue;
    ++live_servers;
    total_weight += server.weight;
  }
  if (live_servers == 0) return;

  std::string label;
  // twemproxy's internal server order only matters for ties between equal point values.
  for (const uint32_t index : twemproxy_server_order(servers)) {
    const ServerSpec& server = servers[index];
    if (server.weight == 0) continue;
    const std::string base = server.ketama_name() + "-";
    const uint32_t digests =
        points_for(server.weight, total_weight, live_servers) / kPointsPerDigest;
    for (uint32_t group = 0; group < digests; ++group) {
      label = base;
      label += std::to_string(group);
      const Md5Digest digest = md5_digest(label);
      for (uint32_t word = 0; word < kPointsPerDigest; ++word) {
        const uint8_t* p = digest.data() + word * 4;
        const uint32_t value = static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8) |
                               (static_cast<uint32_t>(p[2]) << 16) |
                               (static_cast<uint32_t>(p[3]) << 24);
        points_.push_back(Point{value, index});
      }
    }
  }
  // Stable, like glibc's merge-sort qsort: equal values keep insertion order, so the server
  // earlier in twemproxy's internal order wins a tie.
  std::stable_sort(points_.begin(), points_.end(),
                   [](const Point& a, const Point& b) { return a.value < b.value; });
  // About one bucket per point (2^4 to 2^16 buckets).
  uint32_t bits = 4;
  while (bits < 16 && (size_t{1} << bits) < points_.size()) ++bits;
  bucket_shift_ = 32 - bits;
  const size_t nbuckets = size_t{1} << bits;
  bucket_.resize(nbuckets + 1);
  size_t i = 0;
  for (size_t b = 0; b < nbuckets; ++b) {
    const uint64_t start = static_cast<uint64_t>(b) << bucket_shift_;
    while (i < points_.size() && points_[i].value < start) ++i;
    bucket_[b] = static_cast<uint32_t>(i);
  }
  bucket_[nbuckets] = static_cast<uint32_t>(points_.size());
}

uint32_t KetamaDistribution::pick(uint32_t hash) const {
  if (points_.empty()) return 0;
  // The first point >= hash is in its bucket's range, or is the first point of a later one.
  const uint32_t b = hash >> bucket_shift_;
  const Point* first = points_.data() + bucket_[b];
  const Point* last = points_.data() + bucket_[b + 1];
  while (first < last && first->value < hash) ++first;
  if (first == points_.data() + points_.size()) first = points_.data();
  return first->server_index;
}

}  // namespace dproxy::routing
