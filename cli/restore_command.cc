#include "cli/restore_command.h"

#include <CLI/CLI.hpp>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "backup/snapshot_restore.h"
#include "cli/backup_commands.h"
#include "cli/cli_app.h"
#include "cli/output.h"
#include "cli/snapshot_sets.h"
#include "backup/backup_destination.h"
#include "common/file_util.h"
#include "common/process.h"
#include "backup/snapshot_places.h"
#include "wire/backup_wire.h"

namespace ledgerkeep {
namespace {

nlohmann::json RestoreJson(const RestoreResult& r) {
  nlohmann::json j = {{"source_node", r.source_node},
                      {"source", r.source},
                      {"snapshot_id", r.snapshot_id},
                      {"db", r.db},
                      {"bytes", r.bytes},
                      {"files", r.files},
                      {"fetch_ms", r.fetch_ms},
                      {"verify_ms", r.verify_ms},
                      {"duration_ms", r.duration_ms},
                      {"ledgerd_started", r.ledgerd_started}};
  if (r.verification) j["verification"] = VerificationJson(*r.verification);
  return j;
}

int PrintRestore(const GlobalFlags& g, const std::string& where, const RestoreResult& r,
                 const Status& s) {
  if (g.json) {
    auto j = RestoreJson(r);
    j["target"] = where;
    j["ok"] = s.ok();
    if (!s.ok()) j["error"] = s.message();
    PrintJson(j);
    return s.ok() ? kExitOk : kExitFailed;
  }
  if (!s.ok()) {
    std::fprintf(stderr, "ledgerkeep: restore onto %s failed: %s\n", where.c_str(), s.message().c_str());
    return kExitFailed;
  }
  const SnapshotVerification* v = r.verification ? &*r.verification : nullptr;
  std::printf("restored %s snapshot %s from %s onto %s (%s)\n", r.source_node.c_str(), r.snapshot_id.c_str(),
              r.source.c_str(), where.c_str(), r.db.c_str());
  std::printf("  fetched %s in %lld ms; verified %llu files, %llu blocks in %lld ms: %s\n",
              HumanBytes(static_cast<double>(r.bytes)).c_str(), static_cast<long long>(r.fetch_ms),
              static_cast<unsigned long long>(v ? v->files_checked : 0),
              static_cast<unsigned long long>(v ? v->blocks_verified : 0),
              static_cast<long long>(r.verify_ms), v && v->ok ? "ok" : "FAILED");
  if (v) {
    std::printf("  block ids: genesis %llu, last reachable %llu, last %llu (equal to the manifest)\n",
                static_cast<unsigned long long>(v->genesis),
                static_cast<unsigned long long>(v->last_reachable),
                static_cast<unsigned long long>(v->last_block_id));
  }
  if (r.ledgerd_started) std::printf("  ledgerd --read-only serves the restored DB\n");
  return kExitOk;
}

// restore --to-node: the clone agent fetches, verifies and serves it.
int RunRestoreToNode(const GlobalFlags& g, const std::string& source, const std::string& snapshot,
                     const std::string& clone, int64_t wait_s) {
  auto client = ConnectBroker(g);
  if (!client.ok()) return Fail(client.status());
  wire::RestoreSnapshotT r;
  r.source_node = source;
  r.snapshot_id = snapshot;  // the broker fills in where source's backups are
  wire::CommandBodyUnion body;
  body.Set(std::move(r));
  TargetFlags tf;
  tf.node = clone;
  auto issued = (*client)->Issue(ToTarget(tf), std::move(body), static_cast<uint32_t>(wait_s * 1000));
  if (!issued.ok()) return Fail(issued.status());
  std::string last_line;
  auto show = [&](const wire::CommandStatusT& st) {
    if (g.json || st.targets.empty() || !st.targets[0]->last_progress || st.targets[0]->result) return;
    const auto& p = *st.targets[0]->last_progress;
    char line[200];
    std::snprintf(line, sizeof line, "%-6s %-8s %5.1f%%  %10s  %10s/s", clone.c_str(), p.phase.c_str(),
                  p.percent, HumanBytes(static_cast<double>(p.bytes_done)).c_str(),
                  HumanBytes(p.rate_bps).c_str());
    if (line != last_line) std::printf("%s\n", line);
    last_line = line;
    std::fflush(stdout);
  };
  auto st = (*client)->Wait(issued->cmd_id, wait_s * 1000 + 5000, show);
  if (!st.ok()) return Fail(st.status());
  const auto& t = st->targets.at(0);
  const auto* res = t->result ? t->result->detail.AsRestoreResult() : nullptr;
  Status s =
      TargetOk(*t) ? Status::OK() : Status(StatusCode::kAborted, TargetResult(*t) + ": " + TargetMessage(*t));
  if (res == nullptr) {
    RestoreResult empty;
    empty.source_node = source;
    return PrintRestore(g, clone, empty, s.ok() ? Status::Internal("no restore result") : s);
  }
  return PrintRestore(g, clone, FromWire(*res), s);
}

// restore --set RUN --to-node C1 --to-node C2 ...: the set's replicas, in
// node order, onto the clones in the order given, all at once; each clone
// verifies its copy. Refused unless the set is complete and there is one
// clone per replica.
int RunRestoreSet(const GlobalFlags& g, uint64_t run, const std::vector<std::string>& clones, int64_t wait_s) {
  auto sets = CollectSnapshotSets(g);
  if (!sets.ok()) return Fail(sets.status());
  const SnapshotSet* set = nullptr;
  for (const auto& s : *sets)
    if (s.run == run) set = &s;
  if (set == nullptr) {
    return Fail(Status::NotFound("no snapshot set " + std::to_string(run) + " (see `ledgerkeep backup list --sets`)"));
  }
  if (!set->complete) {
    std::string missing;
    for (const auto& m : set->missing) missing += (missing.empty() ? "" : ", ") + m;
    return Fail(Status::FailedPrecondition("snapshot set " + std::to_string(run) + " is incomplete (missing: " +
                                           missing + "); `ledgerkeep maintenance status --run " +
                                           std::to_string(run) + "` says what is still shipping"));
  }
  if (clones.size() != set->snapshots.size()) {
    return Fail(Status::InvalidArgument("snapshot set " + std::to_string(run) + " has " +
                                        std::to_string(set->snapshots.size()) + " replicas; give as many --to-node "
                                        "clones (got " + std::to_string(clones.size()) + ")"));
  }
  auto client = ConnectBroker(g);
  if (!client.ok()) return Fail(client.status());
  struct Job {
    std::string source, snapshot, clone;
    uint64_t cmd = 0;
  };
  std::vector<Job> jobs;
  size_t k = 0;
  for (const auto& [node, id] : set->snapshots) jobs.push_back({node, id, clones[k++], 0});
  for (auto& j : jobs) {
    if (!g.json) std::printf("%s snapshot %s -> %s\n", j.source.c_str(), j.snapshot.c_str(), j.clone.c_str());
    wire::RestoreSnapshotT r;
    r.source_node = j.source;
    r.snapshot_id = j.snapshot;
    wire::CommandBodyUnion body;
    body.Set(std::move(r));
    TargetFlags tf;
    tf.node = j.clone;
    auto issued = (*client)->Issue(ToTarget(tf), std::move(body), static_cast<uint32_t>(wait_s * 1000));
    if (!issued.ok()) return Fail(issued.status().WithContext("restore onto " + j.clone));
    j.cmd = issued->cmd_id;
  }
  std::fflush(stdout);
  int rc = kExitOk;
  nlohmann::json out = nlohmann::json::array();
  for (const auto& j : jobs) {
    auto st = (*client)->Wait(j.cmd, wait_s * 1000 + 5000, {});
    Status s = st.ok() ? Status::OK() : st.status();
    RestoreResult res;
    res.source_node = j.source;
    if (st.ok()) {
      const auto& t = st->targets.at(0);
      if (const auto* r = t->result ? t->result->detail.AsRestoreResult() : nullptr) res = FromWire(*r);
      if (!TargetOk(*t)) s = Status(StatusCode::kAborted, TargetResult(*t) + ": " + TargetMessage(*t));
    }
    if (s.ok() && (!res.verification || res.verification->last_block_id != set->block)) {
      s = Status::Corruption(j.clone + " holds block " +
                             std::to_string(res.verification ? res.verification->last_block_id : 0) +
                             ", not the set's " + std::to_string(set->block));
    }
    if (!s.ok()) rc = kExitFailed;
    if (g.json) {
      auto r = RestoreJson(res);
      r["target"] = j.clone;
      r["ok"] = s.ok();
      if (!s.ok()) r["error"] = s.message();
      out.push_back(r);
    } else {
      PrintRestore(g, j.clone, res, s);
    }
  }
  if (g.json) {
    PrintJson({{"set", run}, {"block", set->block}, {"ok", rc == kExitOk}, {"clones", out}});
  } else if (rc == kExitOk) {
    std::printf("snapshot set %llu restored onto %zu clones, every one at block %llu\n",
                static_cast<unsigned long long>(run), jobs.size(), static_cast<unsigned long long>(set->block));
  }
  return rc;
}

// restore --to-dir: on this machine, straight from the source node's
// destination as the broker recorded it (the source node may be down).
int RunRestoreToDir(const GlobalFlags& g, const std::string& source, const std::string& snapshot,
                    const std::string& dir) {
  auto client = ConnectBroker(g);
  if (!client.ok()) return Fail(client.status());
  auto list = (*client)->ListNodes();
  if (!list.ok()) return Fail(list.status());
  const wire::NodeInfoT* n = nullptr;
  for (const auto& x : list->nodes)
    if (x->node_id == source) n = x.get();
  if (n == nullptr) return Fail(Status::NotFound("no agent node '" + source + "' (see `ledgerkeep nodes`)"));
  // Every place of its snapshots: "latest" is the newest over all of them.
  SnapshotPlaces places = PlacesFromWire(n->backup_places);
  if (places.empty() && n->backup_target && !n->backup_target->destination.empty()) {
    SetHomePlace(places, FromWire(*n->backup_target));
  }
  if (places.empty())
    return Fail(Status::FailedPrecondition("no backup destination is recorded for " + source));
  if (dir.empty() || dir[0] != '/') return Fail(Status::InvalidArgument("--to-dir must be an absolute path"));
  // Scratch space of our own next to it (deleted afterwards: never a
  // directory that was there before).
  const std::string parent = std::filesystem::path(dir).lexically_normal().parent_path().string();
  if (Status s = CreateDirectories(parent.empty() ? "/" : parent, 0700); !s.ok()) return Fail(s);
  std::string tmpl = (parent == "/" ? "" : parent) + "/.ledgerkeep-restore-XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr)
    return Fail(Status::FromErrno(errno, "create a work directory in " + parent));
  const std::string work_dir = tmpl;
  std::vector<SnapshotAccess> access;
  for (const auto& place : places) {
    auto dest = ParseDestination(place.target, source);
    if (!dest.ok()) return Fail(dest.status());
    SnapshotAccess a;
    a.destination = *dest;
    a.work_dir = work_dir;
    a.newest_recorded = place.newest_snapshot_id;
    a.on_progress = [&](const TransferProgress& p) {
      if (!g.json && p.phase != "fetch") std::printf("%s\n", p.phase.c_str());
    };
    access.push_back(std::move(a));
  }
  RestoreRequest req;
  req.source_node = source;
  req.snapshot_id = snapshot;
  req.db_dir = dir;
  RestoreResult res;
  Status s = RestoreSnapshot(ProcessRunner::Real(), access, req, &res);
  std::error_code ec;
  std::filesystem::remove_all(work_dir, ec);
  return PrintRestore(g, dir, res, s);
}

// restore --client: the client agent fetches, checks and extracts it.
int RunRestoreClient(const GlobalFlags& g, const std::string& node, const std::string& archive_name,
                     const std::string& dir, int64_t wait_s) {
  wire::RestoreClientArchiveT r;
  r.archive_name = archive_name;
  r.to_dir = dir;
  wire::CommandBodyUnion body;
  body.Set(std::move(r));
  auto st = RunOnNode(g, node, std::move(body), wait_s);
  if (!st.ok()) return Fail(st.status());
  const auto& t = st->targets[0];
  const auto* res = t->result ? t->result->detail.AsClientRestoreResult() : nullptr;
  if (!TargetOk(*t) || res == nullptr) {
    if (g.json) {
      PrintJson({{"node", node}, {"ok", false}, {"error", TargetResult(*t) + ": " + TargetMessage(*t)}});
    } else {
      std::fprintf(stderr, "ledgerkeep: %s: client restore failed: %s\n", node.c_str(),
                   TargetMessage(*t).c_str());
    }
    return kExitFailed;
  }
  if (g.json) {
    PrintJson({{"node", node},
               {"ok", true},
               {"archive", res->archive},
               {"sha256", res->sha256},
               {"to_dir", res->to_dir},
               {"entries", res->entries},
               {"bytes", res->bytes},
               {"duration_ms", res->duration_ms}});
  } else {
    std::printf("%s: restored %s (sha256 ok) into %s: %llu entries, %s\n", node.c_str(), res->archive.c_str(),
                res->to_dir.c_str(), static_cast<unsigned long long>(res->entries),
                HumanBytes(static_cast<double>(res->bytes)).c_str());
  }
  return kExitOk;
}

struct RestoreFlags {
  std::string node, snapshot = "latest", to_dir, client, archive;
  std::vector<std::string> to_nodes;
  uint64_t set = 0;
  int64_t wait_s = 3600;
};

int RunRestore(const GlobalFlags& g, const RestoreFlags& f) {
  if (!f.client.empty()) return RunRestoreClient(g, f.client, f.archive, f.to_dir, f.wait_s);
  if (f.set != 0) {
    if (f.to_nodes.empty()) return Fail(Status::InvalidArgument("restore --set needs a --to-node clone per replica"));
    return RunRestoreSet(g, f.set, f.to_nodes, f.wait_s);
  }
  if (f.node.empty()) return Fail(Status::InvalidArgument("restore needs --node (a replica), --set or --client"));
  if (f.to_nodes.size() > 1) {
    return Fail(Status::InvalidArgument("one --to-node for --node (several are for --set: a whole snapshot set)"));
  }
  if (!f.to_nodes.empty()) return RunRestoreToNode(g, f.node, f.snapshot, f.to_nodes[0], f.wait_s);
  if (!f.to_dir.empty()) return RunRestoreToDir(g, f.node, f.snapshot, f.to_dir);
  return Fail(Status::InvalidArgument("restore --node needs --to-node CLONE or --to-dir PATH"));
}

}  // namespace

void RegisterRestoreCommand(CLI::App& app, const GlobalFlags& g, CommandTable& commands) {
  auto f = std::make_shared<RestoreFlags>();
  auto* restore = app.add_subcommand(
      "restore",
      "restore a replica snapshot onto a clone node (--to-node) or a directory here (--to-dir), or a "
      "client archive (--client) on its client node");
  auto* r_node_opt = restore->add_option("--node", f->node, "the replica whose snapshot to restore");
  auto* r_snapshot_opt =
      restore->add_option("--snapshot", f->snapshot, "snapshot id or latest")->capture_default_str();
  auto* r_to_node_opt = restore->add_option(
      "--to-node", f->to_nodes,
      "a clone agent: restores, verifies, runs ledgerd --read-only (with --set: one per replica, repeated; "
      "the set's replicas in node order go to the clones in the order given)");
  auto* r_set_opt = restore->add_option(
      "--set", f->set,
      "a maintenance run's snapshot set (`backup list --sets`): every replica's snapshot onto its own clone");
  auto* r_to_dir_opt = restore->add_option(
      "--to-dir", f->to_dir, "with --node: a directory on this machine; with --client: on the client node");
  auto* r_client_opt = restore->add_option("--client", f->client, "the client node whose archive to restore");
  auto* r_archive_opt =
      restore->add_option("--archive", f->archive, "client archive name (NAME or NAME.tar.gz)");
  restore->add_option("--wait-s", f->wait_s, "give up waiting after this long")->capture_default_str();
  r_node_opt->excludes(r_client_opt);
  r_set_opt->excludes(r_node_opt)->excludes(r_client_opt)->excludes(r_to_dir_opt)->excludes(r_snapshot_opt);
  r_to_node_opt->excludes(r_to_dir_opt);
  r_client_opt->needs(r_archive_opt)->needs(r_to_dir_opt)->excludes(r_to_node_opt);
  r_archive_opt->needs(r_client_opt);
  commands.Add(restore, [&g, f] { return RunRestore(g, *f); });
}

}  // namespace ledgerkeep
