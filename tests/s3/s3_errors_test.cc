#include "s3/s3_errors.h"

#include <gtest/gtest.h>

namespace ledgerkeep::s3 {
namespace {

std::string ErrorXml(const std::string& code, const std::string& message = "m") {
  return "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>" + code + "</Code><Message>" + message +
         "</Message><BucketName>b</BucketName><RequestId>tx0001-abc</RequestId><HostId>h</HostId></Error>";
}

S3RequestContext Ctx(std::string key = "n1/MANIFEST") {
  return {"http://127.0.0.1:7480", "PutObject", "backups", std::move(key), "profile 'x' of /f"};
}

TEST(S3ErrorTest, ParsesCodeMessageAndRequestId) {
  S3ErrorReply r = ParseS3ErrorReply(ErrorXml("NoSuchKey", "The specified key does not exist."));
  EXPECT_EQ(r.code, "NoSuchKey");
  EXPECT_EQ(r.message, "The specified key does not exist.");
  EXPECT_EQ(r.request_id, "tx0001-abc");
  EXPECT_EQ(ParseS3ErrorReply("").code, "");
  EXPECT_EQ(ParseS3ErrorReply("<html>502 Bad Gateway</html>").code, "");
  EXPECT_EQ(ParseS3ErrorReply("not xml <<<").code, "");
}

TEST(S3ErrorTest, AWrongSecretSaysWhatToCheck) {
  Status s = MapS3Error(Ctx(), 403, ErrorXml("SignatureDoesNotMatch"));
  EXPECT_EQ(s.code(), StatusCode::kPermissionDenied);
  for (const char* part : {"http://127.0.0.1:7480", "refused the credentials", "SignatureDoesNotMatch",
                           "AWS_SECRET_ACCESS_KEY", "profile 'x' of /f", "RequestId tx0001-abc"}) {
    EXPECT_NE(s.message().find(part), std::string::npos) << part << " in " << s.message();
  }
}

TEST(S3ErrorTest, AnUnknownKeyOrDeniedAccessIsPermissionDenied) {
  Status key = MapS3Error(Ctx(), 403, ErrorXml("InvalidAccessKeyId"));
  EXPECT_EQ(key.code(), StatusCode::kPermissionDenied);
  EXPECT_NE(key.message().find("AWS_ACCESS_KEY_ID"), std::string::npos);
  Status denied = MapS3Error(Ctx(), 403, ErrorXml("AccessDenied"));
  EXPECT_EQ(denied.code(), StatusCode::kPermissionDenied);
  EXPECT_NE(denied.message().find("AccessDenied"), std::string::npos);
  Status bodiless = MapS3Error(Ctx(), 403, "", "tx-head");
  EXPECT_EQ(bodiless.code(), StatusCode::kPermissionDenied);
  EXPECT_NE(bodiless.message().find("RequestId tx-head"), std::string::npos);
  EXPECT_NE(bodiless.message().find("AWS_SECRET_ACCESS_KEY"), std::string::npos) << bodiless.message();
}

TEST(S3ErrorTest, AMissingBucketSaysHowToCreateIt) {
  Status s = MapS3Error(Ctx(), 404, ErrorXml("NoSuchBucket"));
  EXPECT_EQ(s.code(), StatusCode::kNotFound);
  EXPECT_NE(s.message().find("bucket 'backups' does not exist at http://127.0.0.1:7480"), std::string::npos)
      << s.message();
  EXPECT_NE(s.message().find("s3cmd mb s3://backups"), std::string::npos);
  // HEAD of a bucket has no body.
  EXPECT_NE(MapS3Error(Ctx(""), 404, "").message().find("does not exist"), std::string::npos);
}

TEST(S3ErrorTest, MissingKeysAndUploadsAreNotFound) {
  Status k = MapS3Error(Ctx(), 404, ErrorXml("NoSuchKey"));
  EXPECT_EQ(k.code(), StatusCode::kNotFound);
  EXPECT_NE(k.message().find("s3://backups/n1/MANIFEST"), std::string::npos);
  EXPECT_EQ(MapS3Error(Ctx(), 404, "").code(), StatusCode::kNotFound);
  EXPECT_EQ(MapS3Error(Ctx(), 404, ErrorXml("NoSuchUpload")).code(), StatusCode::kNotFound);
}

TEST(S3ErrorTest, ABodyThatDoesNotMatchItsHashIsCorruption) {
  Status s = MapS3Error(Ctx(), 400, ErrorXml("XAmzContentSHA256Mismatch"));
  EXPECT_EQ(s.code(), StatusCode::kCorruption);
  EXPECT_NE(s.message().find("did the file change"), std::string::npos) << s.message();
  EXPECT_EQ(MapS3Error(Ctx(), 400, ErrorXml("BadDigest")).code(), StatusCode::kCorruption);
  EXPECT_FALSE(IsRetryableHttpStatus(400, "XAmzContentSHA256Mismatch"));
}

TEST(S3ErrorTest, OverloadAndServerErrorsAreRetryableAndOthersAreNot) {
  EXPECT_EQ(MapS3Error(Ctx(), 503, ErrorXml("SlowDown")).code(), StatusCode::kBusy);
  EXPECT_EQ(MapS3Error(Ctx(), 429, "").code(), StatusCode::kBusy);
  EXPECT_EQ(MapS3Error(Ctx(), 500, ErrorXml("InternalError")).code(), StatusCode::kUnavailable);
  EXPECT_EQ(MapS3Error(Ctx(), 400, ErrorXml("EntityTooSmall")).code(), StatusCode::kInvalidArgument);
  EXPECT_NE(MapS3Error(Ctx(), 400, ErrorXml("EntityTooSmall")).message().find("part size"), std::string::npos);
  EXPECT_TRUE(IsRetryableHttpStatus(500, ""));
  EXPECT_TRUE(IsRetryableHttpStatus(503, "SlowDown"));
  EXPECT_TRUE(IsRetryableHttpStatus(429, ""));
  EXPECT_TRUE(IsRetryableHttpStatus(400, "RequestTimeout"));
  EXPECT_FALSE(IsRetryableHttpStatus(403, "SignatureDoesNotMatch"));
  EXPECT_FALSE(IsRetryableHttpStatus(404, "NoSuchKey"));
  EXPECT_FALSE(IsRetryableHttpStatus(400, "InvalidArgument"));
}

}  // namespace
}  // namespace ledgerkeep::s3
