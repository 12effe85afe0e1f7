// The CLI's --json output in integration tests.
#pragma once

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "tests/support/child_process.h"

namespace ledgerkeep::test {

// The whole stdout of a `ledgerkeep --json ...` run as one JSON document; an
// empty object (and a test failure naming the run) when it does not parse.
inline nlohmann::json Json(const RunResult& r) {
  auto j = nlohmann::json::parse(r.out, nullptr, false);
  EXPECT_FALSE(j.is_discarded()) << r.Describe();
  return j.is_discarded() ? nlohmann::json::object() : j;
}

// The last line of `text` that is a JSON object (the CLI's final report after
// progress lines); an empty object when there is none.
inline nlohmann::json LastJsonLine(const std::string& text) {
  std::istringstream in(text);
  nlohmann::json last = nlohmann::json::object();
  for (std::string line; std::getline(in, line);) {
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (!j.is_discarded() && j.is_object()) last = j;
  }
  return last;
}

}  // namespace ledgerkeep::test
