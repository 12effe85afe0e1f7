// gtest assertions for Status / Result<T>: the failure message is the
// expression and the Status text, so a red test says what went wrong.
#pragma once

#include <gtest/gtest.h>

#include "common/status.h"

namespace ledgerkeep::test {

inline const Status& StatusOf(const Status& s) { return s; }
template <typename T>
const Status& StatusOf(const Result<T>& r) {
  return r.status();
}

}  // namespace ledgerkeep::test

#define LK_ASSERT_OK(expr)                                                         \
  do {                                                                             \
    const auto& lk_v_ = (expr);                                                    \
    ASSERT_TRUE(::ledgerkeep::test::StatusOf(lk_v_).ok())                          \
        << #expr << ": " << ::ledgerkeep::test::StatusOf(lk_v_).ToString();        \
  } while (0)

#define LK_EXPECT_OK(expr)                                                         \
  do {                                                                             \
    const auto& lk_v_ = (expr);                                                    \
    EXPECT_TRUE(::ledgerkeep::test::StatusOf(lk_v_).ok())                          \
        << #expr << ": " << ::ledgerkeep::test::StatusOf(lk_v_).ToString();        \
  } while (0)

#define LK_ASSERT_OK_AND_ASSIGN_IMPL(tmp, lhs, expr)                               \
  auto tmp = (expr);                                                               \
  ASSERT_TRUE(tmp.ok()) << #expr << ": " << tmp.status().ToString();               \
  lhs = std::move(tmp).value()

// `lhs` may be a declaration: LK_ASSERT_OK_AND_ASSIGN(auto client, Connect());
#define LK_ASSERT_OK_AND_ASSIGN(lhs, expr) \
  LK_ASSERT_OK_AND_ASSIGN_IMPL(LK_CONCAT(lk_result_, __LINE__), lhs, expr)
