#include "http/metrics_text.h"

#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

namespace ledgerkeep {

std::string RenderMetrics(const prometheus::Registry& registry) {
  return prometheus::TextSerializer().Serialize(registry.Collect());
}

}  // namespace ledgerkeep
