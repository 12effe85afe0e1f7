// Keys without a restart: the allowlist diff, the watcher over the cluster
// config and its keys file, the registry following the allowlist, and the
// cut-off of accepted connections (broker/allowlist_reload.h).
#include "broker/allowlist_reload.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "broker/node_registry.h"
#include "common/curve_keys.h"

namespace ledgerkeep {
namespace {

AllowEntry Entry(const std::string& id, wire::Role role) {
  return {id, role, GenerateCurveKeyPair(id)->public_z85};
}

TEST(DiffAllowlistsTest, NamesWhatCameAndWentAndAChangedBindingAsBoth) {
  const AllowEntry s1 = Entry("s1", wire::Role::Subscriber);
  const AllowEntry r1 = Entry("r1", wire::Role::Replica);
  AllowEntry r1_operator = r1;
  r1_operator.role = wire::Role::Operator;
  const AllowEntry s2 = Entry("s2", wire::Role::Subscriber);
  EXPECT_TRUE(DiffAllowlists({s1, r1}, {r1, s1}).empty());
  const AllowlistChange c = DiffAllowlists({s1, r1}, {r1_operator, s2});
  ASSERT_EQ(c.removed.size(), 2u);
  ASSERT_EQ(c.added.size(), 2u);
  EXPECT_EQ(c.Describe(), "added r1 (operator), s2 (subscriber); removed s1 (subscriber), r1 (replica)");
}

class AllowlistWatcherTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/lk-allow-XXXXXX";
    dir_ = mkdtemp(tmpl);
    op_ = Entry("op", wire::Role::Operator);
    std::ofstream(dir_ + "/cluster.toml") << "cluster_id = \"t\"\n[broker]\npublic_key = \""
                                          << GenerateCurveKeyPair("broker")->public_z85 << "\"\n"
                                          << "[[allow]]\nnode_id = \"op\"\nrole = \"operator\"\npublic_key = \""
                                          << op_.public_z85 << "\"\n";
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string Config() const { return dir_ + "/cluster.toml"; }
  void WriteKeys(const std::string& text) const { std::ofstream(KeysFilePath(Config())) << text; }

  std::string dir_;
  AllowEntry op_;
};

TEST_F(AllowlistWatcherTest, SeesTheKeysFileAppearChangeAndBreakOnce) {
  AllowlistWatcher w(Config());
  EXPECT_FALSE(w.Poll().has_value());
  AllowEntry s1 = Entry("s1", wire::Role::Subscriber);
  s1.in_keys_file = true;
  WriteKeys(FormatKeysFile({s1}));
  auto r = w.Poll();
  ASSERT_TRUE(r.has_value());
  ASSERT_TRUE(r->ok()) << r->status().ToString();
  const AllowEntry* e = (*r)->FindNode("s1");
  ASSERT_NE(e, nullptr);
  EXPECT_TRUE(e->in_keys_file);
  EXPECT_EQ(e->public_z85, s1.public_z85);
  EXPECT_FALSE((*r)->FindNode("op")->in_keys_file);
  EXPECT_FALSE(w.Poll().has_value());

  WriteKeys("[[allow]]\nnode_id = \"s1\"\n");  // half an entry
  r = w.Poll();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r->status().message().find("keys file"), std::string::npos) << r->status().message();
  EXPECT_FALSE(w.Poll().has_value());  // reported once

  std::filesystem::remove(KeysFilePath(Config()));
  r = w.Poll();
  ASSERT_TRUE(r.has_value() && r->ok());
  EXPECT_EQ((*r)->FindNode("s1"), nullptr);
}

TEST_F(AllowlistWatcherTest, ANameOrKeyInBothFilesIsRefusedNamingTheKeysFile) {
  AllowEntry dup = op_;
  WriteKeys(FormatKeysFile({dup}));
  auto c = LoadClusterConfig(Config());
  ASSERT_EQ(c.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(c.status().message().find("keys file"), std::string::npos) << c.status().message();
  EXPECT_NE(c.status().message().find("listed twice"), std::string::npos) << c.status().message();
}

TEST(AllowlistWatcherNoPathTest, AConfigBuiltInMemoryNeverChanges) {
  AllowlistWatcher w("");
  EXPECT_FALSE(w.Poll().has_value());
}

TEST(NodeRegistrySyncTest, AgentsJoinAndLeaveWithTheAllowlistAndKeepTheirIndex) {
  char tmpl[] = "/tmp/lk-regsync-XXXXXX";
  const std::string dir = mkdtemp(tmpl);
  {
    ClusterConfig config;
    config.allow = {Entry("r1", wire::Role::Replica), Entry("c1", wire::Role::Client)};
    auto store = std::move(*KvStore::Open(dir, {"nodes"}));
    NodeRegistry reg(config, store.get(), 0);
    ASSERT_TRUE(reg.Load(1000).ok());
    const uint32_t c1_index = reg.Find("c1")->index;

    config.allow = {config.allow[0], Entry("r2", wire::Role::Replica), Entry("s1", wire::Role::Subscriber)};
    KvStore::Batch batch;
    reg.SyncWithAllowlist(batch);
    ASSERT_TRUE(store->Write(batch, true).ok());
    EXPECT_EQ(reg.Find("c1"), nullptr);
    EXPECT_EQ(reg.Find("s1"), nullptr);  // not an agent node
    ASSERT_NE(reg.Find("r2"), nullptr);
    EXPECT_EQ(reg.Find("r2")->state, wire::NodeState::Unknown);
    EXPECT_GT(reg.Find("r2")->index, c1_index);  // a removed node's index is not given again

    config.allow.push_back(Entry("c1", wire::Role::Client));
    KvStore::Batch again;
    reg.SyncWithAllowlist(again);
    ASSERT_NE(reg.Find("c1"), nullptr);
    EXPECT_EQ(reg.Find("c1")->index, c1_index);
  }
  std::filesystem::remove_all(dir);
}

TEST(ShutdownAcceptedConnectionsTest, ClosesTheConnectionsAcceptedOnThePortOnly) {
  const int listener = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(listener, 4), 0);
  socklen_t len = sizeof addr;
  ASSERT_EQ(::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  const int port = ntohs(addr.sin_port);
  const int client = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_EQ(::connect(client, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  const int accepted = ::accept(listener, nullptr, nullptr);
  ASSERT_GE(accepted, 0);

  EXPECT_EQ(ShutdownAcceptedConnections(port, std::set<int>{accepted + 1000}), 0);  // not among them
  EXPECT_EQ(ShutdownAcceptedConnections(port + 1 == 65536 ? 1 : port + 1, std::nullopt), 0);
  EXPECT_EQ(ShutdownAcceptedConnections(port, std::nullopt), 1);  // the listener and the client side stay
  char byte;
  EXPECT_EQ(::recv(client, &byte, 1, 0), 0);  // the peer sees the connection closed
  ::close(accepted);
  ::close(client);
  ::close(listener);
}

}  // namespace
}  // namespace ledgerkeep
