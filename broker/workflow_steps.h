// Small helpers shared by the broker's workflows: addressing, and reading
// per-target results.
#pragma once

#include <string>

#include "common/codec.h"

namespace ledgerkeep {

inline wire::TargetT TargetRole(wire::Role role) {
  wire::TargetT t;
  t.role = role;
  return t;
}

inline wire::TargetT TargetNode(const std::string& node) {
  wire::TargetT t;
  t.node_id = node;
  return t;
}

inline bool ResultOk(const wire::TargetStatusT& t) {
  return t.result && t.result->status == wire::ResultStatus::Ok;
}

// "Ok", or "Failed: why" — for reports and errors.
inline std::string ResultText(const wire::TargetStatusT& t) {
  if (!t.result) return "no result";
  std::string s = wire::EnumNameResultStatus(t.result->status);
  if (!t.result->message.empty()) s += ": " + t.result->message;
  return s;
}

}  // namespace ledgerkeep
