#include "s3/s3_errors.h"

#include <pugixml.hpp>

namespace ledgerkeep::s3 {
namespace {

std::string What(const S3RequestContext& ctx) {
  std::string s = ctx.operation;
  if (!ctx.bucket.empty()) {
    s += " s3://" + ctx.bucket;
    if (!ctx.key.empty()) s += "/" + ctx.key;
  }
  return s;
}

std::string Ids(const S3ErrorReply& r, long http_status, std::string_view request_id_header) {
  std::string s = "(HTTP " + std::to_string(http_status);
  if (!r.code.empty()) s += ", " + r.code;
  const std::string rid = !r.request_id.empty() ? r.request_id : std::string(request_id_header);
  if (!rid.empty()) s += ", RequestId " + rid;
  s += ")";
  return s;
}

}  // namespace

S3ErrorReply ParseS3ErrorReply(std::string_view body) {
  S3ErrorReply r;
  if (body.empty()) return r;
  pugi::xml_document doc;
  if (!doc.load_buffer(body.data(), body.size())) return r;
  pugi::xml_node err = doc.child("Error");
  if (!err) return r;
  r.code = err.child_value("Code");
  r.message = err.child_value("Message");
  r.request_id = err.child_value("RequestId");
  r.resource = err.child_value("Resource");
  return r;
}

Status MapS3Error(const S3RequestContext& ctx, long http_status, std::string_view body,
                  std::string_view request_id_header) {
  const S3ErrorReply r = ParseS3ErrorReply(body);
  const std::string what = What(ctx);
  const std::string ids = Ids(r, http_status, request_id_header);
  const std::string at = " at " + ctx.endpoint;
  const std::string creds = ctx.credentials_source.empty() ? "the credentials" : ctx.credentials_source;
  const std::string detail = r.message.empty() ? "" : ": " + r.message;

  if (http_status == 403) {
    if (r.code == "SignatureDoesNotMatch") {
      return Status::PermissionDenied(
          what + ": the gateway" + at + " refused the credentials " + ids +
          ": the signature does not match; check the secret key (AWS_SECRET_ACCESS_KEY or "
          "aws_secret_access_key of the profile) from " + creds + ", and the region");
    }
    if (r.code == "InvalidAccessKeyId") {
      return Status::PermissionDenied(what + ": the gateway" + at + " does not know the access key " + ids +
                                      ": check AWS_ACCESS_KEY_ID or aws_access_key_id of the profile (from " +
                                      creds + ")");
    }
    if (r.code == "RequestTimeTooSkewed") {
      return Status::PermissionDenied(what + ": the gateway" + at + " refused the request " + ids +
                                      ": this host's clock differs too much from the gateway's; fix the clock "
                                      "(NTP)");
    }
    if (r.code.empty()) {
      // A HEAD reply has no body to say why.
      return Status::PermissionDenied(what + ": the gateway" + at + " refused the request " + ids +
                                      ": check the access key and secret (AWS_ACCESS_KEY_ID, "
                                      "AWS_SECRET_ACCESS_KEY or the profile) from " + creds +
                                      ", and that this user may use the bucket");
    }
    return Status::PermissionDenied(what + ": access denied" + at + " " + ids + detail +
                                    ": check that the user of " + creds +
                                    " may use this bucket (bucket policy, user permissions)");
  }
  if (http_status == 404) {
    if (r.code == "NoSuchBucket" || (r.code.empty() && ctx.key.empty())) {
      return Status::NotFound(what + ": bucket '" + ctx.bucket + "' does not exist" + at + " " + ids +
                              "; create it first, e.g. `s3cmd mb s3://" + ctx.bucket + "`");
    }
    if (r.code == "NoSuchUpload") {
      return Status::NotFound(what + ": no such multipart upload" + at + " " + ids +
                              " (completed or aborted already)");
    }
    return Status::NotFound(what + ": no such object" + at + " " + ids);
  }
  if (http_status == 429 || r.code == "SlowDown") {
    return Status::Busy(what + ": the gateway" + at + " asks to slow down " + ids + detail);
  }
  if (http_status >= 500) {
    return Status::Unavailable(what + ": the gateway" + at + " failed " + ids + detail +
                               "; it may be overloaded or restarting");
  }
  if (http_status == 409) {
    if (r.code == "BucketAlreadyExists" || r.code == "BucketAlreadyOwnedByYou") {
      return Status::AlreadyExists(what + at + " " + ids + detail);
    }
    return Status::FailedPrecondition(what + at + " " + ids + detail);
  }
  if (http_status == 412) return Status::FailedPrecondition(what + ": precondition failed" + at + " " + ids);
  if (r.code == "XAmzContentSHA256Mismatch" || r.code == "BadDigest") {
    return Status::Corruption(what + at + " " + ids +
                              ": the bytes the gateway received do not match the checksum sent with them; "
                              "did the file change while it was being uploaded?");
  }
  if (http_status == 400 && r.code == "EntityTooSmall") {
    return Status::InvalidArgument(what + at + " " + ids +
                                   ": a multipart part is below the gateway's minimum part size (5 MiB on "
                                   "AWS and RGW); raise the part size");
  }
  return Status::InvalidArgument(what + ": the gateway" + at + " refused the request " + ids + detail);
}

bool IsRetryableHttpStatus(long http_status, std::string_view s3_code) {
  if (http_status >= 500 || http_status == 429) return true;
  return s3_code == "SlowDown" || s3_code == "RequestTimeout";
}

}  // namespace ledgerkeep::s3
