#include "routing/distribution.h"

#include "routing/ketama.h"
#include "routing/modula.h"
#include "routing/random_distribution.h"

namespace dproxy::routing {

std::unique_ptr<Distribution> make_distribution(DistributionKind kind,
                                                std::span<const ServerSpec> servers) {
  switch (kind) {
    case DistributionKind::kKetama:
      return std::make_unique<KetamaDistribution>(servers);
    case DistributionKind::kModula:
      return std::make_unique<ModulaDistribution>(servers);
    case DistributionKind::kRandom:
      return std::make_unique<RandomDistribution>(servers);
  }
  return std::make_unique<ModulaDistribution>(servers);
}

}  // namespace dproxy::routing
