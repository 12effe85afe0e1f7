// S3Client against a real Ceph RADOS Gateway (tests/support/rgw/ceph-rgw.sh,
// started once by the ctest fixture s3.rgw_start). Every test skips, with
// the reason, when the gateway's env file is not there. Each test uses a
// bucket of its own.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <thread>

#include "common/file_util.h"
#include "common/process.h"
#include "s3/s3_client.h"
#include "tests/support/status_macros.h"
#include "tests/support/temp_dir.h"

namespace ledgerkeep::s3 {
namespace {

constexpr uint64_t kMiB = 1 << 20;

std::string RgwDir() {
  const char* d = std::getenv("LK_RGW_DIR");
  return d != nullptr && *d != '\0' ? d : "/var/tmp/ledgerkeep-rgw";
}

// KEY=VALUE lines of the harness's env file; empty when it is not there.
std::map<std::string, std::string> ReadGatewayEnv() {
  std::map<std::string, std::string> env;
  std::ifstream in(RgwDir() + "/env");
  std::string line;
  while (std::getline(in, line)) {
    const size_t eq = line.find('=');
    if (eq != std::string::npos) env[line.substr(0, eq)] = line.substr(eq + 1);
  }
  return env;
}

std::string RandomBytes(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string s(n, '\0');
  for (size_t i = 0; i < n; i += 8) {
    const uint64_t v = rng();
    std::memcpy(&s[i], &v, std::min<size_t>(8, n - i));
  }
  return s;
}

void WriteFile(const std::string& path, const std::string& data) {
  std::ofstream out(path, std::ios::binary);
  out << data;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

EnvLookup NoEnv() {
  return [](std::string_view) -> std::optional<std::string> { return std::nullopt; };
}

class RgwTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // The machine's AWS_CA_BUNDLE must not decide what these tests see (and
    // outside tools run by them must not get it either).
    ::unsetenv("AWS_CA_BUNDLE");
    env_ = ReadGatewayEnv();
    if (env_.empty()) {
      GTEST_SKIP() << "no Ceph RADOS Gateway: " << RgwDir()
                   << "/env is missing (the fixture test s3.rgw_start was skipped or failed: see its output; "
                      "start one by hand with tests/support/rgw/ceph-rgw.sh start)";
    }
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    std::string name = "lk-";
    for (char c : std::string(info->name())) {
      if (name.size() >= 40) break;
      if (std::isalnum(static_cast<unsigned char>(c))) name += static_cast<char>(std::tolower(c));
    }
    bucket_ = name + "-" + std::to_string(::getpid());
    LK_ASSERT_OK_AND_ASSIGN(client_, MakeClient(Options()));
    LK_ASSERT_OK(client_->CreateBucket());
  }

  S3ClientOptions Options() {
    S3ClientOptions o;
    o.location.endpoint = *ParseS3Endpoint(env_["LK_RGW_ENDPOINT"]);
    o.location.region = env_["LK_RGW_REGION"];
    o.location.bucket = bucket_;
    o.credentials = {env_["LK_RGW_ACCESS_KEY_ID"], env_["LK_RGW_SECRET_ACCESS_KEY"], "", "the test's env file"};
    o.max_attempts = 2;
    o.retry_base_ms = 50;
    return o;
  }

  static Result<std::unique_ptr<S3Client>> MakeClient(S3ClientOptions o, const EnvLookup& env = NoEnv()) {
    return S3Client::Create(std::move(o), env);
  }

  // An s3cmd config for the gateway, path-style, no TLS.
  std::string S3cmdConfig() {
    const std::string path = dir_ / "s3cfg";
    const std::string host = env_["LK_RGW_ENDPOINT"].substr(std::string("http://").size());
    WriteFile(path, "[default]\naccess_key = " + env_["LK_RGW_ACCESS_KEY_ID"] +
                        "\nsecret_key = " + env_["LK_RGW_SECRET_ACCESS_KEY"] + "\nhost_base = " + host +
                        "\nhost_bucket = " + host + "\nuse_https = False\nsignature_v2 = False\n");
    return path;
  }

  std::map<std::string, std::string> env_;
  std::string bucket_;
  std::unique_ptr<S3Client> client_;
  test::TempDir dir_{"lk-s3-"};
};

TEST_F(RgwTest, PutGetHeadRoundTripKeepsContentAndMetadata) {
  const std::string key = "n1/snap 1/\xc3\xa9t\xc3\xa9+x=y&z.sst";
  const std::string data = RandomBytes(100'000, 1);
  LK_ASSERT_OK(client_->PutObject(key, data, {{"ledgerkeep-sha256", "abc"}, {"node", "r1 of 4"}}));

  LK_ASSERT_OK_AND_ASSIGN(std::string got, client_->GetObject(key));
  EXPECT_EQ(got, data);
  LK_ASSERT_OK_AND_ASSIGN(S3ObjectInfo info, client_->HeadObject(key));
  EXPECT_EQ(info.size, data.size());
  EXPECT_EQ(info.etag.size(), 32u) << info.etag;  // a single PUT's ETag is its MD5
  EXPECT_EQ(info.metadata["ledgerkeep-sha256"], "abc");
  EXPECT_EQ(info.metadata["node"], "r1 of 4");

  // From a file, to a file.
  WriteFile(dir_ / "in", data + "tail");
  LK_ASSERT_OK(client_->PutObjectFromFile("n1/from-file", dir_ / "in"));
  LK_ASSERT_OK(client_->GetObjectToFile("n1/from-file", dir_ / "out"));
  EXPECT_EQ(ReadFile(dir_ / "out"), data + "tail");
  EXPECT_NE(::access((dir_ / "out.tmp").c_str(), F_OK), 0);

  // An empty object.
  LK_ASSERT_OK(client_->PutObject("n1/empty", ""));
  LK_ASSERT_OK_AND_ASSIGN(std::string empty, client_->GetObject("n1/empty"));
  EXPECT_EQ(empty, "");

  LK_ASSERT_OK(client_->DeleteObject(key));
  auto gone = client_->GetObject(key);
  ASSERT_FALSE(gone.ok());
  EXPECT_EQ(gone.status().code(), StatusCode::kNotFound);
  EXPECT_NE(gone.status().message().find("NoSuchKey"), std::string::npos) << gone.status().message();
  EXPECT_NE(gone.status().message().find("RequestId"), std::string::npos) << gone.status().message();
  EXPECT_EQ(client_->HeadObject(key).status().code(), StatusCode::kNotFound);
  LK_EXPECT_OK(client_->DeleteObject(key));  // deleting what is gone is fine
}

TEST_F(RgwTest, AFileThatChangesWhileUploadingIsRefusedAsCorruption) {
  // The hash is taken first, then the bytes are streamed: a file grown in
  // between (same length sent, other bytes) must not be stored.
  const std::string path = dir_ / "changing";
  WriteFile(path, std::string(2 * kMiB, 'a'));
  auto o = Options();
  std::atomic<bool> changed{false};
  o.cancelled = [&] {
    if (!changed.exchange(true)) WriteFile(path, std::string(2 * kMiB, 'b'));
    return false;
  };
  LK_ASSERT_OK_AND_ASSIGN(auto client, MakeClient(o));
  Status s = client->PutObjectFromFile("changing", path);
  EXPECT_EQ(s.code(), StatusCode::kCorruption) << s.ToString();
  EXPECT_EQ(client_->HeadObject("changing").status().code(), StatusCode::kNotFound);
}

TEST_F(RgwTest, ADownloadThatFailsLeavesNoFileBehind) {
  auto r = client_->GetObjectToFile("missing", dir_ / "out");
  EXPECT_EQ(r.code(), StatusCode::kNotFound) << r.ToString();
  EXPECT_NE(::access((dir_ / "out").c_str(), F_OK), 0);
  EXPECT_NE(::access((dir_ / "out.tmp").c_str(), F_OK), 0);
}

TEST_F(RgwTest, ADownloadOntoAFullDiskIsNoSpace) {
  LK_ASSERT_OK(client_->PutObject("k", RandomBytes(300'000, 2)));
  // The temp file the download writes is /dev/full: every write is ENOSPC.
  ASSERT_EQ(::symlink("/dev/full", (dir_ / "out.tmp").c_str()), 0);
  Status s = client_->GetObjectToFile("k", dir_ / "out");
  EXPECT_EQ(s.code(), StatusCode::kNoSpace) << s.ToString();
  EXPECT_NE(::access((dir_ / "out").c_str(), F_OK), 0);
}

TEST_F(RgwTest, ListingPagesThroughContinuationTokensAndGroupsByDelimiter) {
  std::vector<std::string> keys = {"snap/1/a", "snap/1/b", "snap/2/a", "snap/2/b c", "snap/3/x+y",
                                   "snap/top", "shared/s1.sst"};
  for (const auto& k : keys) LK_ASSERT_OK(client_->PutObject(k, k));

  LK_ASSERT_OK_AND_ASSIGN(S3Listing all, client_->ListObjects("snap/", "", /*page_size=*/2));
  std::vector<std::string> got;
  for (const auto& o : all.objects) got.push_back(o.key);
  EXPECT_EQ(got, (std::vector<std::string>{"snap/1/a", "snap/1/b", "snap/2/a", "snap/2/b c", "snap/3/x+y",
                                           "snap/top"}));
  EXPECT_EQ(all.objects[0].size, 8u);
  EXPECT_EQ(all.objects[0].etag.size(), 32u);

  LK_ASSERT_OK_AND_ASSIGN(S3Listing dirs, client_->ListObjects("snap/", "/", /*page_size=*/1));
  EXPECT_EQ(dirs.common_prefixes, (std::vector<std::string>{"snap/1/", "snap/2/", "snap/3/"}));
  ASSERT_EQ(dirs.objects.size(), 1u);
  EXPECT_EQ(dirs.objects[0].key, "snap/top");

  // A client whose location has a prefix sees keys relative to it.
  auto o = Options();
  o.location.prefix = "snap";
  LK_ASSERT_OK_AND_ASSIGN(auto scoped, MakeClient(o));
  LK_ASSERT_OK_AND_ASSIGN(S3Listing rel, scoped->ListObjects("2/", "", 1));
  ASSERT_EQ(rel.objects.size(), 2u);
  EXPECT_EQ(rel.objects[1].key, "2/b c");
  LK_ASSERT_OK_AND_ASSIGN(std::string v, scoped->GetObject("2/b c"));
  EXPECT_EQ(v, "snap/2/b c");

  LK_ASSERT_OK(client_->DeleteObjects(keys));
  LK_ASSERT_OK_AND_ASSIGN(S3Listing none, client_->ListObjects(""));
  EXPECT_TRUE(none.objects.empty());
}

TEST_F(RgwTest, AMultipartUploadInParallelPartsReadsBackEqual) {
  auto o = Options();
  o.part_size = 5 * kMiB;
  o.multipart_threshold = 8 * kMiB;
  o.upload_concurrency = 3;
  LK_ASSERT_OK_AND_ASSIGN(auto client, MakeClient(o));
  const std::string data = RandomBytes(20 * kMiB + 12345, 3);
  WriteFile(dir_ / "big", data);
  const auto t0 = std::chrono::steady_clock::now();
  LK_ASSERT_OK(client->PutFile("n1/big.sst", dir_ / "big", {{"parts", "5"}}));
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0);
  LK_ASSERT_OK_AND_ASSIGN(S3ObjectInfo info, client->HeadObject("n1/big.sst"));
  EXPECT_EQ(info.size, data.size());
  EXPECT_TRUE(info.etag.ends_with("-5")) << info.etag;  // five parts
  EXPECT_EQ(info.metadata["parts"], "5");
  LK_ASSERT_OK(client->GetObjectToFile("n1/big.sst", dir_ / "back"));
  EXPECT_TRUE(ReadFile(dir_ / "back") == data);
  LK_ASSERT_OK_AND_ASSIGN(auto uploads, client->ListMultipartUploads());
  EXPECT_TRUE(uploads.empty());
  std::cout << "20 MiB in 5 parts, 3 at a time: " << ms.count() << " ms\n";

  // Below the threshold: one PUT (an MD5 ETag, no part count).
  WriteFile(dir_ / "small", data.substr(0, 6 * kMiB));
  LK_ASSERT_OK(client->PutFile("n1/small.sst", dir_ / "small"));
  LK_ASSERT_OK_AND_ASSIGN(S3ObjectInfo small, client->HeadObject("n1/small.sst"));
  EXPECT_EQ(small.etag.find('-'), std::string::npos) << small.etag;
}

TEST_F(RgwTest, AnUnfinishedUploadIsListedUntilAborted) {
  WriteFile(dir_ / "part", RandomBytes(5 * kMiB, 4));
  LK_ASSERT_OK_AND_ASSIGN(std::string id, client_->CreateMultipartUpload("n1/crashed.sst"));
  LK_ASSERT_OK_AND_ASSIGN(std::string etag, client_->UploadPart("n1/crashed.sst", id, {1, 0, 5 * kMiB}, dir_ / "part"));
  EXPECT_FALSE(etag.empty());
  LK_ASSERT_OK_AND_ASSIGN(auto uploads, client_->ListMultipartUploads("n1/"));
  ASSERT_EQ(uploads.size(), 1u);
  EXPECT_EQ(uploads[0].key, "n1/crashed.sst");
  EXPECT_EQ(uploads[0].upload_id, id);
  LK_ASSERT_OK_AND_ASSIGN(auto other, client_->ListMultipartUploads("n2/"));
  EXPECT_TRUE(other.empty());

  LK_ASSERT_OK(client_->AbortMultipartUpload("n1/crashed.sst", id));
  LK_ASSERT_OK_AND_ASSIGN(auto after, client_->ListMultipartUploads());
  EXPECT_TRUE(after.empty());
  EXPECT_EQ(client_->HeadObject("n1/crashed.sst").status().code(), StatusCode::kNotFound);
  Status twice = client_->AbortMultipartUpload("n1/crashed.sst", id);
  EXPECT_EQ(twice.code(), StatusCode::kNotFound) << twice.ToString();
  EXPECT_NE(twice.message().find("NoSuchUpload"), std::string::npos) << twice.message();
  // Completing an aborted upload fails (RGW 16.2 answers 500 "This multipart
  // completion is already in progress" rather than AWS's 404 NoSuchUpload).
  EXPECT_FALSE(client_->CompleteMultipartUpload("n1/crashed.sst", id, {{1, etag}}).ok());
}

TEST_F(RgwTest, AWrongSecretIsPermissionDeniedSayingWhatToCheck) {
  auto o = Options();
  o.credentials.secret_access_key = "not-the-secret";
  LK_ASSERT_OK_AND_ASSIGN(auto client, MakeClient(o));
  Status s = client->PutObject("k", "v");
  EXPECT_EQ(s.code(), StatusCode::kPermissionDenied) << s.ToString();
  EXPECT_NE(s.message().find("SignatureDoesNotMatch"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("AWS_SECRET_ACCESS_KEY"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find(env_["LK_RGW_ENDPOINT"]), std::string::npos) << s.message();
  EXPECT_EQ(s.message().find("not-the-secret"), std::string::npos);
  Status head = client->HeadBucket();  // a HEAD reply has no body: no S3 code to quote
  EXPECT_EQ(head.code(), StatusCode::kPermissionDenied) << head.ToString();
  EXPECT_NE(head.message().find("AWS_SECRET_ACCESS_KEY"), std::string::npos) << head.message();

  auto k = Options();
  k.credentials.access_key_id = "NOSUCHKEY";
  LK_ASSERT_OK_AND_ASSIGN(auto unknown, MakeClient(k));
  Status u = unknown->PutObject("k", "v");
  EXPECT_EQ(u.code(), StatusCode::kPermissionDenied) << u.ToString();
  EXPECT_NE(u.message().find("InvalidAccessKeyId"), std::string::npos) << u.message();
}

TEST_F(RgwTest, AMissingBucketIsNotFoundSayingHowToCreateIt) {
  auto o = Options();
  o.location.bucket = "no-such-bucket-" + std::to_string(::getpid());
  LK_ASSERT_OK_AND_ASSIGN(auto client, MakeClient(o));
  for (Status s : {client->HeadBucket(), client->PutObject("k", "v"), client->ListObjects("").status()}) {
    EXPECT_EQ(s.code(), StatusCode::kNotFound) << s.ToString();
    EXPECT_NE(s.message().find("bucket '" + o.location.bucket + "' does not exist at " + env_["LK_RGW_ENDPOINT"]),
              std::string::npos)
        << s.message();
    EXPECT_NE(s.message().find("s3cmd mb s3://" + o.location.bucket), std::string::npos) << s.message();
  }
}

TEST_F(RgwTest, HttpsVerifiesWithTheCaBundleAndFailsClearlyWithoutIt) {
  auto o = Options();
  o.location.endpoint = *ParseS3Endpoint("https://" + env_["LK_RGW_HTTPS_HOST"]);
  const std::string ca = env_["LK_RGW_CA_BUNDLE"];

  auto with_ca = o;
  with_ca.ca_bundle = ca;
  LK_ASSERT_OK_AND_ASSIGN(auto good, MakeClient(with_ca));
  LK_ASSERT_OK(good->PutObject("tls", "over https"));
  LK_ASSERT_OK_AND_ASSIGN(std::string v, good->GetObject("tls"));
  EXPECT_EQ(v, "over https");

  // AWS_CA_BUNDLE is the default when no option is given.
  auto aws_env = [&ca](std::string_view name) -> std::optional<std::string> {
    if (name == "AWS_CA_BUNDLE") return ca;
    return std::nullopt;
  };
  LK_ASSERT_OK_AND_ASSIGN(auto by_env, MakeClient(o, aws_env));
  LK_EXPECT_OK(by_env->HeadBucket());

  // Without it the system store does not know the test CA.
  LK_ASSERT_OK_AND_ASSIGN(auto bad, MakeClient(o));
  Status s = bad->HeadBucket();
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition) << s.ToString();
  EXPECT_NE(s.message().find("TLS verification"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("CA bundle"), std::string::npos) << s.message();

  // The wrong CA bundle is named.
  auto wrong = o;
  wrong.ca_bundle = "/etc/ssl/certs/ca-certificates.crt";
  LK_ASSERT_OK_AND_ASSIGN(auto wrong_client, MakeClient(wrong));
  Status w = wrong_client->HeadBucket();
  EXPECT_EQ(w.code(), StatusCode::kFailedPrecondition) << w.ToString();
  EXPECT_NE(w.message().find("/etc/ssl/certs/ca-certificates.crt"), std::string::npos) << w.message();

  // The explicit insecure switch connects anyway.
  auto insecure = o;
  insecure.insecure_skip_tls_verify = true;
  LK_ASSERT_OK_AND_ASSIGN(auto ins, MakeClient(insecure));
  LK_EXPECT_OK(ins->HeadBucket());
}

TEST_F(RgwTest, VirtualHostAddressingReachesTheSameBucket) {
  // The harness sets rgw_dns_name = localhost, and curl resolves any
  // *.localhost name to loopback itself: <bucket>.localhost:<port>.
  auto o = Options();
  const std::string port = env_["LK_RGW_ENDPOINT"].substr(env_["LK_RGW_ENDPOINT"].rfind(':') + 1);
  o.location.endpoint = *ParseS3Endpoint("http://localhost:" + port);
  o.location.addressing = AddressingStyle::kVirtualHost;
  LK_ASSERT_OK_AND_ASSIGN(auto vhost, MakeClient(o));
  LK_ASSERT_OK(vhost->HeadBucket());
  LK_ASSERT_OK(vhost->PutObject("vh/a b", "by virtual host"));
  LK_ASSERT_OK(vhost->PutObject("vh/c", "c"));
  LK_ASSERT_OK_AND_ASSIGN(std::string v, client_->GetObject("vh/a b"));  // the path-style client
  EXPECT_EQ(v, "by virtual host");
  LK_ASSERT_OK_AND_ASSIGN(S3Listing l, vhost->ListObjects("vh/", "", 1));
  ASSERT_EQ(l.objects.size(), 2u);
  EXPECT_EQ(l.objects[0].key, "vh/a b");
  LK_ASSERT_OK_AND_ASSIGN(S3ObjectInfo info, vhost->HeadObject("vh/c"));
  EXPECT_EQ(info.size, 1u);
}

TEST_F(RgwTest, AGatewayKilledMidUploadFailsCleanlyAndLeavesAnUploadToAbort) {
  // A second radosgw on the same cluster, so the other tests keep theirs.
  const std::string script = std::string(LEDGERKEEP_SOURCE_DIR) + "/tests/support/rgw/ceph-rgw.sh";
  const std::string& main_endpoint = env_["LK_RGW_ENDPOINT"];
  const std::string port = std::to_string(std::stoi(main_endpoint.substr(main_endpoint.rfind(':') + 1)) + 3);
  auto* run = ProcessRunner::Real();
  LK_ASSERT_OK_AND_ASSIGN(ProcessResult started, run->Run({script, "extra-gateway-start", "midupload", port}, 120'000));
  ASSERT_EQ(started.exit_code, 0) << started.output;

  auto o = Options();
  o.location.endpoint = *ParseS3Endpoint("http://127.0.0.1:" + port);
  o.part_size = 5 * kMiB;
  o.multipart_threshold = 8 * kMiB;
  o.upload_concurrency = 1;
  o.max_attempts = 3;
  LK_ASSERT_OK_AND_ASSIGN(auto victim, MakeClient(o));
  const std::string data = RandomBytes(100 * kMiB, 6);
  WriteFile(dir_ / "big", data);

  Status result;
  std::thread upload([&] { result = victim->PutFile("n1/big.sst", dir_ / "big"); });
  // Kill the gateway once the upload has begun (seen through the main one).
  bool begun = false;
  for (int i = 0; i < 2000 && !begun; ++i) {
    auto uploads = client_->ListMultipartUploads();
    begun = uploads.ok() && !uploads->empty();
    if (!begun) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  auto killed = run->Run({script, "extra-gateway-kill", "midupload"}, 30'000);
  upload.join();
  ASSERT_TRUE(begun) << "the upload never showed up";
  ASSERT_TRUE(killed.ok() && killed->exit_code == 0) << killed.status().ToString();

  EXPECT_EQ(result.code(), StatusCode::kUnavailable) << result.ToString();
  EXPECT_NE(result.message().find("http://127.0.0.1:" + port), std::string::npos) << result.message();
  EXPECT_EQ(client_->HeadObject("n1/big.sst").status().code(), StatusCode::kNotFound);

  // The abort could not reach the dead gateway: the upload is left for the
  // cleanup a later run does, and the upload done again succeeds.
  LK_ASSERT_OK_AND_ASSIGN(auto left, client_->ListMultipartUploads("n1/"));
  ASSERT_EQ(left.size(), 1u);
  LK_ASSERT_OK(client_->AbortMultipartUpload(left[0].key, left[0].upload_id));
  LK_ASSERT_OK_AND_ASSIGN(auto none, client_->ListMultipartUploads());
  EXPECT_TRUE(none.empty());
  auto again = Options();
  again.part_size = 16 * kMiB;
  again.multipart_threshold = 16 * kMiB;
  LK_ASSERT_OK_AND_ASSIGN(auto redo, MakeClient(again));
  LK_ASSERT_OK(redo->PutFile("n1/big.sst", dir_ / "big"));
  LK_ASSERT_OK_AND_ASSIGN(S3ObjectInfo info, client_->HeadObject("n1/big.sst"));
  EXPECT_EQ(info.size, data.size());
  EXPECT_TRUE(info.etag.ends_with("-7")) << info.etag;
}

TEST_F(RgwTest, ManyThreadsShareOneClient) {
  constexpr int kThreads = 8;
  constexpr int kEach = 10;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        const std::string key = "t" + std::to_string(t) + "/" + std::to_string(i);
        const std::string data = RandomBytes(1000 + 97 * i, t * 100 + i);
        if (!client_->PutObject(key, data).ok()) ++failures;
        auto got = client_->GetObject(key);
        if (!got.ok() || *got != data) ++failures;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  LK_ASSERT_OK_AND_ASSIGN(S3Listing all, client_->ListObjects("", "", 1000));
  EXPECT_EQ(all.objects.size(), static_cast<size_t>(kThreads * kEach));
}

TEST_F(RgwTest, S3cmdAndRcloneReadWhatTheLibraryWroteAndTheLibraryReadsWhatS3cmdWrote) {
  if (::access("/usr/bin/s3cmd", X_OK) != 0) GTEST_SKIP() << "s3cmd is not installed (apt-get install s3cmd)";
  const std::string cfg = S3cmdConfig();
  const std::string data = RandomBytes(3 * kMiB + 7, 5);
  LK_ASSERT_OK(client_->PutObject("lib/written by ledgerkeep", data));
  auto* run = ProcessRunner::Real();

  LK_ASSERT_OK_AND_ASSIGN(ProcessResult ls, run->Run({"s3cmd", "-c", cfg, "ls", "-r", "s3://" + bucket_}, 60'000));
  ASSERT_EQ(ls.exit_code, 0) << ls.output;
  EXPECT_NE(ls.output.find("s3://" + bucket_ + "/lib/written by ledgerkeep"), std::string::npos) << ls.output;
  LK_ASSERT_OK_AND_ASSIGN(
      ProcessResult get, run->Run({"s3cmd", "-c", cfg, "get", "s3://" + bucket_ + "/lib/written by ledgerkeep",
                                   dir_ / "by-s3cmd"},
                                  60'000));
  ASSERT_EQ(get.exit_code, 0) << get.output;
  EXPECT_TRUE(ReadFile(dir_ / "by-s3cmd") == data);

  WriteFile(dir_ / "for-s3cmd", "written by s3cmd\n");
  LK_ASSERT_OK_AND_ASSIGN(
      ProcessResult put,
      run->Run({"s3cmd", "-c", cfg, "put", dir_ / "for-s3cmd", "s3://" + bucket_ + "/tool/s3cmd.txt"}, 60'000));
  ASSERT_EQ(put.exit_code, 0) << put.output;
  LK_ASSERT_OK_AND_ASSIGN(std::string back, client_->GetObject("tool/s3cmd.txt"));
  EXPECT_EQ(back, "written by s3cmd\n");

  if (::access("/usr/bin/rclone", X_OK) == 0) {
    // rclone from the environment alone: an "rgw" remote of type s3.
    const std::string conf = dir_ / "rclone.conf";
    WriteFile(conf, "[rgw]\ntype = s3\nprovider = Ceph\naccess_key_id = " + env_["LK_RGW_ACCESS_KEY_ID"] +
                        "\nsecret_access_key = " + env_["LK_RGW_SECRET_ACCESS_KEY"] +
                        "\nendpoint = " + env_["LK_RGW_ENDPOINT"] + "\nforce_path_style = true\n");
    LK_ASSERT_OK_AND_ASSIGN(ProcessResult lsf,
                            run->Run({"rclone", "--config", conf, "lsf", "-R", "rgw:" + bucket_}, 60'000));
    ASSERT_EQ(lsf.exit_code, 0) << lsf.output;
    EXPECT_NE(lsf.output.find("lib/written by ledgerkeep"), std::string::npos) << lsf.output;
    LK_ASSERT_OK_AND_ASSIGN(ProcessResult copy,
                            run->Run({"rclone", "--config", conf, "copyto",
                                      "rgw:" + bucket_ + "/lib/written by ledgerkeep", dir_ / "by-rclone"},
                                     60'000));
    ASSERT_EQ(copy.exit_code, 0) << copy.output;
    EXPECT_TRUE(ReadFile(dir_ / "by-rclone") == data);
  }
}

}  // namespace
}  // namespace ledgerkeep::s3
