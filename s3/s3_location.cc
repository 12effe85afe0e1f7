#include "s3/s3_location.h"

#include <algorithm>
#include <charconv>
#include <cstdio>

namespace ledgerkeep::s3 {
namespace {

bool IsLowerAlnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }

bool IsUnreserved(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '_' || c == '.' || c == '~';
}

bool LooksLikeIpv4(std::string_view s) {
  int parts = 0;
  size_t i = 0;
  while (i <= s.size()) {
    size_t j = s.find('.', i);
    if (j == std::string_view::npos) j = s.size();
    std::string_view part = s.substr(i, j - i);
    if (part.empty() || part.size() > 3) return false;
    for (char c : part) {
      if (c < '0' || c > '9') return false;
    }
    ++parts;
    i = j + 1;
  }
  return parts == 4;
}

// Length of the UTF-8 sequence at s[i], 0 if it is not valid UTF-8
// (overlong forms, surrogates and code points above U+10FFFF refused).
size_t Utf8SequenceLength(std::string_view s, size_t i) {
  const auto b0 = static_cast<unsigned char>(s[i]);
  if (b0 < 0x80) return 1;
  size_t n;
  uint32_t cp;
  if ((b0 & 0xE0) == 0xC0) {
    n = 2;
    cp = b0 & 0x1F;
  } else if ((b0 & 0xF0) == 0xE0) {
    n = 3;
    cp = b0 & 0x0F;
  } else if ((b0 & 0xF8) == 0xF0) {
    n = 4;
    cp = b0 & 0x07;
  } else {
    return 0;
  }
  if (i + n > s.size()) return 0;
  for (size_t k = 1; k < n; ++k) {
    const auto b = static_cast<unsigned char>(s[i + k]);
    if ((b & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (b & 0x3F);
  }
  if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000)) return 0;
  if (cp >= 0xD800 && cp <= 0xDFFF) return 0;
  if (cp > 0x10FFFF) return 0;
  // C1 control characters (U+0080-U+009F) are control characters too.
  if (cp >= 0x80 && cp <= 0x9F) return 0;
  return n;
}

std::string Printable(std::string_view s) {
  std::string out;
  for (unsigned char c : s) {
    if (c < 0x20 || c == 0x7F) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  if (out.size() > 200) out = out.substr(0, 200) + "...";
  return out;
}

}  // namespace

Result<AddressingStyle> ParseAddressingStyle(std::string_view text) {
  if (text == "path") return AddressingStyle::kPath;
  if (text == "virtual-host") return AddressingStyle::kVirtualHost;
  return Status::InvalidArgument("S3 addressing style '" + Printable(text) +
                                 "' must be 'path' (https://host/bucket/key: Ceph RGW, MinIO) or "
                                 "'virtual-host' (https://bucket.host/key: AWS)");
}

std::string S3Endpoint::ToString() const {
  std::string s = https ? "https://" : "http://";
  s += host;
  if (port != 0) s += ":" + std::to_string(port);
  return s;
}

Result<S3Endpoint> ParseS3Endpoint(std::string_view url) {
  // User info may hold a secret: never echo it.
  std::string shown = Printable(url);
  if (size_t at = shown.find('@'); at != std::string::npos) {
    const size_t scheme_end = shown.find("://");
    const size_t from = scheme_end == std::string::npos ? 0 : scheme_end + 3;
    if (at >= from) shown.replace(from, at - from, "<user info>");
  }
  S3Endpoint ep;
  std::string_view rest;
  if (url.starts_with("https://")) {
    ep.https = true;
    rest = url.substr(8);
  } else if (url.starts_with("http://")) {
    ep.https = false;
    rest = url.substr(7);
  } else {
    return Status::InvalidArgument("S3 endpoint '" + shown +
                                   "' must start with https:// or http:// (e.g. https://s3.example.com:7480)");
  }
  if (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
  if (rest.find_first_of("/?#") != std::string_view::npos) {
    return Status::InvalidArgument("S3 endpoint '" + shown +
                                   "' must be scheme://host[:port] only, without a path, query or fragment");
  }
  if (rest.find('@') != std::string_view::npos) {
    return Status::InvalidArgument("S3 endpoint '" + shown +
                                   "' must not carry user info; credentials come from the AWS environment "
                                   "variables or the credentials file");
  }
  std::string_view host = rest;
  std::string_view port;
  bool has_port = false;
  if (rest.starts_with("[")) {
    size_t close = rest.find(']');
    if (close == std::string_view::npos) {
      return Status::InvalidArgument("S3 endpoint '" + shown + "': unterminated IPv6 address");
    }
    host = rest.substr(0, close + 1);
    std::string_view after = rest.substr(close + 1);
    if (!after.empty()) {
      if (after[0] != ':') return Status::InvalidArgument("S3 endpoint '" + shown + "': junk after the IPv6 address");
      port = after.substr(1);
      has_port = true;
    }
  } else if (size_t colon = rest.rfind(':'); colon != std::string_view::npos) {
    host = rest.substr(0, colon);
    port = rest.substr(colon + 1);
    has_port = true;
  }
  if (host.empty() || host == "[]") return Status::InvalidArgument("S3 endpoint '" + shown + "' has no host");
  for (char c : host) {
    const bool ok = IsLowerAlnum(c) || (c >= 'A' && c <= 'Z') || c == '.' || c == '-' || c == '[' ||
                    c == ']' || c == ':';
    if (!ok) return Status::InvalidArgument("S3 endpoint '" + shown + "': the host has a character not allowed in a host name");
  }
  if (has_port) {
    int p = 0;
    auto [ptr, ec] = std::from_chars(port.data(), port.data() + port.size(), p);
    if (ec != std::errc() || ptr != port.data() + port.size() || p < 1 || p > 65535) {
      return Status::InvalidArgument("S3 endpoint '" + shown + "': the port must be a number from 1 to 65535");
    }
    ep.port = p;
  }
  ep.host = std::string(host);
  return ep;
}

Status ValidateBucketName(std::string_view b) {
  const std::string shown = "'" + Printable(b) + "'";
  if (b.size() < 3 || b.size() > 63) {
    return Status::InvalidArgument("bucket name " + shown + " must be 3 to 63 characters long");
  }
  for (char c : b) {
    if (!IsLowerAlnum(c) && c != '.' && c != '-') {
      return Status::InvalidArgument("bucket name " + shown +
                                     " may hold only lower-case letters, digits, '.' and '-'");
    }
  }
  if (!IsLowerAlnum(b.front()) || !IsLowerAlnum(b.back())) {
    return Status::InvalidArgument("bucket name " + shown + " must start and end with a letter or digit");
  }
  if (b.find("..") != std::string_view::npos) {
    return Status::InvalidArgument("bucket name " + shown + " must not contain two adjacent periods");
  }
  if (b.find(".-") != std::string_view::npos || b.find("-.") != std::string_view::npos) {
    return Status::InvalidArgument("bucket name " + shown + " must not have '-' next to '.'");
  }
  if (LooksLikeIpv4(b)) {
    return Status::InvalidArgument("bucket name " + shown + " must not look like an IP address");
  }
  if (b.starts_with("xn--") || b.starts_with("sthree-")) {
    return Status::InvalidArgument("bucket name " + shown + " must not start with 'xn--' or 'sthree-'");
  }
  if (b.ends_with("-s3alias") || b.ends_with("--ol-s3")) {
    return Status::InvalidArgument("bucket name " + shown + " must not end with '-s3alias' or '--ol-s3'");
  }
  return Status::OK();
}

Status ValidateObjectKey(std::string_view key) {
  const std::string shown = "'" + Printable(key) + "'";
  if (key.empty()) return Status::InvalidArgument("an S3 object key must not be empty");
  if (key.size() > 1024) {
    return Status::InvalidArgument("S3 object key " + shown + " is longer than 1024 bytes");
  }
  for (size_t i = 0; i < key.size();) {
    const auto c = static_cast<unsigned char>(key[i]);
    if (c < 0x20 || c == 0x7F) {
      return Status::InvalidArgument("S3 object key " + shown + " contains a control character");
    }
    const size_t n = Utf8SequenceLength(key, i);
    if (n == 0) {
      return Status::InvalidArgument("S3 object key " + shown +
                                     " is not valid UTF-8 (or holds a control character)");
    }
    i += n;
  }
  if (key.front() == '/') {
    return Status::InvalidArgument("S3 object key " + shown + " must not start with '/'");
  }
  size_t start = 0;
  while (start <= key.size()) {
    size_t end = key.find('/', start);
    if (end == std::string_view::npos) end = key.size();
    std::string_view seg = key.substr(start, end - start);
    // A trailing '/' (a "directory" key or prefix) leaves one empty last
    // segment, which is fine; an empty one inside ("a//b") is not.
    if (seg.empty() && end != key.size()) {
      return Status::InvalidArgument("S3 object key " + shown + " has an empty path segment ('//')");
    }
    if (seg == "." || seg == "..") {
      return Status::InvalidArgument("S3 object key " + shown + " must not have a '.' or '..' path segment");
    }
    start = end + 1;
  }
  return Status::OK();
}

Result<S3Url> ParseS3Url(std::string_view url) {
  if (!url.starts_with("s3://")) {
    return Status::InvalidArgument("'" + Printable(url) + "' is not an S3 location: write s3://bucket[/prefix]");
  }
  std::string_view rest = url.substr(5);
  const size_t slash = rest.find('/');
  S3Url out;
  out.bucket = std::string(rest.substr(0, slash));
  if (out.bucket.empty()) {
    return Status::InvalidArgument("'" + Printable(url) + "' names no bucket: write s3://bucket[/prefix]");
  }
  LK_RETURN_IF_ERROR(ValidateBucketName(out.bucket).WithContext("in '" + Printable(url) + "'"));
  if (slash != std::string_view::npos) {
    std::string_view prefix = rest.substr(slash + 1);
    if (!prefix.empty()) {
      std::string p(prefix);
      if (p.back() != '/') p += '/';
      LK_RETURN_IF_ERROR(ValidateObjectKey(p).WithContext("in '" + Printable(url) + "'"));
      out.prefix = std::move(p);
    }
  }
  return out;
}

std::string UriEncode(std::string_view s, bool keep_slash) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size());
  for (unsigned char c : s) {
    if (IsUnreserved(c) || (keep_slash && c == '/')) {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 0xF];
    }
  }
  return out;
}

std::string CanonicalQuery(QueryParams params) {
  for (auto& [k, v] : params) {
    k = UriEncode(k, false);
    v = UriEncode(v, false);
  }
  std::sort(params.begin(), params.end());
  std::string out;
  for (const auto& [k, v] : params) {
    if (!out.empty()) out += '&';
    out += k;
    out += '=';
    out += v;
  }
  return out;
}

std::string ObjectUrl(const S3Location& location, std::string_view key, const QueryParams& query) {
  const S3Endpoint& ep = location.endpoint;
  std::string url = ep.https ? "https://" : "http://";
  std::string path;
  if (location.addressing == AddressingStyle::kVirtualHost) {
    url += location.bucket + "." + ep.host;
    path = "/" + UriEncode(key, true);
  } else {
    url += ep.host;
    path = "/" + location.bucket + "/" + UriEncode(key, true);
    // The bucket itself: "/bucket" (RGW and AWS take both; no trailing slash
    // keeps the canonical URI obvious).
    if (key.empty()) path.pop_back();
  }
  if (ep.port != 0) url += ":" + std::to_string(ep.port);
  url += path;
  if (!query.empty()) url += "?" + CanonicalQuery(query);
  return url;
}

}  // namespace ledgerkeep::s3
