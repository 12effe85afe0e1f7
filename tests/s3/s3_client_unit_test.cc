// S3Client pieces that need no gateway: part plans, metadata rules, the
// headers every signed request carries, option validation.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/sha256.h"
#include "s3/s3_client.h"
#include "tests/support/status_macros.h"
#include "tests/support/temp_dir.h"

namespace ledgerkeep::s3 {
namespace {

constexpr uint64_t kMiB = 1 << 20;

TEST(PlanPartsTest, CoversTheFileWithFullPartsAndAShortLastOne) {
  auto parts = PlanParts(20 * kMiB + 3, 8 * kMiB);
  ASSERT_EQ(parts.size(), 3u);
  EXPECT_EQ(parts[0].number, 1);
  EXPECT_EQ(parts[0].offset, 0u);
  EXPECT_EQ(parts[0].length, 8 * kMiB);
  EXPECT_EQ(parts[1].offset, 8 * kMiB);
  EXPECT_EQ(parts[2].number, 3);
  EXPECT_EQ(parts[2].offset, 16 * kMiB);
  EXPECT_EQ(parts[2].length, 4 * kMiB + 3);
}

TEST(PlanPartsTest, AnExactMultipleHasNoEmptyTail) {
  auto parts = PlanParts(32 * kMiB, 16 * kMiB);
  ASSERT_EQ(parts.size(), 2u);
  EXPECT_EQ(parts[1].length, 16 * kMiB);
  auto empty = PlanParts(0, 16 * kMiB);
  ASSERT_EQ(empty.size(), 1u);
  EXPECT_EQ(empty[0].length, 0u);
}

TEST(PlanPartsTest, GrowsThePartSizeToStayWithinTenThousandParts) {
  const uint64_t size = 200'000 * kMiB;  // ~195 GiB at 16 MiB would be 12,500 parts
  auto parts = PlanParts(size, 16 * kMiB);
  EXPECT_LE(parts.size(), 10'000u);
  uint64_t covered = 0;
  for (size_t i = 0; i < parts.size(); ++i) {
    EXPECT_EQ(parts[i].offset, covered);
    EXPECT_EQ(parts[i].number, static_cast<int>(i + 1));
    covered += parts[i].length;
  }
  EXPECT_EQ(covered, size);
}

TEST(MetadataTest, NamesAndValuesFollowTheRules) {
  LK_EXPECT_OK(ValidateMetadata({{"ledgerkeep-sha256", "abc"}, {"node_id", "r1 of 4"}}));
  EXPECT_FALSE(ValidateMetadata({{"Upper", "x"}}).ok());
  EXPECT_FALSE(ValidateMetadata({{"a b", "x"}}).ok());
  EXPECT_FALSE(ValidateMetadata({{"", "x"}}).ok());
  EXPECT_FALSE(ValidateMetadata({{"k", "line\nbreak"}}).ok());
  EXPECT_FALSE(ValidateMetadata({{"k", "\xc3\xa9"}}).ok());
  EXPECT_FALSE(ValidateMetadata({{"k", " padded"}}).ok());
}

TEST(AuthHeadersTest, ThePayloadHashAlwaysAndTheSessionTokenWhenThereIsOne) {
  S3Credentials c{"AKID", "SECRET", "", "test"};
  auto plain = S3AuthHeaders(c, "abc123");
  ASSERT_EQ(plain.size(), 1u);
  EXPECT_EQ(plain[0], "x-amz-content-sha256: abc123");
  c.session_token = "FwoGZXIvYXdzE";
  auto with_token = S3AuthHeaders(c, "abc123");
  ASSERT_EQ(with_token.size(), 2u);
  EXPECT_EQ(with_token[1], "x-amz-security-token: FwoGZXIvYXdzE");
}

S3ClientOptions ValidOptions() {
  S3ClientOptions o;
  o.location.endpoint = *ParseS3Endpoint("http://127.0.0.1:1");
  o.location.bucket = "backups";
  o.credentials = {"AKID", "SECRET", "", "test"};
  return o;
}

EnvLookup NoEnv() {
  return [](std::string_view) -> std::optional<std::string> { return std::nullopt; };
}

TEST(S3ClientOptionsTest, RefusesBadBucketsPartSizesAndMissingCaBundles) {
  LK_EXPECT_OK(S3Client::Create(ValidOptions(), NoEnv()));
  auto bucket = ValidOptions();
  bucket.location.bucket = "Bad_Bucket";
  EXPECT_EQ(S3Client::Create(bucket, NoEnv()).status().code(), StatusCode::kInvalidArgument);
  auto part = ValidOptions();
  part.part_size = 1 * kMiB;
  auto r = S3Client::Create(part, NoEnv());
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("5 MiB"), std::string::npos);
  auto ca = ValidOptions();
  ca.ca_bundle = "/nonexistent/ca.pem";
  auto c = S3Client::Create(ca, NoEnv());
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("/nonexistent/ca.pem"), std::string::npos);
  auto creds = ValidOptions();
  creds.credentials.secret_access_key.clear();
  EXPECT_EQ(S3Client::Create(creds, NoEnv()).status().code(), StatusCode::kInvalidArgument);
}

TEST(S3ClientOptionsTest, AwsCaBundleIsTheDefaultCaBundle) {
  auto env = [](std::string_view name) -> std::optional<std::string> {
    if (name == "AWS_CA_BUNDLE") return std::string("/nonexistent/aws-ca.pem");
    return std::nullopt;
  };
  auto r = S3Client::Create(ValidOptions(), env);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("/nonexistent/aws-ca.pem"), std::string::npos);
  // An explicit option wins over the environment.
  auto o = ValidOptions();
  o.ca_bundle = "/etc/hostname";
  LK_ASSERT_OK_AND_ASSIGN(auto client, S3Client::Create(o, env));
  EXPECT_EQ(client->options().ca_bundle, "/etc/hostname");
}

TEST(S3ClientOptionsTest, APrefixGetsItsSlash) {
  auto o = ValidOptions();
  o.location.prefix = "ledger/prod";
  LK_ASSERT_OK_AND_ASSIGN(auto client, S3Client::Create(o, NoEnv()));
  EXPECT_EQ(client->options().location.prefix, "ledger/prod/");
}

// A loopback port nothing listens on: bound (so no one else gets it) but
// never listened on, a connect is refused at once.
class ClosedPort {
 public:
  ClosedPort() {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    socklen_t len = sizeof a;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
  }
  ~ClosedPort() { ::close(fd_); }
  int port() const { return port_; }

 private:
  int fd_ = -1;
  int port_ = 0;
};

// A loopback HTTP server: each connection (one request; the replies close
// it) on a thread of its own, answered by `handler` (the request's text and
// its number in accept order) or, built from a list, with the next of
// `replies` and then 200 with no body. It keeps what it received, to see
// what the client sends and how it handles failures.
class ScriptedHttpServer {
 public:
  static constexpr char kStall[] = "<stall>";  // no reply until the client hangs up
  using Handler = std::function<std::string(const std::string& request, size_t index)>;

  explicit ScriptedHttpServer(std::vector<std::string> replies = {})
      : ScriptedHttpServer([replies = std::move(replies)](const std::string&, size_t i) {
          return i < replies.size() ? replies[i]
                                    : std::string("HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        }) {}
  explicit ScriptedHttpServer(Handler handler) : handler_(std::move(handler)) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    EXPECT_EQ(::listen(fd_, 64), 0);
    socklen_t len = sizeof a;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    acceptor_ = std::thread([this] { Accept(); });
  }
  ~ScriptedHttpServer() {
    ::shutdown(fd_, SHUT_RDWR);
    ::close(fd_);
    acceptor_.join();
    for (auto& t : connections_) t.join();
  }
  int port() const { return port_; }
  // The requests as received, in the order they were complete (valid once
  // the client's call returned).
  std::vector<std::string> requests() {
    std::lock_guard<std::mutex> lock(mu_);
    return requests_;
  }

 private:
  void Accept() {
    for (size_t index = 0;; ++index) {
      const int c = ::accept(fd_, nullptr, nullptr);
      if (c < 0) return;
      connections_.emplace_back([this, c, index] { Serve(c, index); });
    }
  }

  void Serve(int c, size_t index) {
    std::string got;
    char buf[4096];
    size_t need = std::string::npos;
    for (;;) {
      const size_t head_end = got.find("\r\n\r\n");
      if (head_end != std::string::npos && need == std::string::npos) {
        need = head_end + 4;
        const size_t cl = got.find("Content-Length: ");
        if (cl != std::string::npos && cl < head_end) need += std::stoul(got.substr(cl + 16));
        if (got.find("Expect: 100-continue") != std::string::npos) {
          const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
          (void)!::write(c, cont, sizeof cont - 1);
        }
      }
      if (need != std::string::npos && got.size() >= need) break;
      const ssize_t n = ::read(c, buf, sizeof buf);
      if (n <= 0) break;
      got.append(buf, static_cast<size_t>(n));
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      requests_.push_back(got);
    }
    const std::string reply = handler_(got, index);
    if (reply == kStall) {
      while (::read(c, buf, sizeof buf) > 0) {
      }
    } else {
      (void)!::write(c, reply.data(), reply.size());
    }
    ::close(c);
  }

  Handler handler_;
  int fd_ = -1;
  int port_ = 0;
  std::thread acceptor_;
  std::vector<std::thread> connections_;  // only the acceptor adds, before the destructor joins
  std::mutex mu_;
  std::vector<std::string> requests_;  // guarded by mu_
};

std::string Reply(int status, const std::string& code) {
  const std::string body = "<?xml version=\"1.0\"?><Error><Code>" + code + "</Code><RequestId>tx-" +
                           std::to_string(status) + "</RequestId></Error>";
  return "HTTP/1.1 " + std::to_string(status) + " X\r\nContent-Type: application/xml\r\nContent-Length: " +
         std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
}

std::string HeaderValue(const std::string& request, const std::string& name) {
  const size_t at = request.find("\r\n" + name + ": ");
  if (at == std::string::npos) return "";
  const size_t from = at + 4 + name.size();
  return request.substr(from, request.find("\r\n", from) - from);
}

TEST(S3ClientSigningTest, ThePayloadHashAndSessionTokenAreSentAndSigned) {
  ScriptedHttpServer server;
  auto o = ValidOptions();
  o.location.endpoint = *ParseS3Endpoint("http://127.0.0.1:" + std::to_string(server.port()));
  o.credentials.session_token = "FwoGZXIvYXdzEXAMPLETOKEN";
  o.max_attempts = 1;
  LK_ASSERT_OK_AND_ASSIGN(auto client, S3Client::Create(o, NoEnv()));
  const std::string body = "the payload";
  LK_ASSERT_OK(client->PutObject("n1/k", body, {{"note", "x"}}));
  ASSERT_EQ(server.requests().size(), 1u);
  const std::string req = server.requests()[0];
  EXPECT_TRUE(req.starts_with("PUT /backups/n1/k HTTP/1.1\r\n")) << req;
  EXPECT_EQ(HeaderValue(req, "x-amz-content-sha256"), Sha256Hex(body)) << req;
  EXPECT_EQ(HeaderValue(req, "x-amz-security-token"), "FwoGZXIvYXdzEXAMPLETOKEN") << req;
  EXPECT_EQ(HeaderValue(req, "x-amz-meta-note"), "x") << req;
  const std::string auth = HeaderValue(req, "Authorization");
  EXPECT_TRUE(auth.starts_with("AWS4-HMAC-SHA256 Credential=AKID/")) << auth;
  EXPECT_NE(auth.find("/us-east-1/s3/aws4_request"), std::string::npos) << auth;
  for (const char* signed_header : {"host", "x-amz-content-sha256", "x-amz-date", "x-amz-meta-note",
                                    "x-amz-security-token"}) {
    EXPECT_NE(auth.find(signed_header), std::string::npos) << signed_header << " not signed: " << auth;
  }
  EXPECT_TRUE(req.ends_with("\r\n\r\n" + body)) << req;
  EXPECT_EQ(req.find("SECRET"), std::string::npos);
}

TEST(S3ClientRetryTest, ServerErrorsAndSlowDownAreRetriedUntilTheyPass) {
  ScriptedHttpServer server({Reply(503, "SlowDown"), Reply(500, "InternalError"), Reply(429, "TooManyRequests")});
  auto o = ValidOptions();
  o.location.endpoint = *ParseS3Endpoint("http://127.0.0.1:" + std::to_string(server.port()));
  o.max_attempts = 4;
  o.retry_base_ms = 10;
  o.retry_max_ms = 40;
  LK_ASSERT_OK_AND_ASSIGN(auto client, S3Client::Create(o, NoEnv()));
  LK_ASSERT_OK(client->PutObject("k", "payload"));
  const auto reqs = server.requests();
  ASSERT_EQ(reqs.size(), 4u);
  for (const auto& r : reqs) EXPECT_TRUE(r.ends_with("\r\n\r\npayload")) << r;  // the body sent again in full
}

TEST(S3ClientRetryTest, GivingUpReportsTheLastErrorAndTheTries) {
  ScriptedHttpServer server({Reply(503, "SlowDown"), Reply(503, "SlowDown")});
  auto o = ValidOptions();
  o.location.endpoint = *ParseS3Endpoint("http://127.0.0.1:" + std::to_string(server.port()));
  o.max_attempts = 2;
  o.retry_base_ms = 10;
  LK_ASSERT_OK_AND_ASSIGN(auto client, S3Client::Create(o, NoEnv()));
  Status s = client->PutObject("k", "v");
  EXPECT_EQ(s.code(), StatusCode::kBusy) << s.ToString();
  EXPECT_NE(s.message().find("gave up after 2 tries"), std::string::npos) << s.message();
  EXPECT_EQ(server.requests().size(), 2u);
}

TEST(S3ClientRetryTest, ClientErrorsAreNotRetried) {
  ScriptedHttpServer server({Reply(403, "AccessDenied"), Reply(404, "NoSuchKey"), Reply(400, "InvalidArgument")});
  auto o = ValidOptions();
  o.location.endpoint = *ParseS3Endpoint("http://127.0.0.1:" + std::to_string(server.port()));
  o.max_attempts = 5;
  o.retry_base_ms = 10;
  LK_ASSERT_OK_AND_ASSIGN(auto client, S3Client::Create(o, NoEnv()));
  EXPECT_EQ(client->PutObject("k", "v").code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(client->GetObject("k").status().code(), StatusCode::kNotFound);
  Status bad = client->DeleteObject("k");
  EXPECT_EQ(bad.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(bad.message().find("RequestId tx-400"), std::string::npos) << bad.message();
  EXPECT_EQ(server.requests().size(), 3u);
}

TEST(S3ClientRetryTest, ACompletionThatFailsInsideA200IsAnError) {
  const std::string body = "<?xml version=\"1.0\"?><Error><Code>InternalError</Code><Message>boom</Message></Error>";
  const std::string ok_with_error = "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(body.size()) +
                                    "\r\nConnection: close\r\n\r\n" + body;
  ScriptedHttpServer server({ok_with_error});
  auto o = ValidOptions();
  o.location.endpoint = *ParseS3Endpoint("http://127.0.0.1:" + std::to_string(server.port()));
  o.max_attempts = 1;
  LK_ASSERT_OK_AND_ASSIGN(auto client, S3Client::Create(o, NoEnv()));
  Status s = client->CompleteMultipartUpload("k", "upload-1", {{1, "etag"}});
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("boom"), std::string::npos) << s.ToString();
  const auto reqs = server.requests();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_TRUE(reqs[0].starts_with("POST /backups/k?uploadId=upload-1 HTTP/1.1")) << reqs[0];
  EXPECT_NE(reqs[0].find("<Part><PartNumber>1</PartNumber><ETag>\"etag\"</ETag></Part>"), std::string::npos);
}

TEST(S3ClientRetryTest, AStalledReplyIsATimeoutAndIsRetried) {
  ScriptedHttpServer server({ScriptedHttpServer::kStall});
  auto o = ValidOptions();
  o.location.endpoint = *ParseS3Endpoint("http://127.0.0.1:" + std::to_string(server.port()));
  o.stall_timeout_s = 1;
  o.max_attempts = 1;
  LK_ASSERT_OK_AND_ASSIGN(auto client, S3Client::Create(o, NoEnv()));
  Status s = client->PutObject("k", "v");
  EXPECT_EQ(s.code(), StatusCode::kTimeout) << s.ToString();
  EXPECT_NE(s.message().find("timed out"), std::string::npos) << s.message();

  o.max_attempts = 2;  // the second try gets the default 200
  o.retry_base_ms = 10;
  ScriptedHttpServer again({ScriptedHttpServer::kStall});
  o.location.endpoint = *ParseS3Endpoint("http://127.0.0.1:" + std::to_string(again.port()));
  LK_ASSERT_OK_AND_ASSIGN(auto retrying, S3Client::Create(o, NoEnv()));
  LK_EXPECT_OK(retrying->PutObject("k", "v"));
  EXPECT_EQ(again.requests().size(), 2u);
}

TEST(S3ClientMultipartTest, PartsGoUpInParallelUpToTheConcurrency) {
  // A gateway that takes 300 ms per part and counts the parts in flight.
  std::atomic<int> in_flight{0};
  std::atomic<int> most{0};
  ScriptedHttpServer server([&](const std::string& req, size_t) -> std::string {
    auto reply = [](const std::string& extra, const std::string& body) {
      return "HTTP/1.1 200 OK\r\n" + extra + "Content-Length: " + std::to_string(body.size()) +
             "\r\nConnection: close\r\n\r\n" + body;
    };
    if (req.starts_with("POST /backups/big?uploads= ")) {
      return reply("", "<InitiateMultipartUploadResult><UploadId>u1</UploadId></InitiateMultipartUploadResult>");
    }
    if (req.starts_with("PUT /backups/big?partNumber=")) {
      const int now = ++in_flight;
      int seen = most.load();
      while (now > seen && !most.compare_exchange_weak(seen, now)) {
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(300));
      --in_flight;
      const std::string n = req.substr(28, req.find('&') - 28);
      return reply("ETag: \"etag-" + n + "\"\r\n", "");
    }
    if (req.starts_with("POST /backups/big?uploadId=u1 ")) {
      return reply("", "<CompleteMultipartUploadResult><ETag>\"x-5\"</ETag></CompleteMultipartUploadResult>");
    }
    return "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
  });
  test::TempDir dir;
  {
    std::ofstream out(dir / "big", std::ios::binary);
    const std::string mib(kMiB, 'x');
    for (int i = 0; i < 21; ++i) out << mib;  // 5 parts of 5 MiB, the last 1 MiB
  }
  auto o = ValidOptions();
  o.location.endpoint = *ParseS3Endpoint("http://127.0.0.1:" + std::to_string(server.port()));
  o.part_size = 5 * kMiB;
  o.multipart_threshold = 8 * kMiB;
  o.upload_concurrency = 3;
  o.max_attempts = 1;
  LK_ASSERT_OK_AND_ASSIGN(auto client, S3Client::Create(o, NoEnv()));
  LK_ASSERT_OK(client->PutFile("big", dir / "big"));
  EXPECT_EQ(most.load(), 3);
  const auto reqs = server.requests();
  ASSERT_EQ(reqs.size(), 7u);  // create, 5 parts, complete
  const std::string& complete = reqs.back();
  for (int n = 1; n <= 5; ++n) {
    const std::string part = "<Part><PartNumber>" + std::to_string(n) + "</PartNumber><ETag>\"etag-" +
                             std::to_string(n) + "\"</ETag></Part>";
    EXPECT_NE(complete.find(part), std::string::npos) << complete;
  }
}

TEST(S3ClientMultipartTest, AFailedPartAbortsTheUpload) {
  ScriptedHttpServer server([](const std::string& req, size_t) -> std::string {
    if (req.starts_with("POST /backups/big?uploads= ")) {
      const std::string body = "<InitiateMultipartUploadResult><UploadId>u1</UploadId></InitiateMultipartUploadResult>";
      return "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" +
             body;
    }
    if (req.starts_with("PUT /backups/big?partNumber=2&")) return Reply(403, "AccessDenied");
    if (req.starts_with("PUT ")) return "HTTP/1.1 200 OK\r\nETag: \"e\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    return "HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n";  // the abort
  });
  test::TempDir dir;
  {
    std::ofstream out(dir / "big", std::ios::binary);
    const std::string mib(kMiB, 'x');
    for (int i = 0; i < 11; ++i) out << mib;
  }
  auto o = ValidOptions();
  o.location.endpoint = *ParseS3Endpoint("http://127.0.0.1:" + std::to_string(server.port()));
  o.part_size = 5 * kMiB;
  o.multipart_threshold = 8 * kMiB;
  o.upload_concurrency = 1;
  LK_ASSERT_OK_AND_ASSIGN(auto client, S3Client::Create(o, NoEnv()));
  Status s = client->PutFile("big", dir / "big");
  EXPECT_EQ(s.code(), StatusCode::kPermissionDenied) << s.ToString();
  EXPECT_NE(s.message().find("UploadPart 2"), std::string::npos) << s.message();
  const auto reqs = server.requests();
  ASSERT_FALSE(reqs.empty());
  EXPECT_TRUE(reqs.back().starts_with("DELETE /backups/big?uploadId=u1 ")) << reqs.back();
  for (const auto& r : reqs) EXPECT_FALSE(r.starts_with("PUT /backups/big?partNumber=3&")) << "a part after the failure";
}

TEST(S3ClientTransportTest, AClosedPortIsUnavailableQuicklyNamingTheEndpoint) {
  ClosedPort closed;
  auto o = ValidOptions();
  o.location.endpoint = *ParseS3Endpoint("http://127.0.0.1:" + std::to_string(closed.port()));
  o.max_attempts = 3;
  o.retry_base_ms = 20;
  LK_ASSERT_OK_AND_ASSIGN(auto client, S3Client::Create(o, NoEnv()));
  const auto t0 = std::chrono::steady_clock::now();
  Status s = client->PutObject("k", "v");
  const auto elapsed = std::chrono::steady_clock::now() - t0;
  EXPECT_EQ(s.code(), StatusCode::kUnavailable) << s.ToString();
  EXPECT_NE(s.message().find("cannot reach the S3 endpoint http://127.0.0.1:" + std::to_string(closed.port())),
            std::string::npos)
      << s.message();
  EXPECT_NE(s.message().find("gave up after 3 tries"), std::string::npos) << s.message();
  EXPECT_LT(elapsed, std::chrono::seconds(3));
}

TEST(S3ClientTransportTest, CancellationEndsTheRetriesWithAborted) {
  ClosedPort closed;
  auto o = ValidOptions();
  o.location.endpoint = *ParseS3Endpoint("http://127.0.0.1:" + std::to_string(closed.port()));
  o.max_attempts = 100;
  o.retry_base_ms = 5000;  // every wait between tries at least 2.5 s
  o.retry_max_ms = 5000;
  const auto t0 = std::chrono::steady_clock::now();
  o.cancelled = [t0] { return std::chrono::steady_clock::now() - t0 > std::chrono::milliseconds(200); };
  LK_ASSERT_OK_AND_ASSIGN(auto client, S3Client::Create(o, NoEnv()));
  Status s = client->HeadBucket();
  EXPECT_EQ(s.code(), StatusCode::kAborted) << s.ToString();
  // Seen during the first wait, not after it.
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(1));
}

TEST(S3ClientTransportTest, AnUnresolvableHostIsUnavailable) {
  auto o = ValidOptions();
  o.location.endpoint = *ParseS3Endpoint("http://no-such-host.invalid:7480");
  o.max_attempts = 1;
  LK_ASSERT_OK_AND_ASSIGN(auto client, S3Client::Create(o, NoEnv()));
  Status s = client->HeadBucket();
  EXPECT_EQ(s.code(), StatusCode::kUnavailable) << s.ToString();
  EXPECT_NE(s.message().find("no-such-host.invalid"), std::string::npos) << s.message();
}

}  // namespace
}  // namespace ledgerkeep::s3
