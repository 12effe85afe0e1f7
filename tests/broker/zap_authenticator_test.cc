#include "broker/zap_authenticator.h"

#include <gtest/gtest.h>
#include <zmq.h>

#include <array>

#include "common/curve_keys.h"
#include "common/zmq_util.h"

namespace ledgerkeep {
namespace {

std::string Binary(const std::string& z85) {
  std::array<uint8_t, 32> bin{};
  zmq_z85_decode(bin.data(), z85.c_str());
  return {reinterpret_cast<const char*>(bin.data()), bin.size()};
}

class ZapTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (auto [id, role] : std::vector<std::pair<std::string, wire::Role>>{
             {"r1", wire::Role::Replica}, {"op", wire::Role::Operator}, {"sub", wire::Role::Subscriber}}) {
      auto k = *GenerateCurveKeyPair(id);
      keys_[id] = k.public_z85;
      config_.allow.push_back({id, role, k.public_z85});
    }
  }
  ClusterConfig config_;
  std::map<std::string, std::string> keys_;
};

TEST_F(ZapTest, AllowlistedKeyBecomesItsNodeId) {
  ZapAuthenticator zap(config_);
  auto d = zap.Decide(kZapDomainCtl, "CURVE", Binary(keys_["r1"]));
  EXPECT_TRUE(d.allow);
  EXPECT_EQ(d.user_id, "r1");
}

TEST_F(ZapTest, UnknownKeyAndOtherMechanismsAreRefused) {
  ZapAuthenticator zap(config_);
  auto stranger = *GenerateCurveKeyPair("x");
  EXPECT_FALSE(zap.Decide(kZapDomainCtl, "CURVE", Binary(stranger.public_z85)).allow);
  EXPECT_FALSE(zap.Decide(kZapDomainCtl, "NULL", "").allow);
  EXPECT_FALSE(zap.Decide(kZapDomainCtl, "CURVE", "short").allow);
}

TEST_F(ZapTest, EachRoleOnlyReachesTheEndpointsItNeeds) {
  ZapAuthenticator zap(config_);
  EXPECT_TRUE(zap.Decide(kZapDomainCmd, "CURVE", Binary(keys_["r1"])).allow);
  EXPECT_FALSE(zap.Decide(kZapDomainEvents, "CURVE", Binary(keys_["r1"])).allow);
  EXPECT_FALSE(zap.Decide(kZapDomainCmd, "CURVE", Binary(keys_["op"])).allow);
  EXPECT_TRUE(zap.Decide(kZapDomainEvents, "CURVE", Binary(keys_["op"])).allow);
  EXPECT_TRUE(zap.Decide(kZapDomainEvents, "CURVE", Binary(keys_["sub"])).allow);
  EXPECT_FALSE(zap.Decide("some.other.domain", "CURVE", Binary(keys_["op"])).allow);
}

}  // namespace
}  // namespace ledgerkeep
