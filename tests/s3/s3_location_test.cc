#include "s3/s3_location.h"

#include <gtest/gtest.h>

#include "tests/support/status_macros.h"

namespace ledgerkeep::s3 {
namespace {

TEST(S3UrlTest, ParsesBucketAndPrefix) {
  LK_ASSERT_OK_AND_ASSIGN(S3Url u, ParseS3Url("s3://backups/ledger/prod"));
  EXPECT_EQ(u.bucket, "backups");
  EXPECT_EQ(u.prefix, "ledger/prod/");
  LK_ASSERT_OK_AND_ASSIGN(S3Url bare, ParseS3Url("s3://backups"));
  EXPECT_EQ(bare.prefix, "");
  LK_ASSERT_OK_AND_ASSIGN(S3Url slash, ParseS3Url("s3://backups/"));
  EXPECT_EQ(slash.prefix, "");
  LK_ASSERT_OK_AND_ASSIGN(S3Url trailing, ParseS3Url("s3://backups/a/b/"));
  EXPECT_EQ(trailing.prefix, "a/b/");
  LK_ASSERT_OK_AND_ASSIGN(S3Url utf8, ParseS3Url("s3://backups/\xc3\xa9t\xc3\xa9"));
  EXPECT_EQ(utf8.prefix, "\xc3\xa9t\xc3\xa9/");
}

TEST(S3UrlTest, RefusesOtherSchemesAndMissingBucketWithTheReason) {
  auto r = ParseS3Url("https://backups/x");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("s3://bucket[/prefix]"), std::string::npos) << r.status().message();
  auto none = ParseS3Url("s3:///prefix");
  ASSERT_FALSE(none.ok());
  EXPECT_NE(none.status().message().find("names no bucket"), std::string::npos);
}

TEST(S3UrlTest, RefusesBadPrefixesNamingTheRule) {
  struct Case {
    const char* url;
    const char* says;
  } cases[] = {
      {"s3://backups/a/../b", "'..'"},
      {"s3://backups/a/./b", "'.'"},
      {"s3://backups/a//b", "empty path segment"},
      {"s3://backups/a\nb", "control character"},
      {"s3://backups/a\x7f", "control character"},
      {"s3://backups/\xff\xfe", "UTF-8"},
      {"s3://backups/\xc0\xaf", "UTF-8"},  // overlong '/'
      {"s3://backups/\xed\xa0\x80", "UTF-8"},  // a surrogate
  };
  for (const Case& c : cases) {
    auto r = ParseS3Url(c.url);
    ASSERT_FALSE(r.ok()) << c.url;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(r.status().message().find(c.says), std::string::npos) << r.status().message();
    // Control characters are shown escaped, never raw.
    EXPECT_EQ(r.status().message().find('\n'), std::string::npos);
  }
}

TEST(BucketNameTest, FollowsTheS3Rules) {
  for (const std::string& ok : {std::string("abc"), std::string("my-bucket.2"), std::string("a.b.c"),
                                std::string("0ab"), std::string(63, 'a')}) {
    LK_EXPECT_OK(ValidateBucketName(ok));
  }
  struct Case {
    std::string name;
    const char* says;
  } bad[] = {
      {"ab", "3 to 63"},
      {std::string(64, 'a'), "3 to 63"},
      {"My-Bucket", "lower-case"},
      {"my_bucket", "lower-case"},
      {"-abc", "start and end"},
      {"abc.", "start and end"},
      {"a..b", "adjacent periods"},
      {"a.-b", "'-' next to '.'"},
      {"192.168.1.10", "IP address"},
      {"xn--abc", "xn--"},
      {"abc-s3alias", "-s3alias"},
  };
  for (const Case& c : bad) {
    Status s = ValidateBucketName(c.name);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << c.name;
    EXPECT_NE(s.message().find(c.says), std::string::npos) << s.message();
  }
}

TEST(ObjectKeyTest, RefusesEmptyLongAndAbsoluteKeys) {
  EXPECT_FALSE(ValidateObjectKey("").ok());
  EXPECT_FALSE(ValidateObjectKey(std::string(1025, 'k')).ok());
  LK_EXPECT_OK(ValidateObjectKey(std::string(1024, 'k')));
  EXPECT_FALSE(ValidateObjectKey("/abs").ok());
  LK_EXPECT_OK(ValidateObjectKey("a/b c+d=e&f%g"));
  LK_EXPECT_OK(ValidateObjectKey("dir/"));
  LK_EXPECT_OK(ValidateObjectKey("a..b/c"));  // ".." only as a whole segment
}

TEST(EndpointTest, ParsesSchemeHostAndPort) {
  LK_ASSERT_OK_AND_ASSIGN(S3Endpoint e, ParseS3Endpoint("http://127.0.0.1:7480"));
  EXPECT_FALSE(e.https);
  EXPECT_EQ(e.host, "127.0.0.1");
  EXPECT_EQ(e.port, 7480);
  EXPECT_EQ(e.ToString(), "http://127.0.0.1:7480");
  LK_ASSERT_OK_AND_ASSIGN(S3Endpoint h, ParseS3Endpoint("https://s3.example.com/"));
  EXPECT_TRUE(h.https);
  EXPECT_EQ(h.port, 0);
  EXPECT_EQ(h.ToString(), "https://s3.example.com");
  LK_ASSERT_OK_AND_ASSIGN(S3Endpoint v6, ParseS3Endpoint("https://[::1]:8443"));
  EXPECT_EQ(v6.host, "[::1]");
  EXPECT_EQ(v6.port, 8443);
}

TEST(EndpointTest, RefusesWhatIsNotSchemeHostPort) {
  struct Case {
    const char* url;
    const char* says;
  } bad[] = {
      {"ftp://h", "https:// or http://"},
      {"s3.example.com", "https:// or http://"},
      {"http://h/path", "without a path"},
      {"http://h?x=1", "without a path"},
      {"http://key:secret@h", "user info"},
      {"http://", "no host"},
      {"http://h:", "port"},
      {"http://h:0", "port"},
      {"http://h:70000", "port"},
      {"http://h:80x", "port"},
      {"http://h h", "host"},
  };
  for (const Case& c : bad) {
    auto r = ParseS3Endpoint(c.url);
    ASSERT_FALSE(r.ok()) << c.url;
    EXPECT_NE(r.status().message().find(c.says), std::string::npos) << c.url << ": " << r.status().message();
  }
  // A secret in user info is never echoed back.
  EXPECT_EQ(ParseS3Endpoint("http://key:secret@h").status().message().find("secret@"), std::string::npos);
}

TEST(AddressingStyleTest, PathOrVirtualHost) {
  EXPECT_EQ(*ParseAddressingStyle("path"), AddressingStyle::kPath);
  EXPECT_EQ(*ParseAddressingStyle("virtual-host"), AddressingStyle::kVirtualHost);
  auto bad = ParseAddressingStyle("vhost");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("'path'"), std::string::npos);
}

TEST(UriEncodeTest, EncodesAllButUnreservedUpperCaseHex) {
  EXPECT_EQ(UriEncode("aZ09-_.~", false), "aZ09-_.~");
  EXPECT_EQ(UriEncode("a b/c+d=e&f", false), "a%20b%2Fc%2Bd%3De%26f");
  EXPECT_EQ(UriEncode("a b/c", true), "a%20b/c");
  EXPECT_EQ(UriEncode("\xc3\xa9", true), "%C3%A9");
}

TEST(CanonicalQueryTest, SortsEncodesAndGivesEveryNameAnEqualsSign) {
  EXPECT_EQ(CanonicalQuery({{"uploads", ""}}), "uploads=");
  EXPECT_EQ(CanonicalQuery({{"uploadId", "x/y=="}, {"partNumber", "3"}}), "partNumber=3&uploadId=x%2Fy%3D%3D");
  EXPECT_EQ(CanonicalQuery({{"prefix", "a b/"}, {"list-type", "2"}, {"continuation-token", "1/+x"}, {"max-keys", "2"}}),
            "continuation-token=1%2F%2Bx&list-type=2&max-keys=2&prefix=a%20b%2F");
}

TEST(ObjectUrlTest, BuildsPathStyleAndVirtualHostUrls) {
  S3Location loc;
  loc.endpoint = *ParseS3Endpoint("http://127.0.0.1:7480");
  loc.bucket = "backups";
  EXPECT_EQ(ObjectUrl(loc, "n1/a b.sst"), "http://127.0.0.1:7480/backups/n1/a%20b.sst");
  EXPECT_EQ(ObjectUrl(loc, ""), "http://127.0.0.1:7480/backups");
  EXPECT_EQ(ObjectUrl(loc, "", {{"list-type", "2"}, {"delimiter", "/"}}),
            "http://127.0.0.1:7480/backups?delimiter=%2F&list-type=2");
  loc.addressing = AddressingStyle::kVirtualHost;
  loc.endpoint = *ParseS3Endpoint("https://s3.example.com");
  EXPECT_EQ(ObjectUrl(loc, "n1/x", {{"uploads", ""}}), "https://backups.s3.example.com/n1/x?uploads=");
  EXPECT_EQ(ObjectUrl(loc, ""), "https://backups.s3.example.com/");
  loc.endpoint = *ParseS3Endpoint("https://localhost:9443");
  EXPECT_EQ(ObjectUrl(loc, "k"), "https://backups.localhost:9443/k");
}

}  // namespace
}  // namespace ledgerkeep::s3
