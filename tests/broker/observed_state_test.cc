// ObservedState: the broker's HTTP side folded from events alone (no
// broker): backup history per node, wedge states, maintenance outcomes and
// command latencies, and the metrics they drive.
#include "broker/observed_state.h"

#include <flatbuffers/flatbuffers.h>
#include <gtest/gtest.h>
#include <prometheus/registry.h>

#include "http/metrics_text.h"

namespace ledgerkeep {
namespace {

// Owns one packed Event.
class Ev {
 public:
  Ev(uint64_t seq, int64_t at_ms, const std::string& kind, const std::string& node, wire::EventBodyUnion body) {
    wire::EventT e;
    e.seq = seq;
    e.at_ms = at_ms;
    e.kind = kind;
    e.node = node;
    e.body = std::move(body);
    fbb_.Finish(wire::Event::Pack(fbb_, &e));
  }
  const wire::Event& operator*() const { return *flatbuffers::GetRoot<wire::Event>(fbb_.GetBufferPointer()); }

 private:
  flatbuffers::FlatBufferBuilder fbb_;
};

wire::EventBodyUnion Body(wire::BackupResultT b) {
  wire::EventBodyUnion u;
  u.Set(std::move(b));
  return u;
}

wire::BackupResultT Backup(bool ok, uint64_t bytes, uint16_t code = 0) {
  wire::BackupResultT b;
  b.ok = ok;
  b.snapshot_id = ok ? "20261207T100000.000Z" : "";
  b.bytes_transferred = bytes;
  b.duration_ms = 2500;
  b.error = ok ? "" : "destination unreachable";
  b.error_code = code;
  b.snapshot_count = ok ? 3 : 0;
  return b;
}

bool Has(const std::string& text, const std::string& line) { return text.find(line + "\n") != std::string::npos; }

TEST(ObservedStateTest, BackupResultsFromSchedulesAndCommandsBuildEachNodesHistoryAndMetrics) {
  prometheus::Registry registry;
  ObservedState state(registry);
  state.Apply(*Ev(1, 1000, "backup", "r1", Body(Backup(true, 4096))));  // a scheduled run
  wire::CommandIssuedT issued;
  issued.cmd_id = 7;
  issued.kind = std::string(CommandKindName(wire::CommandBody::RunBackupNow));
  wire::EventBodyUnion ib;
  ib.Set(issued);
  state.Apply(*Ev(2, 2000, "command", "broker", ib));
  wire::CommandResultT failed;  // a run-now that failed before it made a result of its own
  failed.cmd_id = 7;
  failed.status = wire::ResultStatus::Failed;
  failed.error_code = static_cast<uint16_t>(StatusCode::kPermissionDenied);
  failed.message = "ssh: permission denied";
  wire::EventBodyUnion fb;
  fb.Set(failed);
  state.Apply(*Ev(3, 3000, "command", "r1", fb));
  wire::CommandFinishedT finished;
  finished.cmd_id = 7;
  finished.kind = issued.kind;
  finished.failed_count = 1;
  wire::EventBodyUnion fin;
  fin.Set(finished);
  state.Apply(*Ev(4, 3500, "command", "broker", fin));

  wire::NodeListT list;
  for (const char* n : {"r1", "r2"}) {
    auto info = std::make_unique<wire::NodeInfoT>();
    info->node_id = n;
    info->role = wire::Role::Replica;
    info->state = std::string(n) == "r1" ? wire::NodeState::Alive : wire::NodeState::Lost;
    list.nodes.push_back(std::move(info));
  }
  const nlohmann::json backups = state.BackupsJson(5000, list);
  ASSERT_EQ(backups["nodes"].size(), 2u) << backups.dump();
  const nlohmann::json& r1 = backups["nodes"][0];
  EXPECT_EQ(r1["node"], "r1");
  EXPECT_EQ(r1["last_success_ms"], 1000);
  EXPECT_FALSE(r1["last"]["ok"].get<bool>()) << "the newest run is the failed one";
  EXPECT_EQ(r1["last"]["error"], "ssh: permission denied");
  ASSERT_EQ(r1["recent"].size(), 2u);
  EXPECT_TRUE(r1["recent"][1]["ok"].get<bool>());
  EXPECT_TRUE(backups["nodes"][1]["last"].is_null()) << "r2 never backed up";

  state.SetNodes(list);
  state.RefreshAges(5000);
  const std::string m = RenderMetrics(registry);
  EXPECT_TRUE(Has(m, "ledgerkeep_backup_last_success_timestamp_seconds{node=\"r1\"} 1")) << m;
  EXPECT_TRUE(Has(m, "ledgerkeep_backup_last_run_success{node=\"r1\"} 0")) << m;
  EXPECT_TRUE(Has(m, "ledgerkeep_backup_runs_total{node=\"r1\",result=\"success\"} 1")) << m;
  EXPECT_TRUE(Has(m, "ledgerkeep_backup_runs_total{node=\"r1\",result=\"failure\"} 1")) << m;
  EXPECT_TRUE(Has(m, "ledgerkeep_backup_failures_total{node=\"r1\",reason=\"permission_denied\"} 1")) << m;
  EXPECT_TRUE(Has(m, "ledgerkeep_backup_sent_bytes_total{node=\"r1\"} 4096")) << m;
  EXPECT_TRUE(Has(m, "ledgerkeep_backup_snapshots{node=\"r1\"} 3")) << m;
  EXPECT_TRUE(Has(m, "ledgerkeep_backup_newest_snapshot_age_seconds{node=\"r1\"} 4")) << m;
  EXPECT_EQ(m.find("ledgerkeep_backup_last_run_success{node=\"r2\"}"), std::string::npos)
      << "no last-run series for a node that never ran";
  EXPECT_TRUE(Has(m, "ledgerkeep_node_up{node=\"r1\",role=\"replica\"} 1")) << m;
  EXPECT_TRUE(Has(m, "ledgerkeep_node_up{node=\"r2\",role=\"replica\"} 0")) << m;
  EXPECT_TRUE(Has(m, "ledgerkeep_commands_total{kind=\"backup-run\",result=\"failed\"} 1")) << m;
  EXPECT_TRUE(Has(m, "ledgerkeep_command_latency_seconds_count{kind=\"backup-run\"} 1")) << m;
  EXPECT_TRUE(Has(m, "ledgerkeep_command_latency_seconds_sum{kind=\"backup-run\"} 1.5")) << m;
  EXPECT_TRUE(Has(m, "ledgerkeep_event_log_head_sequence 4")) << m;

  // A node leaves the allowlist: its liveness series go.
  list.nodes.pop_back();
  state.SetNodes(list);
  EXPECT_EQ(RenderMetrics(registry).find("ledgerkeep_node_up{node=\"r2\""), std::string::npos);
}

TEST(ObservedStateTest, ARepeatedOrOlderEventIsIgnored) {
  prometheus::Registry registry;
  ObservedState state(registry);
  state.Apply(*Ev(5, 1000, "backup", "r1", Body(Backup(true, 100))));
  state.Apply(*Ev(5, 1000, "backup", "r1", Body(Backup(true, 100))));
  state.Apply(*Ev(3, 900, "backup", "r1", Body(Backup(false, 0, 5))));
  EXPECT_EQ(state.head_seq(), 5u);
  EXPECT_TRUE(Has(RenderMetrics(registry), "ledgerkeep_backup_runs_total{node=\"r1\",result=\"success\"} 1"));
  EXPECT_EQ(RenderMetrics(registry).find("result=\"failure\"} 1"), std::string::npos);
}

TEST(ObservedStateTest, WedgeResultsAndMaintenanceOutcomesReachTheNodesAndTheMetrics) {
  prometheus::Registry registry;
  ObservedState state(registry);
  wire::CommandResultT wedged;
  wedged.cmd_id = 1;
  wedged.status = wire::ResultStatus::Ok;
  wire::WedgeStatusT w;
  w.wedged = true;
  w.stop_point = 300;
  w.last = 300;
  w.running = true;
  wedged.detail.Set(w);
  wire::EventBodyUnion wb;
  wb.Set(wedged);
  state.Apply(*Ev(1, 1000, "command", "r1", wb));
  wire::RunbookStepT step;
  step.run_id = 9;
  step.kind = "maintenance";
  step.step = "checkpoint";
  step.state = "started";
  wire::EventBodyUnion sb;
  sb.Set(step);
  EXPECT_FALSE(state.Apply(*Ev(2, 1100, "runbook", "broker", sb)).has_value());
  EXPECT_TRUE(Has(RenderMetrics(registry), "ledgerkeep_maintenance_running 1"));
  step.step = "finished";
  step.state = "failed";
  sb.Set(step);
  EXPECT_EQ(state.Apply(*Ev(3, 1200, "runbook", "broker", sb)), std::optional<uint64_t>(9));
  EXPECT_EQ(state.latest_maintenance_run(), 9u);

  const nlohmann::json report = {{"rolled_back", true}, {"pause_s", 0.42}, {"client_downtime_s", 1.5}};
  EXPECT_EQ(ObservedState::OutcomeOf("failed", report), "rolled_back");
  EXPECT_EQ(ObservedState::OutcomeOf("failed", {{"not_shipped", {"r2"}}}), "incomplete");
  EXPECT_EQ(ObservedState::OutcomeOf("failed", nlohmann::json::object()), "failed");
  EXPECT_EQ(ObservedState::OutcomeOf("succeeded", report), "succeeded");
  state.MaintenanceFinished(9, ObservedState::OutcomeOf("failed", report), report);

  const std::string m = RenderMetrics(registry);
  EXPECT_TRUE(Has(m, "ledgerkeep_maintenance_running 0")) << m;
  EXPECT_TRUE(Has(m, "ledgerkeep_maintenance_runs_total{outcome=\"rolled_back\"} 1")) << m;
  EXPECT_TRUE(Has(m, "ledgerkeep_maintenance_runs_total{outcome=\"succeeded\"} 0")) << "every outcome from the start";
  EXPECT_TRUE(Has(m, "ledgerkeep_maintenance_last_pause_seconds 0.42")) << m;
  EXPECT_TRUE(Has(m, "ledgerkeep_ledger_wedged{node=\"r1\"} 1")) << m;

  wire::NodeListT list;
  auto info = std::make_unique<wire::NodeInfoT>();
  info->node_id = "r1";
  info->role = wire::Role::Replica;
  list.nodes.push_back(std::move(info));
  const nlohmann::json nodes = state.NodesJson(list);
  EXPECT_EQ(nodes["nodes"][0]["wedge"]["wedged"], true) << nodes.dump();
  EXPECT_EQ(nodes["nodes"][0]["wedge"]["stop_point"], 300);
}

}  // namespace
}  // namespace ledgerkeep
