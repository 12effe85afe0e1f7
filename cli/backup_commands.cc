#include "cli/backup_commands.h"

#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <ctime>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "backup/backup_schedule.h"
#include "backup/client_archive.h"
#include "cli/snapshot_sets.h"
#include "cli/cli_app.h"
#include "client/event_format.h"
#include "cli/output.h"
#include "backup/backup_destination.h"
#include "backup/rsync.h"
#include "backup/snapshot_verifier.h"
#include "common/byte_size.h"
#include "common/clock.h"
#include "wire/backup_wire.h"

namespace ledgerkeep {

nlohmann::json VerificationJson(const SnapshotVerification& v) {
  nlohmann::json problems = nlohmann::json::array();
  for (const auto& p : v.problems)
    problems.push_back({{"file", p.file}, {"block", p.block}, {"what", p.what}});
  return {{"snapshot_id", v.snapshot_id},         {"ok", v.ok},
          {"files_checked", v.files_checked},     {"bytes_checked", v.bytes_checked},
          {"blocks_verified", v.blocks_verified}, {"genesis", v.genesis},
          {"last_reachable", v.last_reachable},   {"last_block_id", v.last_block_id},
          {"duration_ms", v.duration_ms},         {"problems", problems}};
}

namespace {

struct BackupFlags {
  std::string destination;
  std::string rsync_user;
  std::string ssh_key;
  uint16_t ssh_port = 0;
  std::string known_hosts;
  bool accept_new_host_key = false;
  std::string frequency;
  std::string time_zone = "UTC";
  std::string mode = "rsync";
  uint32_t keep = 0;
  uint64_t max_age_days = 0;
  uint64_t min_free_mb = 1024;
  std::string bwlimit;  // "" = none given
  int64_t wait_s = 3600;
};

std::unique_ptr<wire::BackupTargetT> MakeTarget(const BackupFlags& f) {
  auto t = std::make_unique<wire::BackupTargetT>();
  t->destination = f.destination;
  t->rsync_user = f.rsync_user;
  t->ssh_key = f.ssh_key;
  t->ssh_port = f.ssh_port;
  t->known_hosts = f.known_hosts;
  t->accept_new_host_key = f.accept_new_host_key;
  return t;
}

// The destination flags, checked here before anything is sent: the agent
// checks them again (and that the files exist on its node).
Status CheckDestinationFlags(const BackupFlags& f) {
  if (!f.ssh_key.empty()) LK_RETURN_IF_ERROR(ValidateSshFilePath(f.ssh_key, "--ssh-key"));
  if (!f.known_hosts.empty()) LK_RETURN_IF_ERROR(ValidateSshFilePath(f.known_hosts, "--known-hosts"));
  if (f.destination.empty()) {
    // They would be ignored: say so instead.
    if (!f.rsync_user.empty() || !f.ssh_key.empty() || f.ssh_port != 0 || !f.known_hosts.empty() ||
        f.accept_new_host_key) {
      return Status::InvalidArgument(
          "--rsync-user, --ssh-key, --ssh-port, --known-hosts and --accept-new-host-key describe a "
          "--destination; give the destination too");
    }
    return Status::OK();
  }
  // {node} stands for a node id: check the rest with a placeholder one.
  return ParseDestination(ExpandNodePlaceholder(f.destination, "node"), f.rsync_user, f.ssh_key, f.ssh_port)
      .status();
}

nlohmann::json BackupResultJson(const BackupResult& r) {
  return {{"snapshot_id", r.snapshot_id},
          {"destination", r.destination},
          {"ok", r.ok},
          {"error", r.error},
          {"error_code", r.error_code == StatusCode::kOk ? std::string() : std::string(StatusCodeName(r.error_code))},
          {"consistent", r.consistent},
          {"bytes_total", r.bytes_total},
          {"bytes_transferred", r.bytes_transferred},
          {"files_total", r.files_total},
          {"duration_ms", r.duration_ms},
          {"genesis", r.genesis},
          {"last_reachable", r.last_reachable},
          {"last_block_id", r.last_block_id},
          {"manifest_digest", r.manifest_digest},
          {"attempts", r.attempts},
          {"scheduled", r.scheduled}};
}

// A table of per-node results of a backup configuration command.
int PrintConfigResults(const GlobalFlags& g, const wire::CommandStatusT& st) {
  bool all_ok = st.finished;
  nlohmann::json j = nlohmann::json::object();
  Table t({"NODE", "RESULT", "MODE", "SCHEDULE", "DESTINATION", "MESSAGE"});
  for (const auto& target : st.targets) {
    all_ok = all_ok && TargetOk(*target);
    std::string mode = "-", sched = "-", dest = "-";
    if (target->result && target->result->detail.type == wire::ResultDetail::BackupStatus) {
      const auto* b = target->result->detail.AsBackupStatus();
      mode = b->mode;
      sched = b->schedule.empty() ? "-" : b->schedule;
      dest = b->destination.empty() ? "-" : b->destination;
    }
    j[target->node_id] = {{"result", TargetResult(*target)},
                          {"mode", mode},
                          {"schedule", sched},
                          {"destination", dest},
                          {"message", TargetMessage(*target)}};
    t.Add({target->node_id, TargetResult(*target), mode, sched, dest, TargetMessage(*target)});
  }
  PrintTableOrJson(g, t, j);
  return all_ok ? kExitOk : kExitFailed;
}

// --bwlimit SIZE as bytes per second; 0 when not given.
Result<uint64_t> BwlimitFlag(const BackupFlags& f) {
  if (f.bwlimit.empty()) return uint64_t{0};
  LK_ASSIGN_OR_RETURN(uint64_t v, ParseByteSize("--bwlimit (bytes per second)", f.bwlimit));
  if (v > kMaxBwlimitBytesPerS) {
    return Status::InvalidArgument("--bwlimit " + f.bwlimit + " is more than 1T (bytes per second); is it a typo?");
  }
  return v;
}

int RunBackupSchedule(const GlobalFlags& g, const TargetFlags& tf, const BackupFlags& f) {
  // Checked here too (usage error, nothing sent); the agent checks again.
  if (auto sched = ParseSchedule(f.frequency, f.time_zone); !sched.ok()) return Fail(sched.status());
  wire::ScheduleBackupT s;
  s.target = MakeTarget(f);
  s.frequency = f.frequency;
  s.time_zone = f.time_zone;
  s.mode = f.mode == "checkpoint" ? wire::BackupMode::Checkpoint : wire::BackupMode::Rsync;
  s.retention = std::make_unique<wire::RetentionT>();
  s.retention->keep_last = f.keep;
  s.retention->max_age_s = f.max_age_days * 86400;
  s.min_free_bytes = f.min_free_mb << 20;
  auto bwlimit = BwlimitFlag(f);
  if (!bwlimit.ok()) return Fail(bwlimit.status());
  s.bwlimit_bytes_per_s = *bwlimit;
  if (s.mode == wire::BackupMode::Rsync && f.destination.empty()) {
    return Fail(Status::InvalidArgument(
        "backup schedule needs --destination (use {node} for one directory per node)"));
  }
  wire::CommandBodyUnion body;
  body.Set(std::move(s));
  auto st = RunCommand(g, ReplicasByDefault(tf), std::move(body), 60);
  if (!st.ok()) return Fail(st.status());
  return PrintConfigResults(g, *st);
}

int RunBackupSimple(const GlobalFlags& g, wire::TargetT target, wire::CommandBodyUnion body) {
  auto st = RunCommand(g, target, std::move(body), 60);
  if (!st.ok()) return Fail(st.status());
  return PrintConfigResults(g, *st);
}

// backup run-now: a live progress line per node until every target is done.
int RunBackupNowCli(const GlobalFlags& g, const TargetFlags& tf, const BackupFlags& f) {
  auto bwlimit = BwlimitFlag(f);
  if (!bwlimit.ok()) return Fail(bwlimit.status());
  auto client = ConnectBroker(g);
  if (!client.ok()) return Fail(client.status());
  wire::RunBackupNowT r;
  r.bwlimit_bytes_per_s = *bwlimit;
  if (!f.destination.empty()) r.target = MakeTarget(f);
  r.reason = "operator";
  wire::CommandBodyUnion body;
  body.Set(std::move(r));
  auto issued = (*client)->Issue(ReplicasByDefault(tf), std::move(body), static_cast<uint32_t>(60'000));
  if (!issued.ok()) return Fail(issued.status());
  const bool tty = ::isatty(1);
  size_t printed = 0;
  auto show = [&](const wire::CommandStatusT& st) {
    if (g.json) return;
    std::vector<std::string> lines;
    for (const auto& t : st.targets) {
      char line[256];
      if (t->result) {
        std::string text = TargetResult(*t);
        if (t->result->detail.type == wire::ResultDetail::BackupResult) {
          const auto* b = t->result->detail.AsBackupResult();
          text = b->ok ? "done " + b->snapshot_id + ", " +
                             HumanBytes(static_cast<double>(b->bytes_transferred)) + " sent of " +
                             HumanBytes(static_cast<double>(b->bytes_total))
                       : "FAILED: " + b->error;
        } else if (!t->result->message.empty()) {
          text += ": " + t->result->message;
        }
        std::snprintf(line, sizeof line, "%-6s %s", t->node_id.c_str(), text.c_str());
      } else if (t->last_progress) {
        const auto& p = *t->last_progress;
        std::snprintf(line, sizeof line, "%-6s %-9s %5.1f%%  %10s  %10s/s  ETA %4.0fs", t->node_id.c_str(),
                      p.phase.c_str(), p.percent, HumanBytes(static_cast<double>(p.bytes_done)).c_str(),
                      HumanBytes(p.rate_bps).c_str(), p.eta_s < 0 ? 0.0 : p.eta_s);
      } else {
        std::snprintf(line, sizeof line, "%-6s %s", t->node_id.c_str(),
                      t->state == wire::TargetState::Acked ? "starting" : "waiting for the agent");
      }
      lines.push_back(line);
    }
    if (tty && printed > 0) std::printf("\x1b[%zuA", printed);  // redraw in place
    for (const auto& l : lines) std::printf(tty ? "\x1b[2K%s\n" : "%s\n", l.c_str());
    printed = lines.size();
    std::fflush(stdout);
  };
  auto st = (*client)->Wait(issued->cmd_id, f.wait_s * 1000, show);
  if (!st.ok()) return Fail(st.status());
  bool all_ok = st->finished;
  nlohmann::json j = nlohmann::json::object();
  for (const auto& t : st->targets) {
    all_ok = all_ok && TargetOk(*t);
    if (t->result && t->result->detail.type == wire::ResultDetail::BackupResult) {
      j[t->node_id] = BackupResultJson(FromWire(*t->result->detail.AsBackupResult()));
    } else {
      j[t->node_id] = {{"ok", false}, {"error", TargetResult(*t) + ": " + TargetMessage(*t)}};
    }
  }
  if (g.json) PrintJson(j);
  return all_ok ? kExitOk : kExitFailed;
}

int RunBackupClient(const GlobalFlags& g, const TargetFlags& tf, const BackupFlags& f,
                    const std::string& name, const std::vector<std::string>& paths) {
  if (auto file = NewClientArchiveFileName(name); !file.ok()) return Fail(file.status());
  wire::ClientBackupT cb;
  cb.archive_name = name;
  cb.paths = paths;
  if (!f.destination.empty()) cb.target = MakeTarget(f);
  wire::CommandBodyUnion body;
  body.Set(std::move(cb));
  wire::TargetT target = ToTarget(tf);
  if (target.all) {
    target.all = false;
    target.role = wire::Role::Client;
  }
  auto st = RunCommand(g, target, std::move(body), f.wait_s);
  if (!st.ok()) return Fail(st.status());
  bool all_ok = st->finished;
  nlohmann::json j = nlohmann::json::object();
  Table t({"NODE", "RESULT", "ARCHIVE", "BYTES", "SHA256", "MESSAGE"});
  for (const auto& target_st : st->targets) {
    all_ok = all_ok && TargetOk(*target_st);
    const auto* r = target_st->result ? target_st->result->detail.AsClientBackupResult() : nullptr;
    if (r != nullptr) {
      j[target_st->node_id] = {{"archive", r->archive},
                               {"sha256", r->sha256},
                               {"bytes", r->bytes},
                               {"entries", r->entries},
                               {"source_bytes", r->source_bytes},
                               {"ok", true}};
      t.Add({target_st->node_id, "Ok", r->archive, HumanBytes(static_cast<double>(r->bytes)),
             r->sha256.substr(0, 16), ""});
    } else {
      j[target_st->node_id] = {{"ok", false},
                               {"error", TargetResult(*target_st) + ": " + TargetMessage(*target_st)}};
      t.Add({target_st->node_id, TargetResult(*target_st), "-", "-", "-", TargetMessage(*target_st)});
    }
  }
  PrintTableOrJson(g, t, j);
  return all_ok ? kExitOk : kExitFailed;
}

int RunBackupStatus(const GlobalFlags& g, const TargetFlags& tf) {
  wire::CommandBodyUnion body;
  body.Set(wire::GetBackupStatusT{});
  auto st = RunCommand(g, ToTarget(tf), std::move(body), 15);
  if (!st.ok()) return Fail(st.status());
  bool all_ok = st->finished;
  const int64_t now = Clock::System()->NowMs();
  nlohmann::json j = nlohmann::json::object();
  Table t(
      {"NODE", "MODE", "SCHEDULE", "NEXT RUN", "LAST SNAPSHOT", "AGE", "BYTES", "CONSISTENT", "LAST RUN"});
  for (const auto& target : st->targets) {
    if (!(TargetOk(*target) && target->result->detail.type == wire::ResultDetail::BackupStatus)) {
      all_ok = false;
      j[target->node_id] = {{"error", TargetResult(*target) + ": " + TargetMessage(*target)}};
      t.Add({target->node_id, "?", "-", "-", "-", "-", "-", "-",
             TargetResult(*target) + ": " + TargetMessage(*target)});
      continue;
    }
    const auto* b = target->result->detail.AsBackupStatus();
    std::string last_id = "-", age = "-", bytes = "-", consistent = "-", last_run = "never";
    nlohmann::json jn = {{"mode", b->mode},
                         {"schedule", b->schedule},
                         {"destination", b->destination},
                         {"next_run_ms", b->next_run_ms},
                         {"next_run", FormatTimeMs(b->next_run_ms)},
                         {"running", b->running},
                         {"places", PlacesJson(b->places)}};
    if (b->last_ok) {
      last_id = b->last_ok->snapshot_id;
      // Snapshot ids are UTC times: the age is now minus that time.
      std::tm tm{};
      strptime(last_id.substr(0, 15).c_str(), "%Y%m%dT%H%M%S", &tm);
      const int64_t taken_ms = static_cast<int64_t>(timegm(&tm)) * 1000;
      age = HumanAge(now - taken_ms);
      bytes = HumanBytes(static_cast<double>(b->last_ok->bytes_total));
      consistent = b->last_ok->consistent ? "yes" : "NO";
      jn["last_snapshot"] = BackupResultJson(FromWire(*b->last_ok));
      jn["last_snapshot_age_s"] = (now - taken_ms) / 1000;
    }
    if (b->last) {
      last_run = b->last->ok ? "ok" : "FAILED: " + b->last->error;
      jn["last_run"] = BackupResultJson(FromWire(*b->last));
    }
    if (b->running) last_run = "running";
    j[target->node_id] = jn;
    t.Add({target->node_id, b->mode, b->schedule.empty() ? "-" : b->schedule,
           b->next_run_ms ? FormatTimeMs(b->next_run_ms) : "-", last_id, age, bytes, consistent, last_run});
  }
  PrintTableOrJson(g, t, j);
  return all_ok ? kExitOk : kExitFailed;
}

// backup list --sets: the snapshot sets of online maintenance runs.
int RunBackupSets(const GlobalFlags& g) {
  auto sets = CollectSnapshotSets(g);
  if (!sets.ok()) return Fail(sets.status());
  Table t({"SET", "BLOCK", "COMPLETE", "SNAPSHOTS", "MISSING"});
  nlohmann::json arr = nlohmann::json::array();
  for (const auto& set : *sets) {
    std::string members, missing;
    for (const auto& [node, id] : set.snapshots) members += (members.empty() ? "" : " ") + node + "=" + id;
    for (const auto& m : set.missing) missing += (missing.empty() ? "" : ", ") + m;
    arr.push_back({{"set", set.run},
                   {"block", set.block},
                   {"complete", set.complete},
                   {"snapshots", set.snapshots},
                   {"missing", set.missing}});
    t.Add({std::to_string(set.run), std::to_string(set.block), set.complete ? "yes" : "NO", members,
           missing.empty() ? "-" : missing});
  }
  if (g.json) {
    PrintJson({{"sets", arr}});
  } else if (sets->empty()) {
    std::printf("no snapshot sets yet: `ledgerkeep maintenance run` makes one per run\n");
  } else {
    t.Print(stdout);
  }
  return kExitOk;
}

int RunBackupList(const GlobalFlags& g, const std::string& node, bool incomplete, bool sets) {
  if (sets) {
    if (!node.empty() || incomplete) return Fail(Status::InvalidArgument("--sets lists every replica; no --node or --incomplete"));
    return RunBackupSets(g);
  }
  if (node.empty()) return Fail(Status::InvalidArgument("backup list needs --node NODE (or --sets)"));
  wire::CommandBodyUnion body;
  body.Set(wire::ListSnapshotsT{});
  auto st = RunOnNode(g, node, std::move(body), 120);
  if (!st.ok()) return Fail(st.status());
  const auto& target = *st->targets[0];
  const auto* l = TargetOk(target) ? target.result->detail.AsSnapshotList() : nullptr;
  if (l == nullptr) return Fail(TargetFailure(node, target));
  nlohmann::json arr = nlohmann::json::array();
  Table t({"SNAPSHOT", "COMPLETE", "CONSISTENT", "GENESIS", "LAST REACHABLE", "LAST BLOCK", "FILES", "BYTES",
           "DESTINATION"});
  std::string latest;  // what restore --snapshot latest takes: the newest complete one anywhere
  for (const auto& s : l->snapshots) {
    if (s->complete && s->snapshot_id > latest) latest = s->snapshot_id;
  }
  for (const auto& s : l->snapshots) {
    if (!s->complete && !incomplete) continue;  // never offered (DESIGN §6): --incomplete shows them
    arr.push_back({{"snapshot_id", s->snapshot_id},
                   {"complete", s->complete},
                   {"consistent", s->consistent},
                   {"genesis", s->genesis},
                   {"last_reachable", s->last_reachable},
                   {"last_block_id", s->last_block_id},
                   {"files", s->files_total},
                   {"bytes", s->bytes_total},
                   {"destination", s->destination},
                   {"latest", s->snapshot_id == latest}});
    t.Add({s->snapshot_id + (s->snapshot_id == latest ? " (latest)" : ""),
           s->complete ? "yes" : "NO (no DONE)", s->complete ? (s->consistent ? "yes" : "NO") : "-",
           std::to_string(s->genesis), std::to_string(s->last_reachable), std::to_string(s->last_block_id),
           std::to_string(s->files_total), HumanBytes(static_cast<double>(s->bytes_total)),
           s->destination == l->destination ? "home" : s->destination});
  }
  if (g.json) {
    PrintJson({{"node", node},
               {"destination", l->destination},
               {"snapshots", arr},
               {"unreachable", l->unreachable}});
  } else {
    std::printf("%s: home %s\n", node.c_str(), l->destination.c_str());
    t.Print(stdout);
    for (const auto& u : l->unreachable) std::printf("NOT LISTED: %s\n", u.c_str());
  }
  return l->unreachable.empty() ? kExitOk : kExitFailed;
}

// One indented line per problem.
void PrintProblems(const SnapshotVerification& v) {
  std::string text = DescribeProblems(v);
  for (size_t at = 0; at < text.size();) {
    const size_t nl = std::min(text.find('\n', at), text.size());
    std::printf("  %s\n", text.substr(at, nl - at).c_str());
    at = nl + 1;
  }
}

// backup verify: runs on the agent that owns the destination.
int RunBackupVerify(const GlobalFlags& g, const std::string& node, const std::string& snapshot, bool all,
                    int64_t wait_s) {
  wire::VerifyBackupT v;
  v.snapshot_id = snapshot;
  v.all = all;
  wire::CommandBodyUnion body;
  body.Set(std::move(v));
  auto st = RunOnNode(g, node, std::move(body), wait_s);
  if (!st.ok()) return Fail(st.status());
  const auto& t = st->targets[0];
  const auto* w = t->result ? t->result->detail.AsBackupVerifyResult() : nullptr;
  if (w == nullptr) {
    return Fail(TargetFailure(node, *t));
  }
  const BackupVerifyResult verified = FromWire(*w);
  const BackupVerifyResult* r = &verified;
  bool all_ok = true;
  nlohmann::json arr = nlohmann::json::array();
  for (const auto& s : r->snapshots) {
    all_ok = all_ok && s.ok;
    arr.push_back(VerificationJson(s));
  }
  if (g.json) {
    PrintJson({{"node", node},
               {"destination", r->destination},
               {"method", r->method},
               {"ok", all_ok},
               {"snapshots", arr}});
    return all_ok ? kExitOk : kExitFailed;
  }
  std::printf("%s: %s (verified %s)\n", node.c_str(), r->destination.c_str(), r->method.c_str());
  Table tab({"SNAPSHOT", "RESULT", "FILES", "BYTES", "BLOCKS VERIFIED", "LAST BLOCK", "TIME"});
  for (const auto& s : r->snapshots) {
    tab.Add({s.snapshot_id, s.ok ? "ok" : "CORRUPT", std::to_string(s.files_checked),
             HumanBytes(static_cast<double>(s.bytes_checked)), std::to_string(s.blocks_verified),
             std::to_string(s.last_block_id), std::to_string(s.duration_ms) + " ms"});
  }
  tab.Print(stdout);
  for (const auto& s : r->snapshots) {
    if (s.ok) continue;
    std::printf("snapshot %s:\n", s.snapshot_id.c_str());
    PrintProblems(s);
  }
  return all_ok ? kExitOk : kExitFailed;
}

// Every value the backup group's subcommands take (one set: argv names one
// subcommand).
struct BackupGroupFlags {
  BackupFlags bf;
  TargetFlags target;
  std::string list_node;
  bool list_incomplete = false;
  bool list_sets = false;
  std::string verify_node, verify_snapshot;
  bool verify_all = false;
  int64_t verify_wait_s = 3600;
  std::string client_name;
  std::vector<std::string> client_paths;
};

// Adds the destination flags to `sub`, bound to `bf`.
void AddDestinationFlags(CLI::App* sub, BackupFlags& bf, bool required) {
  auto* d = sub->add_option("--destination", bf.destination,
                            "/path, user@host:/dir or rsync://host/module/dir; {node} becomes the node id");
  if (required) d->required();
  sub->add_option("--rsync-user", bf.rsync_user, "login on the backup server");
  sub->add_option("--ssh-key", bf.ssh_key,
                  "private key file for SSH destinations: an absolute path on the node (spaces are fine)");
  sub->add_option("--ssh-port", bf.ssh_port, "SSH port (default 22)");
  sub->add_option("--known-hosts", bf.known_hosts,
                  "known_hosts file on the node that holds the backup host's key (host keys are always "
                  "checked; default: the node's [backup] ssh_options, else ssh's own files)");
  sub->add_flag("--accept-new-host-key", bf.accept_new_host_key,
                "trust the backup host's key on first use and record it (in --known-hosts, else the "
                "agent's <data-dir>/backup/work/known_hosts); a changed key still fails");
}

}  // namespace

void RegisterBackupCommands(CLI::App& app, const GlobalFlags& g, CommandTable& commands) {
  auto f = std::make_shared<BackupGroupFlags>();
  BackupFlags& bf = f->bf;
  // A command that takes the destination flags checks them before anything else.
  auto checked = [f](std::function<int()> run) {
    return [f, run = std::move(run)] {
      if (Status s = CheckDestinationFlags(f->bf); !s.ok()) return Fail(s);
      return run();
    };
  };

  auto* backup =
      app.add_subcommand("backup", "intermittent backups of the replicas (and client destinations)");
  backup->require_subcommand(1);
  auto* b_schedule =
      backup->add_subcommand("schedule", "schedule backups on replicas (runs even while the broker is down)");
  AddDestinationFlags(b_schedule, bf, false);
  b_schedule->add_option("--frequency", bf.frequency, "hourly | daily | daily@HH:MM | <N>m")->required();
  b_schedule->add_option("--time-zone", bf.time_zone, "IANA time zone of the schedule")
      ->capture_default_str();
  b_schedule
      ->add_option("--mode", bf.mode,
                   "rsync (snapshots to the destination) or checkpoint (local RocksDB checkpoints)")
      ->check(CLI::IsMember({"rsync", "checkpoint"}))
      ->capture_default_str();
  b_schedule->add_option("--keep", bf.keep, "keep the last N snapshots (0 = all; checkpoint mode default 2)");
  b_schedule->add_option("--max-age-days", bf.max_age_days,
                         "delete snapshots older than this (never the newest)");
  b_schedule
      ->add_option("--min-free-mb", bf.min_free_mb, "checkpoint mode: skip when free disk is below this")
      ->capture_default_str();
  b_schedule->add_option("--bwlimit", bf.bwlimit,
                   "scheduled transfers at most this many bytes per second (e.g. 20M; default: the node's [backup] bwlimit)");
  AddTargetFlags(b_schedule, f->target);
  commands.Add(b_schedule, checked([&g, f] { return RunBackupSchedule(g, f->target, f->bf); }));

  auto* b_unschedule = backup->add_subcommand("unschedule", "stop scheduled backups");
  AddTargetFlags(b_unschedule, f->target);
  commands.Add(b_unschedule, [&g, f] {
    wire::CommandBodyUnion body;
    body.Set(wire::UnscheduleBackupT{});
    return RunBackupSimple(g, ReplicasByDefault(f->target), std::move(body));
  });

  auto* b_run =
      backup->add_subcommand("run-now", "back up now and show live progress per node; waits for all");
  AddDestinationFlags(b_run, bf, false);
  b_run->add_option("--wait-s", bf.wait_s, "give up waiting after this long")->capture_default_str();
  b_run->add_option("--bwlimit", bf.bwlimit,
                   "transfer at most this many bytes per second (e.g. 20M; default: the node's [backup] bwlimit)");
  AddTargetFlags(b_run, f->target);
  commands.Add(b_run, checked([&g, f] { return RunBackupNowCli(g, f->target, f->bf); }));

  auto* b_configure =
      backup->add_subcommand("configure", "set a destination without a schedule (what client nodes use)");
  AddDestinationFlags(b_configure, bf, true);
  AddTargetFlags(b_configure, f->target);
  commands.Add(b_configure, checked([&g, f] {
                 wire::ConfigureBackupT c;
                 c.target = MakeTarget(f->bf);
                 wire::CommandBodyUnion body;
                 body.Set(std::move(c));
                 return RunBackupSimple(g, ToTarget(f->target), std::move(body));
               }));

  auto* b_status = backup->add_subcommand(
      "status", "per node: schedule, next run, last snapshot, its age, bytes, consistent");
  AddTargetFlags(b_status, f->target);
  commands.Add(b_status, [&g, f] { return RunBackupStatus(g, f->target); });

  auto* b_list = backup->add_subcommand(
      "list", "the complete snapshots of one node, with block ids; or (--sets) the snapshot sets of the "
              "maintenance runs");
  b_list->add_option("--node", f->list_node, "the node");
  b_list->add_flag("--sets", f->list_sets,
                   "every maintenance run's snapshot set: its common block, each replica's snapshot, complete "
                   "only when every replica's is");
  b_list->add_flag("--incomplete", f->list_incomplete,
                   "also show snapshots without DONE (crashed runs; never restored)");
  commands.Add(b_list, [&g, f] { return RunBackupList(g, f->list_node, f->list_incomplete, f->list_sets); });

  auto* b_verify = backup->add_subcommand(
      "verify",
      "verify the backup server's copy: DONE, every checksum, the digest chain, block ids; names each bad "
      "file and block");
  b_verify->add_option("--node", f->verify_node, "the replica whose snapshots to verify")->required();
  auto* vs =
      b_verify->add_option("--snapshot", f->verify_snapshot, "a snapshot id or latest (default: latest)");
  b_verify->add_flag("--all", f->verify_all, "every complete snapshot")->excludes(vs);
  b_verify->add_option("--wait-s", f->verify_wait_s, "give up waiting after this long")
      ->capture_default_str();
  commands.Add(b_verify, [&g, f] {
    return RunBackupVerify(g, f->verify_node, f->verify_snapshot, f->verify_all, f->verify_wait_s);
  });

  auto* b_client = backup->add_subcommand(
      "client",
      "client nodes: <NAME>.tar.gz of the configured config files and db directory, plus a .sha256, "
      "shipped to the destination (default: the one set with `backup configure`)");
  b_client
      ->add_option("--name", f->client_name,
                   "archive name (NAME.tar.gz): up to 200 of A-Z a-z 0-9 . _ -, starting with a letter or "
                   "digit; an existing archive is never overwritten")
      ->required();
  b_client->add_option("--path", f->client_paths,
                       "archive these paths instead of the node config's [client] paths");
  AddDestinationFlags(b_client, bf, false);
  b_client->add_option("--wait-s", bf.wait_s, "give up waiting after this long")->capture_default_str();
  AddTargetFlags(b_client, f->target);
  commands.Add(b_client, checked([&g, f] {
                 return RunBackupClient(g, f->target, f->bf, f->client_name, f->client_paths);
               }));
}

}  // namespace ledgerkeep
