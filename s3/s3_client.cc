#include "s3/s3_client.h"

#include <curl/curl.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <pugixml.hpp>
#include <random>
#include <thread>

#include "common/backoff.h"
#include "common/file_util.h"
#include "common/parallel_for.h"
#include "common/sha256.h"
#include "s3/s3_errors.h"

namespace ledgerkeep::s3 {
namespace {

constexpr uint64_t kMaxParts = 10'000;
constexpr size_t kMaxErrorBody = 64 * 1024;
constexpr char kEmptySha256[] = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

void GlobalInitOnce() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

std::string Lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return std::tolower(c); });
  return out;
}

std::string StripQuotes(std::string s) {
  if (s.size() >= 2 && s.front() == '"' && s.back() == '"') return s.substr(1, s.size() - 2);
  return s;
}

std::string XmlEscape(std::string_view s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&apos;"; break;
      default: out += c;
    }
  }
  return out;
}

// Content-MD5 (base64 of the MD5 digest): DeleteObjects requires it.
std::string ContentMd5(std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_Digest(data.data(), data.size(), md, &n, EVP_md5(), nullptr);
  unsigned char b64[64];
  const int len = EVP_EncodeBlock(b64, md, static_cast<int>(n));
  return std::string(reinterpret_cast<char*>(b64), static_cast<size_t>(len));
}

// SHA-256 of bytes [offset, offset + length) of an open file.
Result<std::string> Sha256Range(int fd, uint64_t offset, uint64_t length, const std::string& path) {
  Sha256 h;
  std::vector<char> buf(1 << 20);
  uint64_t done = 0;
  while (done < length) {
    const size_t want = static_cast<size_t>(std::min<uint64_t>(buf.size(), length - done));
    const ssize_t n = ::pread(fd, buf.data(), want, static_cast<off_t>(offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::FromErrno(errno, "read " + path);
    }
    if (n == 0) return Status::IOError("read " + path + ": the file shrank while being uploaded");
    h.Update(buf.data(), static_cast<size_t>(n));
    done += static_cast<uint64_t>(n);
  }
  return h.FinishHex();
}

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }

 private:
  int fd_;
};

}  // namespace

// ------------------------------------------------------------------ pure helpers

std::vector<S3PartRange> PlanParts(uint64_t size, uint64_t part_size) {
  part_size = std::max<uint64_t>(part_size, 1);
  if ((size + part_size - 1) / part_size > kMaxParts) part_size = (size + kMaxParts - 1) / kMaxParts;
  std::vector<S3PartRange> parts;
  uint64_t offset = 0;
  int number = 1;
  do {
    const uint64_t len = std::min(part_size, size - offset);
    parts.push_back({number++, offset, len});
    offset += len;
  } while (offset < size);
  return parts;
}

Status ValidateMetadata(const S3Metadata& metadata) {
  for (const auto& [name, value] : metadata) {
    if (name.empty() || name.size() > 128 ||
        !std::all_of(name.begin(), name.end(), [](char c) {
          return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
        })) {
      return Status::InvalidArgument("S3 metadata name '" + name +
                                     "' must be 1-128 characters of a-z, 0-9, '-' and '_'");
    }
    if (!std::all_of(value.begin(), value.end(), [](char c) { return c >= 0x20 && c < 0x7F; })) {
      return Status::InvalidArgument("S3 metadata value of '" + name + "' must be printable ASCII");
    }
    if (!value.empty() && (value.front() == ' ' || value.back() == ' ')) {
      return Status::InvalidArgument("S3 metadata value of '" + name + "' must not start or end with a blank");
    }
  }
  return Status::OK();
}

std::vector<std::string> S3AuthHeaders(const S3Credentials& credentials, std::string_view payload_sha256_hex) {
  std::vector<std::string> h;
  h.push_back("x-amz-content-sha256: " + std::string(payload_sha256_hex));
  if (!credentials.session_token.empty()) h.push_back("x-amz-security-token: " + credentials.session_token);
  return h;
}

// ------------------------------------------------------------------ handle pool

class S3Client::HandlePool {
 public:
  ~HandlePool() {
    for (CURL* h : idle_) curl_easy_cleanup(h);
  }
  CURL* Take() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!idle_.empty()) {
        CURL* h = idle_.back();
        idle_.pop_back();
        curl_easy_reset(h);  // keeps the connection cache
        return h;
      }
    }
    return curl_easy_init();
  }
  void Give(CURL* h) {
    std::lock_guard<std::mutex> lock(mu_);
    idle_.push_back(h);
  }

 private:
  std::mutex mu_;
  std::vector<CURL*> idle_;  // guarded by mu_
};

// ------------------------------------------------------------------ requests

struct S3Client::Request {
  S3RequestContext ctx;
  std::string method = "GET";  // GET, HEAD, PUT, POST, DELETE
  std::string key;             // full key (prefix included); empty: the bucket
  QueryParams query;
  std::vector<std::string> headers;  // besides the auth headers
  // The payload: `body` in memory, or bytes [offset, offset + length) of fd.
  std::string_view body;
  int body_fd = -1;
  uint64_t body_offset = 0;
  uint64_t body_length = 0;
  std::string body_path;       // for messages
  std::string payload_sha256;  // empty: computed from `body`
  // Where a successful reply's body goes: the response (default) or fd.
  int sink_fd = -1;
  std::string sink_path;
};

S3Client::Request S3Client::ObjectRequest(std::string operation, std::string method, std::string_view key) const {
  Request r;
  r.ctx.operation = std::move(operation);
  r.ctx.key = FullKey(key);
  r.method = std::move(method);
  r.key = r.ctx.key;
  return r;
}

struct S3Client::Response {
  long status = 0;
  std::map<std::string, std::string> headers;  // lower-case names, last value wins
  std::string body;
};

namespace {

// What one try's callbacks share.
struct Transfer {
  CURL* handle = nullptr;
  const std::string_view* mem = nullptr;
  int body_fd = -1;
  uint64_t body_offset = 0;
  uint64_t body_length = 0;
  uint64_t sent = 0;
  int read_errno = 0;

  int sink_fd = -1;
  int write_errno = 0;
  std::string* reply;  // reply body (and error bodies when sinking to a file)
  std::map<std::string, std::string>* headers;
  const std::function<bool()>* cancelled = nullptr;
  bool was_cancelled = false;
};

size_t ReadBody(char* buf, size_t size, size_t nitems, void* userp) {
  auto* t = static_cast<Transfer*>(userp);
  const uint64_t left = t->body_length - t->sent;
  const size_t n = static_cast<size_t>(std::min<uint64_t>(size * nitems, left));
  if (n == 0) return 0;
  if (t->mem != nullptr) {
    std::memcpy(buf, t->mem->data() + t->sent, n);
    t->sent += n;
    return n;
  }
  for (;;) {
    const ssize_t r = ::pread(t->body_fd, buf, n, static_cast<off_t>(t->body_offset + t->sent));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) {
      t->read_errno = r < 0 ? errno : EIO;
      return CURL_READFUNC_ABORT;
    }
    t->sent += static_cast<uint64_t>(r);
    return static_cast<size_t>(r);
  }
}

int SeekBody(void* userp, curl_off_t offset, int origin) {
  auto* t = static_cast<Transfer*>(userp);
  if (origin != SEEK_SET || offset < 0 || static_cast<uint64_t>(offset) > t->body_length) {
    return CURL_SEEKFUNC_CANTSEEK;
  }
  t->sent = static_cast<uint64_t>(offset);
  return CURL_SEEKFUNC_OK;
}

size_t WriteReply(char* ptr, size_t size, size_t nmemb, void* userp) {
  auto* t = static_cast<Transfer*>(userp);
  const size_t n = size * nmemb;
  long status = 0;
  curl_easy_getinfo(t->handle, CURLINFO_RESPONSE_CODE, &status);
  if (t->sink_fd >= 0 && status >= 200 && status < 300) {
    size_t done = 0;
    while (done < n) {
      const ssize_t w = ::write(t->sink_fd, ptr + done, n - done);
      if (w < 0) {
        if (errno == EINTR) continue;
        t->write_errno = errno;
        return 0;  // CURLE_WRITE_ERROR
      }
      done += static_cast<size_t>(w);
    }
    return n;
  }
  if (t->sink_fd >= 0 && t->reply->size() + n > kMaxErrorBody) return n;  // an error body: keep its start
  t->reply->append(ptr, n);
  return n;
}

size_t HeaderLine(char* buf, size_t size, size_t nitems, void* userp) {
  auto* t = static_cast<Transfer*>(userp);
  const size_t n = size * nitems;
  std::string_view line(buf, n);
  if (line.starts_with("HTTP/")) {
    t->headers->clear();  // a new response (after 100 Continue or a redirect)
    return n;
  }
  const size_t colon = line.find(':');
  if (colon == std::string_view::npos) return n;
  std::string_view value = line.substr(colon + 1);
  while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
  while (!value.empty() && (value.back() == '\r' || value.back() == '\n' || value.back() == ' ')) {
    value.remove_suffix(1);
  }
  (*t->headers)[Lower(line.substr(0, colon))] = std::string(value);
  return n;
}

int Progress(void* userp, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  auto* t = static_cast<Transfer*>(userp);
  if (*t->cancelled && (*t->cancelled)()) {
    t->was_cancelled = true;
    return 1;
  }
  return 0;
}

bool IsTlsVerificationError(CURLcode rc) {
  return rc == CURLE_PEER_FAILED_VERIFICATION || rc == CURLE_SSL_CACERT_BADFILE ||
         rc == CURLE_SSL_CERTPROBLEM || rc == CURLE_SSL_ISSUER_ERROR || rc == CURLE_SSL_PINNEDPUBKEYNOTMATCH;
}

bool IsRetryableTransportError(CURLcode rc) {
  switch (rc) {
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_SSL_CONNECT_ERROR:
      return true;
    default:
      return false;
  }
}

}  // namespace

S3Client::S3Client(S3ClientOptions options)
    : options_(std::move(options)),
      sigv4_("aws:amz:" + options_.location.region + ":s3"),
      handles_(std::make_unique<HandlePool>()) {}

S3Client::~S3Client() = default;

Result<std::unique_ptr<S3Client>> S3Client::Create(S3ClientOptions options, const EnvLookup& env) {
  GlobalInitOnce();
  S3Location& loc = options.location;
  if (loc.endpoint.host.empty()) return Status::InvalidArgument("S3 client: no endpoint given");
  LK_RETURN_IF_ERROR(ValidateBucketName(loc.bucket));
  if (!loc.prefix.empty()) {
    if (loc.prefix.back() != '/') loc.prefix += '/';
    LK_RETURN_IF_ERROR(ValidateObjectKey(loc.prefix));
  }
  if (loc.region.empty()) loc.region = "us-east-1";
  if (loc.region.find_first_of(":/ ") != std::string::npos) {
    return Status::InvalidArgument("S3 region '" + loc.region + "' must not contain ':', '/' or blanks");
  }
  if (options.credentials.access_key_id.empty() || options.credentials.secret_access_key.empty()) {
    return Status::InvalidArgument("S3 client: no credentials (access key id and secret key are required)");
  }
  if (options.max_attempts < 1) return Status::InvalidArgument("S3 client: max_attempts must be at least 1");
  if (options.upload_concurrency < 1) {
    return Status::InvalidArgument("S3 client: upload_concurrency must be at least 1");
  }
  if (options.part_size < (5ull << 20)) {
    return Status::InvalidArgument("S3 part size " + std::to_string(options.part_size) +
                                   " is below the 5 MiB minimum of S3 and RGW");
  }
  if (options.ca_bundle.empty()) {
    if (auto env_bundle = env("AWS_CA_BUNDLE")) options.ca_bundle = *env_bundle;
  }
  if (!options.ca_bundle.empty() && ::access(options.ca_bundle.c_str(), R_OK) != 0) {
    return Status::FromErrno(errno, "the S3 CA bundle " + options.ca_bundle + " cannot be read");
  }
  if (options.insecure_skip_tls_verify && loc.endpoint.https) {
    spdlog::warn(
        "S3 endpoint {}: TLS certificate verification is OFF (insecure_skip_tls_verify); anyone on the path "
        "can read and change what is stored. Use a CA bundle instead.",
        loc.endpoint.ToString());
  }
  return std::unique_ptr<S3Client>(new S3Client(std::move(options)));
}

// One try's curl options: the request, signing, TLS, limits, callbacks.
void S3Client::Configure(void* handle, const Request& req, const std::string& url, void* transfer,
                         curl_slist* headers, char* errbuf) const {
  CURL* h = handle;
  auto* t = static_cast<Transfer*>(transfer);
  curl_easy_setopt(h, CURLOPT_URL, url.c_str());
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(h, CURLOPT_AWS_SIGV4, sigv4_.c_str());
  curl_easy_setopt(h, CURLOPT_USERNAME, options_.credentials.access_key_id.c_str());
  curl_easy_setopt(h, CURLOPT_PASSWORD, options_.credentials.secret_access_key.c_str());
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(options_.connect_timeout_ms));
  curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1024L);
  curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, static_cast<long>(options_.stall_timeout_s));
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, WriteReply);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, t);
  curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, HeaderLine);
  curl_easy_setopt(h, CURLOPT_HEADERDATA, t);
  if (options_.cancelled) {
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, Progress);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, t);
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
  }
  if (!options_.ca_bundle.empty()) curl_easy_setopt(h, CURLOPT_CAINFO, options_.ca_bundle.c_str());
  if (options_.insecure_skip_tls_verify) {
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
  }
  if (req.method == "HEAD") {
    curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
  } else if (req.method == "DELETE") {
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, "DELETE");
  } else if (req.method == "PUT") {
    curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(req.body_length));
  } else if (req.method == "POST") {
    curl_easy_setopt(h, CURLOPT_POST, 1L);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(req.body_length));
  }
  if (req.method == "PUT" || req.method == "POST") {
    // The body comes from the read callback (memory or a file range); the
    // seek callback lets curl send it again (a 100-continue refused, ...).
    curl_easy_setopt(h, CURLOPT_READFUNCTION, ReadBody);
    curl_easy_setopt(h, CURLOPT_READDATA, t);
    curl_easy_setopt(h, CURLOPT_SEEKFUNCTION, SeekBody);
    curl_easy_setopt(h, CURLOPT_SEEKDATA, t);
  }
}

// The Status of a try that curl itself failed, and whether to retry it.
Status S3Client::TransportFailure(int curl_code, const std::string& curl_text, const Request& req,
                                  const std::string& url, const void* transfer, int attempt,
                                  bool* retry) const {
  const auto rc = static_cast<CURLcode>(curl_code);
  const auto* t = static_cast<const Transfer*>(transfer);
  const std::string what = req.ctx.operation + " " + url;
  const std::string tries = attempt > 1 ? " (try " + std::to_string(attempt) + ")" : "";
  *retry = false;
  if (t->was_cancelled || rc == CURLE_ABORTED_BY_CALLBACK) return Status::Aborted(what + ": cancelled");
  if (rc == CURLE_WRITE_ERROR && t->write_errno != 0) return Status::FromErrno(t->write_errno, "write " + req.sink_path);
  if (rc == CURLE_READ_ERROR) return Status::FromErrno(t->read_errno != 0 ? t->read_errno : EIO, "read " + req.body_path);
  if (IsTlsVerificationError(rc)) {
    return Status::FailedPrecondition(
        what + ": TLS verification of " + EndpointName() + " failed (" + curl_text + "); " +
        (options_.ca_bundle.empty() ? "if the gateway's certificate is signed by a private CA, give its PEM "
                                      "file as the CA bundle option (or AWS_CA_BUNDLE)"
                                    : "the CA bundle " + options_.ca_bundle +
                                          " does not vouch for it: check the CA bundle option / "
                                          "AWS_CA_BUNDLE and the certificate's host names"));
  }
  *retry = IsRetryableTransportError(rc);
  if (rc == CURLE_OPERATION_TIMEDOUT) {
    return Status::Timeout(what + ": the S3 endpoint " + EndpointName() + " timed out" + tries + ": " + curl_text);
  }
  return Status::Unavailable(what + ": cannot reach the S3 endpoint " + EndpointName() + tries + ": " + curl_text);
}

Result<S3Client::Response> S3Client::Perform(Request& req) {
  req.ctx.endpoint = EndpointName();
  req.ctx.bucket = options_.location.bucket;
  req.ctx.credentials_source = options_.credentials.source;
  if (req.payload_sha256.empty()) {
    req.payload_sha256 = req.body.empty() ? kEmptySha256 : Sha256Hex(req.body);
  }
  if (req.body_fd < 0) req.body_length = req.body.size();
  const std::string url = ObjectUrl(options_.location, req.key, req.query);
  auto cancelled = [this] { return options_.cancelled && options_.cancelled(); };

  std::random_device rd;
  ExponentialBackoff backoff(options_.retry_base_ms, options_.retry_max_ms, (uint64_t{rd()} << 32) | rd());
  Status last;
  for (int attempt = 1; attempt <= options_.max_attempts; ++attempt) {
    if (cancelled()) return Status::Aborted(req.ctx.operation + ": cancelled");
    if (attempt > 1) {
      // Sleep in slices so that a cancellation is seen soon.
      const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(backoff.NextDelayMs());
      while (std::chrono::steady_clock::now() < until) {
        if (cancelled()) return Status::Aborted(req.ctx.operation + ": cancelled");
        std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(
            std::chrono::milliseconds(50), until - std::chrono::steady_clock::now()));
      }
      if (req.sink_fd >= 0 && (::ftruncate(req.sink_fd, 0) != 0 || ::lseek(req.sink_fd, 0, SEEK_SET) != 0)) {
        return Status::FromErrno(errno, "truncate " + req.sink_path);
      }
    }

    Response resp;
    Transfer t;
    t.reply = &resp.body;
    t.headers = &resp.headers;
    t.mem = req.body_fd < 0 ? &req.body : nullptr;
    t.body_fd = req.body_fd;
    t.body_offset = req.body_offset;
    t.body_length = req.body_length;
    t.sink_fd = req.sink_fd;
    t.cancelled = &options_.cancelled;
    curl_slist* headers = nullptr;
    for (const std::string& line : S3AuthHeaders(options_.credentials, req.payload_sha256)) {
      headers = curl_slist_append(headers, line.c_str());
    }
    for (const std::string& line : req.headers) headers = curl_slist_append(headers, line.c_str());

    CURL* h = handles_->Take();
    if (h == nullptr) {
      curl_slist_free_all(headers);
      return Status::Internal("curl_easy_init failed");
    }
    t.handle = h;
    char errbuf[CURL_ERROR_SIZE] = {};
    Configure(h, req, url, &t, headers, errbuf);
    const CURLcode rc = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &resp.status);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, nullptr);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, nullptr);
    curl_slist_free_all(headers);
    handles_->Give(h);

    if (rc != CURLE_OK) {
      bool retry = false;
      last = TransportFailure(rc, errbuf[0] != '\0' ? errbuf : curl_easy_strerror(rc), req, url, &t, attempt, &retry);
      if (!retry) return last;
      continue;
    }
    if (resp.status >= 200 && resp.status < 300) return resp;
    auto rid = resp.headers.find("x-amz-request-id");
    last = MapS3Error(req.ctx, resp.status, resp.body, rid == resp.headers.end() ? "" : rid->second);
    if (!IsRetryableHttpStatus(resp.status, ParseS3ErrorReply(resp.body).code)) return last;
  }
  const int n = options_.max_attempts;
  return last.WithContext("gave up after " + std::to_string(n) + (n == 1 ? " try" : " tries"));
}

// ------------------------------------------------------------------ operations

Status S3Client::CheckKey(std::string_view key) const {
  LK_RETURN_IF_ERROR(ValidateObjectKey(key));
  if (options_.location.prefix.size() + key.size() > 1024) {
    return Status::InvalidArgument("S3 object key " + FullKey(key).substr(0, 200) +
                                   "... is longer than 1024 bytes with the prefix");
  }
  return Status::OK();
}

Status S3Client::HeadBucket() {
  Request r;
  r.ctx.operation = "HeadBucket";
  r.method = "HEAD";
  return Perform(r).status();
}

Status S3Client::CreateBucket() {
  Request r;
  r.ctx.operation = "CreateBucket";
  r.method = "PUT";
  return Perform(r).status();
}

namespace {
std::vector<std::string> MetadataHeaders(const S3Metadata& metadata) {
  std::vector<std::string> h;
  for (const auto& [name, value] : metadata) h.push_back("x-amz-meta-" + name + ": " + value);
  return h;
}
}  // namespace

Status S3Client::PutObject(std::string_view key, std::string_view data, const S3Metadata& metadata) {
  LK_RETURN_IF_ERROR(CheckKey(key));
  LK_RETURN_IF_ERROR(ValidateMetadata(metadata));
  Request r = ObjectRequest("PutObject", "PUT", key);
  r.headers = MetadataHeaders(metadata);
  r.body = data;
  return Perform(r).status();
}

Status S3Client::PutObjectFromFile(std::string_view key, const std::string& path, const S3Metadata& metadata) {
  LK_RETURN_IF_ERROR(CheckKey(key));
  LK_RETURN_IF_ERROR(ValidateMetadata(metadata));
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) return Status::FromErrno(errno, "open " + path);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return Status::FromErrno(errno, "stat " + path);
  Request r = ObjectRequest("PutObject", "PUT", key);
  r.headers = MetadataHeaders(metadata);
  r.body_fd = fd.get();
  r.body_length = static_cast<uint64_t>(st.st_size);
  r.body_path = path;
  LK_ASSIGN_OR_RETURN(r.payload_sha256, Sha256Range(fd.get(), 0, r.body_length, path));
  return Perform(r).status();
}

Status S3Client::PutFile(std::string_view key, const std::string& path, const S3Metadata& metadata) {
  LK_RETURN_IF_ERROR(CheckKey(key));
  LK_RETURN_IF_ERROR(ValidateMetadata(metadata));
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return Status::FromErrno(errno, "stat " + path);
  const auto size = static_cast<uint64_t>(st.st_size);
  if (size <= options_.multipart_threshold) return PutObjectFromFile(key, path, metadata);

  const std::vector<S3PartRange> parts = PlanParts(size, options_.part_size);
  LK_ASSIGN_OR_RETURN(std::string upload_id, CreateMultipartUpload(key, metadata));
  std::vector<S3CompletedPart> done(parts.size());
  std::vector<Status> errors(parts.size());
  std::atomic<bool> failed{false};
  ParallelFor(parts.size(), options_.upload_concurrency, [&](size_t i) {
    if (failed) return;  // one part failed for good: do not start more
    Result<std::string> etag = UploadPart(key, upload_id, parts[i], path);
    if (!etag.ok()) {
      errors[i] = etag.status();
      failed = true;
      return;
    }
    done[i] = {parts[i].number, *etag};
  });
  Status status;
  for (const Status& s : errors) {
    if (!s.ok()) {
      status = s;
      break;
    }
  }
  if (status.ok()) status = CompleteMultipartUpload(key, upload_id, done);
  if (!status.ok()) {
    Status abort = AbortMultipartUpload(key, upload_id);
    if (!abort.ok()) {
      spdlog::warn("could not abort multipart upload {} of s3://{}/{} after a failure: {}", upload_id,
                   options_.location.bucket, FullKey(key), abort.ToString());
    }
  }
  return status;
}

Result<std::string> S3Client::GetObject(std::string_view key) {
  LK_RETURN_IF_ERROR(CheckKey(key));
  Request r = ObjectRequest("GetObject", "GET", key);
  LK_ASSIGN_OR_RETURN(Response resp, Perform(r));
  return std::move(resp.body);
}

Status S3Client::GetObjectToFile(std::string_view key, const std::string& path) {
  LK_RETURN_IF_ERROR(CheckKey(key));
  const std::string tmp = path + ".tmp";
  Fd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (fd.get() < 0) return Status::FromErrno(errno, "create " + tmp);
  Request r = ObjectRequest("GetObject", "GET", key);
  r.sink_fd = fd.get();
  r.sink_path = tmp;
  Status s = Perform(r).status();
  if (s.ok() && ::fsync(fd.get()) != 0) s = Status::FromErrno(errno, "fsync " + tmp);
  if (s.ok() && ::close(fd.release()) != 0) s = Status::FromErrno(errno, "close " + tmp);
  if (s.ok() && ::rename(tmp.c_str(), path.c_str()) != 0) s = Status::FromErrno(errno, "rename " + tmp);
  if (s.ok()) return SyncParentDirectory(path);
  ::unlink(tmp.c_str());
  return s;
}

Result<S3ObjectInfo> S3Client::HeadObject(std::string_view key) {
  LK_RETURN_IF_ERROR(CheckKey(key));
  Request r = ObjectRequest("HeadObject", "HEAD", key);
  LK_ASSIGN_OR_RETURN(Response resp, Perform(r));
  S3ObjectInfo info;
  info.key = std::string(key);
  for (const auto& [name, value] : resp.headers) {
    if (name == "content-length") {
      info.size = std::strtoull(value.c_str(), nullptr, 10);
    } else if (name == "etag") {
      info.etag = StripQuotes(value);
    } else if (name == "last-modified") {
      info.last_modified = value;
    } else if (name.starts_with("x-amz-meta-")) {
      info.metadata[name.substr(11)] = value;
    }
  }
  return info;
}

Status S3Client::DeleteObject(std::string_view key) {
  LK_RETURN_IF_ERROR(CheckKey(key));
  Request r = ObjectRequest("DeleteObject", "DELETE", key);
  return Perform(r).status();
}

Status S3Client::DeleteObjects(const std::vector<std::string>& keys) {
  for (const std::string& k : keys) LK_RETURN_IF_ERROR(CheckKey(k));
  for (size_t start = 0; start < keys.size(); start += 1000) {
    const size_t end = std::min(keys.size(), start + 1000);
    std::string xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Delete><Quiet>true</Quiet>";
    for (size_t i = start; i < end; ++i) xml += "<Object><Key>" + XmlEscape(FullKey(keys[i])) + "</Key></Object>";
    xml += "</Delete>";
    Request r;
    r.ctx.operation = "DeleteObjects";
    r.method = "POST";
    r.query = {{"delete", ""}};
    r.headers = {"Content-Type: application/xml", "Content-MD5: " + ContentMd5(xml)};
    r.body = xml;
    LK_ASSIGN_OR_RETURN(Response resp, Perform(r));
    pugi::xml_document doc;
    if (!doc.load_buffer(resp.body.data(), resp.body.size())) {
      return Status::Corruption("DeleteObjects at " + EndpointName() + ": the reply is not XML");
    }
    for (pugi::xml_node e : doc.child("DeleteResult").children("Error")) {
      return Status::IOError("DeleteObjects at " + EndpointName() + ": s3://" + options_.location.bucket + "/" +
                             e.child_value("Key") + " was not deleted (" + e.child_value("Code") + ": " +
                             e.child_value("Message") + ")");
    }
  }
  return Status::OK();
}

Result<S3Listing> S3Client::ListObjects(std::string_view prefix, std::string_view delimiter, int page_size) {
  const std::string full_prefix = FullKey(prefix);
  const size_t strip = options_.location.prefix.size();
  S3Listing out;
  std::string token;
  for (;;) {
    Request r;
    r.ctx.operation = "ListObjectsV2";
    r.query = {{"list-type", "2"}, {"max-keys", std::to_string(std::clamp(page_size, 1, 1000))}};
    if (!full_prefix.empty()) r.query.emplace_back("prefix", full_prefix);
    if (!delimiter.empty()) r.query.emplace_back("delimiter", std::string(delimiter));
    if (!token.empty()) r.query.emplace_back("continuation-token", token);
    LK_ASSIGN_OR_RETURN(Response resp, Perform(r));
    pugi::xml_document doc;
    if (!doc.load_buffer(resp.body.data(), resp.body.size())) {
      return Status::Corruption("ListObjectsV2 at " + EndpointName() + ": the reply is not XML");
    }
    pugi::xml_node root = doc.child("ListBucketResult");
    if (!root) return Status::Corruption("ListObjectsV2 at " + EndpointName() + ": no ListBucketResult in the reply");
    for (pugi::xml_node c : root.children("Contents")) {
      std::string key = c.child_value("Key");
      if (key.size() < strip) continue;
      S3ObjectInfo info;
      info.key = key.substr(strip);
      info.size = std::strtoull(c.child_value("Size"), nullptr, 10);
      info.etag = StripQuotes(c.child_value("ETag"));
      info.last_modified = c.child_value("LastModified");
      out.objects.push_back(std::move(info));
    }
    for (pugi::xml_node p : root.children("CommonPrefixes")) {
      std::string cp = p.child_value("Prefix");
      if (cp.size() >= strip) out.common_prefixes.push_back(cp.substr(strip));
    }
    const std::string truncated = root.child_value("IsTruncated");
    if (truncated != "true") break;
    std::string next = root.child_value("NextContinuationToken");
    if (next.empty() || next == token) {
      return Status::Corruption("ListObjectsV2 at " + EndpointName() +
                                ": the reply is truncated but gives no new continuation token");
    }
    token = std::move(next);
  }
  return out;
}

Result<std::string> S3Client::CreateMultipartUpload(std::string_view key, const S3Metadata& metadata) {
  LK_RETURN_IF_ERROR(CheckKey(key));
  LK_RETURN_IF_ERROR(ValidateMetadata(metadata));
  Request r = ObjectRequest("CreateMultipartUpload", "POST", key);
  r.query = {{"uploads", ""}};
  r.headers = MetadataHeaders(metadata);
  LK_ASSIGN_OR_RETURN(Response resp, Perform(r));
  pugi::xml_document doc;
  doc.load_buffer(resp.body.data(), resp.body.size());
  std::string id = doc.child("InitiateMultipartUploadResult").child_value("UploadId");
  if (id.empty()) {
    return Status::Corruption("CreateMultipartUpload s3://" + options_.location.bucket + "/" + r.ctx.key + " at " +
                              EndpointName() + ": the reply has no UploadId");
  }
  return id;
}

Result<std::string> S3Client::UploadPart(std::string_view key, const std::string& upload_id,
                                         const S3PartRange& part, const std::string& path) {
  LK_RETURN_IF_ERROR(CheckKey(key));
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) return Status::FromErrno(errno, "open " + path);
  Request r = ObjectRequest("UploadPart " + std::to_string(part.number), "PUT", key);
  r.query = {{"partNumber", std::to_string(part.number)}, {"uploadId", upload_id}};
  r.body_fd = fd.get();
  r.body_offset = part.offset;
  r.body_length = part.length;
  r.body_path = path;
  LK_ASSIGN_OR_RETURN(r.payload_sha256, Sha256Range(fd.get(), part.offset, part.length, path));
  LK_ASSIGN_OR_RETURN(Response resp, Perform(r));
  auto etag = resp.headers.find("etag");
  if (etag == resp.headers.end() || etag->second.empty()) {
    return Status::Corruption("UploadPart " + std::to_string(part.number) + " at " + EndpointName() +
                              ": the reply has no ETag");
  }
  return StripQuotes(etag->second);
}

Status S3Client::CompleteMultipartUpload(std::string_view key, const std::string& upload_id,
                                         const std::vector<S3CompletedPart>& parts) {
  LK_RETURN_IF_ERROR(CheckKey(key));
  std::string xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><CompleteMultipartUpload>";
  for (const S3CompletedPart& p : parts) {
    xml += "<Part><PartNumber>" + std::to_string(p.number) + "</PartNumber><ETag>\"" + XmlEscape(p.etag) +
           "\"</ETag></Part>";
  }
  xml += "</CompleteMultipartUpload>";
  Request r = ObjectRequest("CompleteMultipartUpload", "POST", key);
  r.query = {{"uploadId", upload_id}};
  r.headers = {"Content-Type: application/xml"};
  r.body = xml;
  LK_ASSIGN_OR_RETURN(Response resp, Perform(r));
  // S3 may answer 200 and put the failure in the body.
  if (resp.body.find("<Error>") != std::string::npos) {
    return MapS3Error(r.ctx, 500, resp.body);
  }
  return Status::OK();
}

Status S3Client::AbortMultipartUpload(std::string_view key, const std::string& upload_id) {
  LK_RETURN_IF_ERROR(CheckKey(key));
  Request r = ObjectRequest("AbortMultipartUpload", "DELETE", key);
  r.query = {{"uploadId", upload_id}};
  return Perform(r).status();
}

Result<std::vector<S3MultipartUpload>> S3Client::ListMultipartUploads(std::string_view prefix) {
  const std::string full_prefix = FullKey(prefix);
  const size_t strip = options_.location.prefix.size();
  std::vector<S3MultipartUpload> out;
  std::string key_marker, id_marker;
  for (;;) {
    Request r;
    r.ctx.operation = "ListMultipartUploads";
    r.query = {{"uploads", ""}};
    if (!full_prefix.empty()) r.query.emplace_back("prefix", full_prefix);
    if (!key_marker.empty()) r.query.emplace_back("key-marker", key_marker);
    if (!id_marker.empty()) r.query.emplace_back("upload-id-marker", id_marker);
    LK_ASSIGN_OR_RETURN(Response resp, Perform(r));
    pugi::xml_document doc;
    if (!doc.load_buffer(resp.body.data(), resp.body.size())) {
      return Status::Corruption("ListMultipartUploads at " + EndpointName() + ": the reply is not XML");
    }
    pugi::xml_node root = doc.child("ListMultipartUploadsResult");
    for (pugi::xml_node u : root.children("Upload")) {
      std::string key = u.child_value("Key");
      if (key.size() < strip) continue;
      out.push_back({key.substr(strip), u.child_value("UploadId"), u.child_value("Initiated")});
    }
    if (std::string(root.child_value("IsTruncated")) != "true") break;
    std::string next_key = root.child_value("NextKeyMarker");
    std::string next_id = root.child_value("NextUploadIdMarker");
    if (next_key == key_marker && next_id == id_marker) {
      return Status::Corruption("ListMultipartUploads at " + EndpointName() +
                                ": the reply is truncated but gives no new marker");
    }
    key_marker = std::move(next_key);
    id_marker = std::move(next_id);
  }
  return out;
}

}  // namespace ledgerkeep::s3
