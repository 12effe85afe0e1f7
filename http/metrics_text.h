// The Prometheus text exposition (format 0.0.4) of a prometheus-cpp registry,
// and the content type to serve it with.
#pragma once

#include <string>

namespace prometheus {
class Registry;
}

namespace ledgerkeep {

inline constexpr const char* kMetricsContentType = "text/plain; version=0.0.4; charset=utf-8";
std::string RenderMetrics(const prometheus::Registry& registry);

}  // namespace ledgerkeep
