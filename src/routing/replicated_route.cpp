#include "routing/replicated_route.h"

namespace dproxy::routing {

uint32_t ReplicatedRoute::first_read_child(std::string_view key, uint64_t turn) const {
  const auto n = static_cast<uint32_t>(children_.size());
  switch (read_) {
    case ReadMode::kFirst:
      return 0;
    case ReadMode::kRoundRobin:
      return static_cast<uint32_t>(turn % n);
    case ReadMode::kHash:
      return placement_hash(HashKind::kFnv1a_64, key) % n;
  }
  return 0;
}

}  // namespace dproxy::routing
