#include "common/toml_writer.h"

#include <gtest/gtest.h>
#include <toml++/toml.h>

#include <string>
#include <vector>

namespace ledgerkeep {
namespace {

// Values a config may hold that would end a string, start a table or add a
// key if they were pasted into the text.
const std::vector<std::string> kHostile = {
    "plain",
    "quote \" inside",
    "apostrophe ' inside",
    "backslash \\ and \\n literal",
    "new\nline = \"x\"\n[table]",
    "\"]\n[[allow]]\nnode_id = \"evil\"",
    "tab\tand \x01 control",
    "$(touch /tmp/x) `id` ; | &&",
    "\xc3\xbc\xf0\x9f\x98\x80 unicode",
    "",
    std::string(5000, 'x'),
};

TEST(TomlWriterTest, EveryHostileValueReadsBackAsItWasWritten) {
  TomlWriter w;
  w.Comment("header\nsecond line");
  for (size_t i = 0; i < kHostile.size(); ++i) w.String("s" + std::to_string(i), kHostile[i]);
  w.Table("section");
  w.StringArray("argv", kHostile);
  w.Int("n", -42);
  w.Bool("b", true);
  toml::table t;
  ASSERT_NO_THROW(t = toml::parse(w.text())) << w.text();
  for (size_t i = 0; i < kHostile.size(); ++i) {
    EXPECT_EQ(t["s" + std::to_string(i)].value<std::string>(), kHostile[i]) << i;
  }
  const toml::array* argv = t["section"]["argv"].as_array();
  ASSERT_NE(argv, nullptr);
  ASSERT_EQ(argv->size(), kHostile.size());
  for (size_t i = 0; i < kHostile.size(); ++i) EXPECT_EQ((*argv)[i].value<std::string>(), kHostile[i]) << i;
  EXPECT_EQ(t["section"]["n"].value<int64_t>(), -42);
  EXPECT_EQ(t["section"]["b"].value<bool>(), true);
  // Only the keys written: nothing a value held became a key or a table.
  EXPECT_EQ(t.size(), kHostile.size() + 1);
  EXPECT_EQ(t["section"].as_table()->size(), 3u);
  EXPECT_EQ(w.text().rfind("# header\n# second line\n", 0), 0u) << w.text();
}

TEST(TomlWriterTest, KeepsTheCallersOrderAndWritesBasicStrings) {
  TomlWriter w;
  w.String("zeta", "z");
  w.String("alpha", "it's");
  w.Table("broker");
  w.Int("cmd_port", 7001);
  w.TableArrayEntry("allow");
  w.String("node_id", "r1");
  w.TableArrayEntry("allow");
  w.String("node_id", "r2");
  EXPECT_EQ(w.text(),
            "zeta = \"z\"\nalpha = \"it's\"\n\n[broker]\ncmd_port = 7001\n\n[[allow]]\nnode_id = \"r1\"\n\n"
            "[[allow]]\nnode_id = \"r2\"\n");
}

TEST(TomlWriterTest, AppendedDocumentsAreReformattedAndHoldOnlyTables) {
  TomlWriter w;
  w.String("cluster_id", "x");
  ASSERT_TRUE(w.AppendDocument("[[hook]]\nname = 'a'\nexec = ['/bin/true', \"it's\"]\n\n[[hook]]\nname = 'b'\n"
                               "exec = ['/bin/false']\n",
                               "extra")
                  .ok());
  toml::table t = toml::parse(w.text());
  ASSERT_NE(t["hook"].as_array(), nullptr);
  EXPECT_EQ(t["hook"].as_array()->size(), 2u);
  EXPECT_EQ(t["hook"][0]["exec"][1].value<std::string>(), "it's");
  EXPECT_EQ(t["cluster_id"].value<std::string>(), "x");

  for (const char* bad : {"top = 1\n", "x = [1]\n[[hook]]\nname = 'a'\n", "x = []\n", "not toml ["}) {
    TomlWriter other;
    Status s = other.AppendDocument(bad, "the extra cluster config");
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(s.message().find("the extra cluster config"), std::string::npos) << s.ToString();
  }
  TomlWriter empty;
  EXPECT_TRUE(empty.AppendDocument("# only a comment\n", "extra").ok());
  EXPECT_EQ(empty.text(), "");
}

}  // namespace
}  // namespace ledgerkeep
