// S3 error replies to Status: what went wrong, where, and what to do about
// it. Every message names the endpoint and, when the gateway sent them, the
// S3 error Code and RequestId; none carries a secret.
// Thread-safety: pure functions.
#pragma once

#include <string>
#include <string_view>

#include "common/status.h"

namespace ledgerkeep::s3 {

// The <Error> document of a failed request (fields empty when absent).
struct S3ErrorReply {
  std::string code;        // "NoSuchBucket", "SignatureDoesNotMatch", ...
  std::string message;
  std::string request_id;
  std::string resource;
};

// The <Error> in `body`; all fields empty when the body is not an S3 error
// document (a HEAD reply has no body; a proxy may answer with HTML).
S3ErrorReply ParseS3ErrorReply(std::string_view body);

// What a request was about, for messages.
struct S3RequestContext {
  std::string endpoint;            // "http://127.0.0.1:7480"
  std::string operation;           // "PutObject"
  std::string bucket;
  std::string key;                 // empty for bucket operations
  std::string credentials_source;  // S3Credentials::source
};

// The Status for an HTTP error reply (status >= 300):
//   403 InvalidAccessKeyId / SignatureDoesNotMatch / AccessDenied (and a
//     bodiless 403) -> PermissionDenied naming the check to make;
//   404 NoSuchBucket -> NotFound "bucket 'x' does not exist at <endpoint>;
//     create it first, e.g. `s3cmd mb s3://x`"; NoSuchKey / NoSuchUpload /
//     a bodiless 404 -> NotFound;
//   XAmzContentSHA256Mismatch / BadDigest (the body does not match the hash
//     sent with it) -> Corruption;
//   other 400 -> InvalidArgument; 409 -> AlreadyExists or FailedPrecondition;
//   412 -> FailedPrecondition; 416 -> InvalidArgument;
//   429, 503 SlowDown -> Busy; other 5xx -> Unavailable.
// `request_id_header` is x-amz-request-id when the body has none.
Status MapS3Error(const S3RequestContext& ctx, long http_status, std::string_view body,
                  std::string_view request_id_header = {});

// Whether a request that got this HTTP status is worth retrying: 5xx, 429,
// and 400 RequestTimeout (the gateway's idle timeout on a slow body).
bool IsRetryableHttpStatus(long http_status, std::string_view s3_code);

}  // namespace ledgerkeep::s3
