// Where objects live on an S3-compatible store: the endpoint, region,
// addressing style, bucket and key prefix, and the validation of bucket names
// and keys. Pure functions, no I/O; thread-safe.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"

namespace ledgerkeep::s3 {

enum class AddressingStyle {
  kPath,         // https://host:port/bucket/key (Ceph RGW, MinIO)
  kVirtualHost,  // https://bucket.host:port/key (AWS)
};

// "path" or "virtual-host" (how operators write it); InvalidArgument
// naming both otherwise.
Result<AddressingStyle> ParseAddressingStyle(std::string_view text);

// "http://host:port" or "https://host" (no path, query or user info).
struct S3Endpoint {
  bool https = true;
  std::string host;  // a DNS name, an IPv4 address or "[v6]"
  int port = 0;      // 0: the scheme's default (443 / 80)

  // "https://host[:port]" as parsed (the name operators read in messages).
  std::string ToString() const;
};

// InvalidArgument naming what is wrong: a scheme other than http/https, a
// path, query, fragment or user info, an empty host, a bad port.
Result<S3Endpoint> ParseS3Endpoint(std::string_view url);

struct S3Location {
  S3Endpoint endpoint;
  std::string region = "us-east-1";  // Default: us-east-1 (what RGW answers to)
  AddressingStyle addressing = AddressingStyle::kPath;  // Default: path-style
  std::string bucket;
  // Prepended to every key the caller names; empty or ending in '/'.
  std::string prefix;
};

// "s3://bucket" or "s3://bucket/some/prefix": the bucket and the prefix (a
// prefix gets a trailing '/'; "s3://b/" has none). InvalidArgument with the
// reason (scheme, bucket name rules, key rules).
struct S3Url {
  std::string bucket;
  std::string prefix;
};
Result<S3Url> ParseS3Url(std::string_view url);

// The S3 bucket naming rules: 3-63 characters of a-z, 0-9, '.', '-';
// starting and ending with a letter or digit; no "..", no IPv4 address form,
// no "xn--" prefix, no "-s3alias" suffix. OK or InvalidArgument saying which
// rule the name breaks.
Status ValidateBucketName(std::string_view bucket);

// Object keys ledgerkeep writes or reads: 1-1024 bytes of valid UTF-8, no
// control characters (including DEL), no empty, "." or ".." path segment, no
// leading '/'. OK or InvalidArgument naming the key and the rule.
Status ValidateObjectKey(std::string_view key);

// RFC 3986 percent-encoding as SigV4 wants it: unreserved characters
// (A-Z a-z 0-9 - _ . ~) stay, everything else becomes %XX (upper-case hex);
// '/' stays when `keep_slash` (object paths) and is encoded otherwise
// (query keys and values).
std::string UriEncode(std::string_view s, bool keep_slash);

// A query string in SigV4 canonical form: each name and value UriEncoded,
// sorted by name then value, joined by '&', every name followed by '='
// (also "uploads="). curl 7.88 signs the query exactly as it appears in the
// URL, so the URL must carry this form.
using QueryParams = std::vector<std::pair<std::string, std::string>>;
std::string CanonicalQuery(QueryParams params);

// The URL of `key` in the location's bucket (key already includes any
// prefix; empty key: the bucket itself), with `query` in canonical form.
// Path-style: <endpoint>/<bucket>/<key>; virtual-host:
// <scheme>://<bucket>.<host>[:port]/<key>.
std::string ObjectUrl(const S3Location& location, std::string_view key,
                      const QueryParams& query = {});

}  // namespace ledgerkeep::s3
