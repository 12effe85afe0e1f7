// S3Client: the object operations ledgerkeep needs from an S3-compatible
// store (AWS S3, Ceph RGW, MinIO), over libcurl with SigV4 signing
// (CURLOPT_AWS_SIGV4; every request carries x-amz-content-sha256, the
// SHA-256 of its payload, computed before sending, and x-amz-security-token
// when the credentials have a session token).
//
// Keys: every key a caller passes or gets back is relative to the location's
// prefix (the client prepends it and strips it from listings) and must pass
// ValidateObjectKey.
//
// Failures: a Status from s3_errors.h (PermissionDenied, NotFound, ...) or,
// for the transport, Unavailable (refused, DNS, reset; naming the endpoint),
// Timeout, FailedPrecondition (TLS verification failed: names the CA bundle
// option), NoSpace / IOError (a download's local file), Aborted (the
// `cancelled` callback said so). 5xx, 429/SlowDown, timeouts and connection
// errors are retried with exponential backoff and jitter up to
// `max_attempts`; other 4xx never are.
//
// Thread-safety: every method may be called from any number of threads at
// once; each request takes its own curl handle from a pool (handles keep
// their connections alive between requests).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "s3/s3_credentials.h"
#include "s3/s3_location.h"

struct curl_slist;  // libcurl's header list, used by the private Configure()

namespace ledgerkeep::s3 {

struct S3ClientOptions {
  S3Location location;
  S3Credentials credentials;

  // PEM file of the CAs that sign the endpoint's certificate. Default: empty,
  // meaning AWS_CA_BUNDLE when set (the AWS convention), else the system's
  // store.
  std::string ca_bundle;
  // Skips TLS certificate and host name verification. Default: false. Only
  // for a test gateway with a throw-away certificate; every client built
  // with it logs a warning.
  bool insecure_skip_tls_verify = false;

  // Tries per request (the first included). Default: 5
  int max_attempts = 5;
  // Backoff between tries: full jitter from base doubling to max.
  // Default: 200 ms, 10 s
  int64_t retry_base_ms = 200;
  int64_t retry_max_ms = 10'000;
  // TCP + TLS connect limit per try. Default: 10 s
  int64_t connect_timeout_ms = 10'000;
  // A try moving fewer than 1 KiB/s for this long is a timeout (a whole
  // request has no time limit: a large part may take long). Default: 60 s
  int64_t stall_timeout_s = 60;

  // PutFile uploads files larger than this in parts. Default: 64 MiB
  uint64_t multipart_threshold = 64ull << 20;
  // Part size (RGW and AWS refuse parts below 5 MiB but the last); raised
  // when a file would need more than 10,000 parts. Default: 16 MiB
  uint64_t part_size = 16ull << 20;
  // Parts uploaded at once by one PutFile. Default: 4
  int upload_concurrency = 4;

  // Checked before every try and while transferring; true ends the request
  // with Aborted. Default: none. Must be thread-safe.
  std::function<bool()> cancelled;
};

using S3Metadata = std::map<std::string, std::string>;  // x-amz-meta-<name>: value

struct S3ObjectInfo {
  std::string key;            // relative to the prefix
  uint64_t size = 0;
  std::string etag;           // as the store gives it, without quotes
  std::string last_modified;  // the store's text (ISO 8601 in listings, HTTP date in HEAD)
  S3Metadata metadata;        // HeadObject only; names lower-case, without "x-amz-meta-"
};

struct S3Listing {
  std::vector<S3ObjectInfo> objects;        // in key order
  std::vector<std::string> common_prefixes;  // with a delimiter only
};

struct S3MultipartUpload {
  std::string key;
  std::string upload_id;
  std::string initiated;
};

struct S3CompletedPart {
  int number = 0;
  std::string etag;
};

// One part of a multipart upload: bytes [offset, offset + length) of the
// file, numbered from 1.
struct S3PartRange {
  int number = 0;
  uint64_t offset = 0;
  uint64_t length = 0;
};
// Parts of `part_size` (the last shorter) covering `size` bytes; the part
// size grows to keep at most 10,000 parts. A zero size gives one empty part.
std::vector<S3PartRange> PlanParts(uint64_t size, uint64_t part_size);

// Metadata names: 1-128 of a-z 0-9 '-' '_'; values: printable ASCII without
// leading or trailing blanks. InvalidArgument naming the entry.
Status ValidateMetadata(const S3Metadata& metadata);

// The SigV4-related headers a request carries besides what curl adds
// (Authorization, x-amz-date): x-amz-content-sha256 and, with a session
// token, x-amz-security-token. As "Name: value" lines.
std::vector<std::string> S3AuthHeaders(const S3Credentials& credentials, std::string_view payload_sha256_hex);

class S3Client {
 public:
  // Validates the options (bucket, prefix, sizes, the CA bundle file);
  // InvalidArgument / NotFound naming the field. `env` supplies AWS_CA_BUNDLE.
  static Result<std::unique_ptr<S3Client>> Create(S3ClientOptions options, const EnvLookup& env = ProcessEnv());
  ~S3Client();
  S3Client(const S3Client&) = delete;
  S3Client& operator=(const S3Client&) = delete;

  const S3ClientOptions& options() const { return options_; }
  // "http://host:port" of the endpoint, as messages name it.
  std::string EndpointName() const { return options_.location.endpoint.ToString(); }

  // OK if the bucket exists and the credentials may use it.
  Status HeadBucket();
  // Creates the bucket: OK also when this user owns it already (RGW, and AWS
  // in us-east-1), AlreadyExists when someone else does. For tests and set-up.
  Status CreateBucket();

  // One PUT of `data` (replacing any object of that key).
  Status PutObject(std::string_view key, std::string_view data, const S3Metadata& metadata = {});
  // One PUT streamed from the file (hashed first, then sent).
  Status PutObjectFromFile(std::string_view key, const std::string& path, const S3Metadata& metadata = {});
  // PutObjectFromFile up to `multipart_threshold`, a parallel multipart
  // upload above it. A failed multipart upload is aborted (best effort; a
  // crash leaves it for ListMultipartUploads + AbortMultipartUpload).
  Status PutFile(std::string_view key, const std::string& path, const S3Metadata& metadata = {});

  // The whole object in memory: for small objects (manifests, markers).
  Result<std::string> GetObject(std::string_view key);
  // Downloads to `path` crash-safely: `<path>.tmp`, fsync, rename, fsync the
  // directory. On failure `path` is untouched and the .tmp removed. One
  // download per path at a time (they would share the .tmp).
  Status GetObjectToFile(std::string_view key, const std::string& path);
  Result<S3ObjectInfo> HeadObject(std::string_view key);

  // OK also when the key does not exist (S3 semantics).
  Status DeleteObject(std::string_view key);
  // Batch deletes (1000 keys per request); the first per-key failure, if any.
  Status DeleteObjects(const std::vector<std::string>& keys);

  // Every object under `prefix` (ListObjectsV2, following continuation
  // tokens, `page_size` keys per request). With a delimiter, keys past it
  // are grouped into common_prefixes.
  Result<S3Listing> ListObjects(std::string_view prefix, std::string_view delimiter = {}, int page_size = 1000);

  Result<std::string> CreateMultipartUpload(std::string_view key, const S3Metadata& metadata = {});
  // Uploads the part's byte range of the file; its ETag.
  Result<std::string> UploadPart(std::string_view key, const std::string& upload_id, const S3PartRange& part,
                                 const std::string& path);
  Status CompleteMultipartUpload(std::string_view key, const std::string& upload_id,
                                 const std::vector<S3CompletedPart>& parts);
  Status AbortMultipartUpload(std::string_view key, const std::string& upload_id);
  // Uploads started and neither completed nor aborted under `prefix`.
  Result<std::vector<S3MultipartUpload>> ListMultipartUploads(std::string_view prefix = {});

 private:
  struct Request;
  struct Response;
  class HandlePool;

  explicit S3Client(S3ClientOptions options);
  // Sends the request, retrying as the options say; a 2xx reply or the
  // Status of the last failure.
  Result<Response> Perform(Request& request);
  // (curl types stay out of this header: handle is a CURL*, transfer the
  // try's callback state.)
  void Configure(void* handle, const Request& req, const std::string& url, void* transfer,
                 curl_slist* headers, char* errbuf) const;
  Status TransportFailure(int curl_code, const std::string& curl_text, const Request& req, const std::string& url,
                          const void* transfer, int attempt, bool* retry) const;
  std::string FullKey(std::string_view key) const { return options_.location.prefix + std::string(key); }
  // A request for the object `key` (relative to the prefix): operation, method, full key.
  Request ObjectRequest(std::string operation, std::string method, std::string_view key) const;
  // ValidateObjectKey, and the key with the prefix within S3's 1024 bytes.
  Status CheckKey(std::string_view key) const;

  S3ClientOptions options_;
  std::string sigv4_;  // CURLOPT_AWS_SIGV4: "aws:amz:<region>:s3"
  std::unique_ptr<HandlePool> handles_;
};

}  // namespace ledgerkeep::s3
