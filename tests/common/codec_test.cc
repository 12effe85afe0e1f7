#include "common/codec.h"

#include <gtest/gtest.h>

namespace ledgerkeep {
namespace {

std::string PingEnvelope(const std::string& sender = "operator") {
  wire::IssueCommandT ic;
  ic.target = std::make_unique<wire::TargetT>();
  ic.target->node_id = "r1";
  ic.timeout_ms = 1000;
  wire::PingT ping;
  ping.note = "hello";
  ic.body.Set(std::move(ping));
  wire::BodyUnion b;
  b.Set(std::move(ic));
  EnvelopeHeader h;
  h.sender = sender;
  h.msg_id = 42;
  return BuildEnvelope(h, std::move(b));
}

TEST(CodecTest, RoundTripsAnEnvelope) {
  std::string bytes = PingEnvelope();
  auto env = DecodeEnvelope(bytes);
  ASSERT_TRUE(env.ok()) << env.status().ToString();
  EXPECT_EQ((*env)->msg_id(), 42u);
  EXPECT_EQ((*env)->sender()->str(), "operator");
  ASSERT_EQ((*env)->body_type(), wire::Body::IssueCommand);
  const auto* ic = (*env)->body_as_IssueCommand();
  EXPECT_EQ(ic->target()->node_id()->str(), "r1");
  EXPECT_EQ(ic->body_as_Ping()->note()->str(), "hello");
}

TEST(CodecTest, DecodesFromAnUnalignedBuffer) {
  std::string bytes = PingEnvelope();
  std::string shifted = "x" + bytes;  // payload starts at an odd address
  auto env = DecodeEnvelope(shifted.data() + 1, bytes.size());
  ASSERT_TRUE(env.ok()) << env.status().ToString();
  EXPECT_EQ(reinterpret_cast<uintptr_t>(env->data()) % 8, 0u);
}

TEST(CodecTest, RejectsTruncatedEnvelopeAtEveryLength) {
  std::string bytes = PingEnvelope();
  for (size_t n = 0; n < bytes.size(); ++n) {
    auto env = DecodeEnvelope(bytes.data(), n);
    if (!env.ok()) continue;
    // Only trailing alignment padding may be cut off, and then nothing is lost.
    EXPECT_GE(n + 8, bytes.size()) << "accepted a prefix of " << n << " bytes";
    EXPECT_EQ((*env)->body_as_IssueCommand()->body_as_Ping()->note()->str(), "hello");
  }
}

TEST(CodecTest, RejectsUnionTypeWithoutValue) {
  flatbuffers::FlatBufferBuilder fbb;
  FinishEnvelope(fbb, EnvelopeHeader{"r1"}, wire::Body::Hello, flatbuffers::Offset<void>());
  auto env = DecodeEnvelope(fbb.GetBufferPointer(), fbb.GetSize());
  ASSERT_FALSE(env.ok());
  EXPECT_NE(env.status().message().find("carries no value"), std::string::npos);
}

TEST(CodecTest, RejectsOversizedMessage) {
  std::string big(kMaxMessageBytes + 1, '\0');
  auto env = DecodeEnvelope(big);
  ASSERT_FALSE(env.ok());
  EXPECT_NE(env.status().message().find("exceeds the limit"), std::string::npos);
}

TEST(CodecTest, RejectsWrongFileIdentifier) {
  std::string bytes = PingEnvelope();
  bytes[4] = 'X';
  auto env = DecodeEnvelope(bytes);
  ASSERT_FALSE(env.ok());
  EXPECT_NE(env.status().message().find("LKW1"), std::string::npos);
}

TEST(CodecTest, RejectsUnknownUnionMember) {
  // Build an envelope whose body type is one past the last known member.
  flatbuffers::FlatBufferBuilder fbb;
  auto hb = wire::CreateHeartbeat(fbb);
  FinishEnvelope(fbb, EnvelopeHeader{"r1"},
                 static_cast<wire::Body>(static_cast<uint8_t>(wire::Body::MAX) + 1), hb.Union());
  auto env = DecodeEnvelope(fbb.GetBufferPointer(), fbb.GetSize());
  ASSERT_FALSE(env.ok());
  EXPECT_NE(env.status().message().find("unknown value"), std::string::npos);
}

TEST(CodecTest, RejectsOutOfRangeEnum) {
  flatbuffers::FlatBufferBuilder fbb;
  auto node = fbb.CreateString("r1");
  wire::HelloBuilder hb(fbb);
  hb.add_node_id(node);
  hb.add_role(static_cast<wire::Role>(200));
  auto hello = hb.Finish();
  FinishEnvelope(fbb, EnvelopeHeader{"r1"}, wire::Body::Hello, hello.Union());
  auto env = DecodeEnvelope(fbb.GetBufferPointer(), fbb.GetSize());
  ASSERT_FALSE(env.ok());
  EXPECT_NE(env.status().message().find("Hello.role"), std::string::npos);
}

TEST(CodecTest, RejectsEnvelopeWithoutBody) {
  flatbuffers::FlatBufferBuilder fbb;
  FinishEnvelope(fbb, EnvelopeHeader{"r1"}, wire::Body::NONE, flatbuffers::Offset<void>());
  auto env = DecodeEnvelope(fbb.GetBufferPointer(), fbb.GetSize());
  ASSERT_FALSE(env.ok());
}

TEST(CodecTest, BigEndianKeysSortNumerically) {
  EXPECT_LT(EncodeU64BE(9), EncodeU64BE(10));
  EXPECT_LT(EncodeU64BE(255), EncodeU64BE(256));
  EXPECT_EQ(DecodeU64BE(EncodeU64BE(0x0102030405060708ULL)), 0x0102030405060708ULL);
}

}  // namespace
}  // namespace ledgerkeep
