// backup/object_layout.h: the object-store layout and its retention plan.
#include "backup/object_layout.h"

#include <gtest/gtest.h>

#include <algorithm>

namespace ledgerkeep {
namespace {

const std::string kOld = "20261201T000000.000Z";
const std::string kMid = "20261202T000000.000Z";
const std::string kNew = "20261203T000000.000Z";
const std::string kCrashed = "20261202T120000.000Z";
constexpr int64_t kRunStart = 2'000'000;

ManifestFile File(const std::string& path, uint64_t size, char hash_char) {
  ManifestFile f;
  f.path = path;
  f.size = size;
  f.xxh128 = std::string(32, hash_char);
  return f;
}

SnapshotManifest Manifest(const std::string& id, std::vector<ManifestFile> files) {
  SnapshotManifest m;
  m.snapshot_id = id;
  m.files = std::move(files);
  return m;
}

// The objects a finished upload of `m` leaves (data, MANIFEST, DONE), at `t`.
void Upload(const ObjectLayout& l, const SnapshotManifest& m, int64_t t, std::vector<StoredObject>& out,
            bool done = true) {
  for (const auto& f : m.files) {
    const std::string key = l.DataKey(m.snapshot_id, f);
    if (std::none_of(out.begin(), out.end(), [&](const StoredObject& o) { return o.key == key; })) {
      out.push_back({key, f.size, t});
    }
  }
  out.push_back({l.ManifestKey(m.snapshot_id), 100, t});
  if (done) out.push_back({l.DoneKey(m.snapshot_id), 65, t});
}

bool Has(const ObjectDeletionPlan& p, const std::string& key) {
  return std::find(p.keys.begin(), p.keys.end(), key) != p.keys.end();
}

TEST(ObjectLayoutTest, SstsAreKeyedByNameChecksumAndSizeOtherFilesPerSnapshot) {
  ObjectLayout l("ledger/r1");
  EXPECT_EQ(l.OwnerKey(), "ledger/r1/.ledgerkeep-owner");
  EXPECT_EQ(l.DataKey(kOld, File("000012.sst", 4096, 'a')),
            "ledger/r1/shared/000012_" + std::string(32, 'a') + "_4096.sst");
  EXPECT_EQ(l.DataKey(kOld, File("MANIFEST-000005", 77, 'b')), "ledger/r1/snapshots/" + kOld + "/data/MANIFEST-000005");
  // An .sst below data/ (not RocksDB's own) or without a checksum stays per snapshot.
  EXPECT_EQ(l.DataKey(kOld, File("sub/1.sst", 1, 'c')), "ledger/r1/snapshots/" + kOld + "/data/sub/1.sst");
  ManifestFile no_sum = File("000013.sst", 5, 'd');
  no_sum.xxh128.clear();
  EXPECT_FALSE(ObjectLayout::IsShared(no_sum));
  EXPECT_EQ(l.ManifestKey(kOld), "ledger/r1/snapshots/" + kOld + "/MANIFEST.json");
  EXPECT_EQ(l.DoneKey(kOld), "ledger/r1/snapshots/" + kOld + "/DONE");
  EXPECT_EQ(ObjectLayout("").OwnerKey(), ".ledgerkeep-owner");
}

TEST(ObjectLayoutTest, AnUnchangedSstIsStoredOnceAndAChangedOneAgain) {
  ObjectLayout l("r1");
  const auto a = File("000012.sst", 4096, 'a');
  EXPECT_EQ(l.DataKey(kOld, a), l.DataKey(kNew, a));
  auto rewritten = a;
  rewritten.xxh128 = std::string(32, 'e');  // same name, other content (a restored, re-numbered DB)
  EXPECT_NE(l.DataKey(kOld, a), l.DataKey(kNew, rewritten));
  auto grown = a;
  grown.size = 4097;
  EXPECT_NE(l.DataKey(kOld, a), l.DataKey(kNew, grown));
}

TEST(ObjectLayoutTest, RetentionDeletesAnOldSnapshotButKeepsTheSharedSstsANewerOneReferences) {
  ObjectLayout l("r1");
  const auto old_m = Manifest(kOld, {File("1.sst", 1000, 'a'), File("2.sst", 2000, 'b'), File("CURRENT", 16, 'c')});
  const auto new_m = Manifest(kNew, {File("2.sst", 2000, 'b'), File("3.sst", 3000, 'd'), File("CURRENT", 16, 'c')});
  ObjectRetentionInput in;
  Upload(l, old_m, 1000, in.objects);
  Upload(l, new_m, 1500, in.objects);
  // A key of the snapshot that sorts before DONE.
  in.objects.push_back({l.SnapshotPrefix(kOld) + ".partial", 1, 1000});
  in.manifests = {{kOld, old_m}, {kNew, new_m}};
  in.delete_snapshots = {kOld};
  in.run_started_ms = kRunStart;
  const auto p = PlanObjectRetention(l, in);
  EXPECT_EQ(p.snapshots_deleted, std::vector<std::string>{kOld});
  EXPECT_TRUE(Has(p, l.SnapshotPrefix(kOld) + ".partial"));
  EXPECT_TRUE(Has(p, l.DataKey(kOld, old_m.files[0])));   // 1.sst: only the old one had it
  EXPECT_FALSE(Has(p, l.DataKey(kOld, old_m.files[1])));  // 2.sst: the new one references it
  EXPECT_TRUE(Has(p, l.DataKey(kOld, old_m.files[2])));   // the old snapshot's own CURRENT
  EXPECT_FALSE(Has(p, l.DataKey(kNew, new_m.files[2])));
  EXPECT_FALSE(Has(p, l.DoneKey(kNew)));
  EXPECT_EQ(p.shared_deleted, 1u);
  EXPECT_EQ(p.bytes_freed, 1000u + 16 + 100 + 65 + 1);
  // DONE goes first: a half-deleted snapshot reads as incomplete.
  ASSERT_FALSE(p.keys.empty());
  EXPECT_EQ(p.keys.front(), l.DoneKey(kOld));
}

TEST(ObjectLayoutTest, TheNewestCompleteSnapshotIsNeverDeletedEvenWhenNamed) {
  ObjectLayout l("r1");
  const auto old_m = Manifest(kOld, {File("1.sst", 10, 'a')});
  const auto new_m = Manifest(kNew, {File("2.sst", 20, 'b')});
  ObjectRetentionInput in;
  Upload(l, old_m, 1000, in.objects);
  Upload(l, new_m, 1500, in.objects);
  in.manifests = {{kOld, old_m}, {kNew, new_m}};
  in.delete_snapshots = {kOld, kNew};
  in.run_started_ms = kRunStart;
  const auto p = PlanObjectRetention(l, in);
  EXPECT_EQ(p.snapshots_deleted, std::vector<std::string>{kOld});
  EXPECT_FALSE(Has(p, l.DoneKey(kNew)));
  EXPECT_FALSE(Has(p, l.DataKey(kNew, new_m.files[0])));
  EXPECT_TRUE(std::any_of(p.notes.begin(), p.notes.end(),
                          [](const std::string& n) { return n.find("newest complete") != std::string::npos; }));
}

TEST(ObjectLayoutTest, ACrashedRunsSnapshotAndTheSstsOnlyItUploadedAreCleanedUp) {
  ObjectLayout l("r1");
  const auto done_m = Manifest(kMid, {File("1.sst", 10, 'a')});
  const auto crashed_m = Manifest(kCrashed, {File("1.sst", 10, 'a'), File("9.sst", 90, 'f'), File("LOG", 5, 'g')});
  ObjectRetentionInput in;
  Upload(l, done_m, 1000, in.objects);
  Upload(l, crashed_m, 1200, in.objects, /*done=*/false);
  in.manifests = {{kMid, done_m}};
  in.run_started_ms = kRunStart;
  const auto p = PlanObjectRetention(l, in);
  EXPECT_EQ(p.crashed_snapshots, std::vector<std::string>{kCrashed});
  EXPECT_TRUE(Has(p, l.ManifestKey(kCrashed)));
  EXPECT_TRUE(Has(p, l.DataKey(kCrashed, crashed_m.files[2])));
  EXPECT_TRUE(Has(p, l.DataKey(kCrashed, crashed_m.files[1])));   // 9.sst: nothing references it
  EXPECT_FALSE(Has(p, l.DataKey(kCrashed, crashed_m.files[0])));  // 1.sst: the complete one does
  EXPECT_TRUE(p.snapshots_deleted.empty());
}

TEST(ObjectLayoutTest, NothingARunInProgressWroteIsTouched) {
  ObjectLayout l("r1");
  const auto done_m = Manifest(kMid, {File("1.sst", 10, 'a')});
  const auto running_m = Manifest(kNew, {File("5.sst", 50, 'h'), File("OPTIONS-7", 5, 'i')});
  ObjectRetentionInput in;
  Upload(l, done_m, 1000, in.objects);
  // The run in progress: its SST uploaded (referenced by no manifest yet),
  // its other file, no MANIFEST or DONE yet.
  in.objects.push_back({l.DataKey(kNew, running_m.files[0]), 50, kRunStart + 10});
  in.objects.push_back({l.DataKey(kNew, running_m.files[1]), 5, kRunStart + 20});
  in.manifests = {{kMid, done_m}};
  in.run_started_ms = kRunStart;
  const auto p = PlanObjectRetention(l, in);
  EXPECT_TRUE(p.keys.empty()) << p.keys.front();
  EXPECT_TRUE(p.crashed_snapshots.empty());
}

TEST(ObjectLayoutTest, AnUnreadableManifestStopsTheSharedCleanup) {
  ObjectLayout l("r1");
  const auto old_m = Manifest(kOld, {File("1.sst", 10, 'a')});
  const auto mid_m = Manifest(kMid, {File("2.sst", 20, 'b')});
  const auto new_m = Manifest(kNew, {File("3.sst", 30, 'c')});
  ObjectRetentionInput in;
  Upload(l, old_m, 1000, in.objects);
  Upload(l, mid_m, 1100, in.objects);
  Upload(l, new_m, 1200, in.objects);
  in.manifests = {{kOld, old_m}, {kNew, new_m}};  // kMid's could not be read
  in.delete_snapshots = {kOld};
  in.run_started_ms = kRunStart;
  const auto p = PlanObjectRetention(l, in);
  EXPECT_EQ(p.snapshots_deleted, std::vector<std::string>{kOld});
  EXPECT_EQ(p.shared_deleted, 0u);
  EXPECT_FALSE(Has(p, l.DataKey(kOld, old_m.files[0])));
  EXPECT_TRUE(std::any_of(p.notes.begin(), p.notes.end(),
                          [](const std::string& n) { return n.find(kMid) != std::string::npos; }));
}

TEST(ObjectLayoutTest, WithoutARunStartOnlyTheNamedSnapshotsOwnObjectsGo) {
  ObjectLayout l("r1");
  const auto old_m = Manifest(kOld, {File("1.sst", 10, 'a'), File("CURRENT", 16, 'c')});
  const auto new_m = Manifest(kNew, {File("2.sst", 20, 'b')});
  const auto crashed_m = Manifest(kCrashed, {File("9.sst", 90, 'f')});
  ObjectRetentionInput in;
  Upload(l, old_m, 1000, in.objects);
  Upload(l, crashed_m, 1100, in.objects, /*done=*/false);
  Upload(l, new_m, 1200, in.objects);
  in.manifests = {{kOld, old_m}, {kNew, new_m}};
  in.delete_snapshots = {kOld};
  const auto p = PlanObjectRetention(l, in);
  EXPECT_TRUE(Has(p, l.DoneKey(kOld)));
  EXPECT_TRUE(Has(p, l.DataKey(kOld, old_m.files[1])));
  EXPECT_FALSE(Has(p, l.DataKey(kOld, old_m.files[0])));      // shared: kept
  EXPECT_FALSE(Has(p, l.ManifestKey(kCrashed)));              // maybe in progress: kept
  EXPECT_TRUE(p.crashed_snapshots.empty());
}

TEST(ObjectLayoutTest, KeysItDoesNotRecogniseAreLeftAlone) {
  ObjectLayout l("r1");
  const auto old_m = Manifest(kOld, {File("1.sst", 10, 'a')});
  const auto new_m = Manifest(kNew, {File("2.sst", 20, 'b')});
  ObjectRetentionInput in;
  Upload(l, old_m, 1000, in.objects);
  Upload(l, new_m, 1200, in.objects);
  in.objects.push_back({"r1/.ledgerkeep-owner", 3, 10});
  in.objects.push_back({"r1/notes.txt", 3, 10});
  in.objects.push_back({"r1/snapshots/not-an-id/x", 3, 10});
  in.objects.push_back({"r1/shared/sub/1.sst", 3, 10});
  in.objects.push_back({"r1/shared/readme", 3, 10});
  in.objects.push_back({"r2/shared/7_" + std::string(32, 'a') + "_1.sst", 3, 10});  // another node's
  in.manifests = {{kOld, old_m}, {kNew, new_m}};
  in.delete_snapshots = {kOld};
  in.run_started_ms = kRunStart;
  const auto p = PlanObjectRetention(l, in);
  for (const auto& k : p.keys) {
    EXPECT_TRUE(k.rfind("r1/snapshots/" + kOld + "/", 0) == 0 || k == l.DataKey(kOld, old_m.files[0])) << k;
  }
  EXPECT_TRUE(Has(p, l.DataKey(kOld, old_m.files[0])));
}

TEST(ObjectLayoutTest, APrefixWithEmptyDotOrControlSegmentsIsRefused) {
  EXPECT_TRUE(ValidateObjectPrefix("").ok());
  EXPECT_TRUE(ValidateObjectPrefix("ledger/r1").ok());
  EXPECT_TRUE(ValidateObjectPrefix("site-a/ledger_2026/r1").ok());
  const std::vector<std::string> bads = {"/r1", "r1/",   "a//b",    "a/../b",
                                         "./r1", "..",   "a\nb", "a\x7f", std::string(513, 'x')};
  for (const auto& bad : bads) {
    auto st = ValidateObjectPrefix(bad);
    EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << bad;
  }
  EXPECT_NE(ValidateObjectPrefix("a//b").message().find("empty segment"), std::string::npos);
}

}  // namespace
}  // namespace ledgerkeep
