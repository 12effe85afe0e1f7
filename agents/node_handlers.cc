#include "agents/node_handlers.h"

#include <algorithm>

#include <filesystem>
#include <thread>

#include "agents/ping_handler.h"
#include "backup/ledger_probe.h"
#include "ledger/control_client.h"
#include "ledger/ledger_store.h"

namespace ledgerkeep {
namespace {

constexpr std::chrono::milliseconds kLedgerTimeout{3000};

class NodeManagementHandler final : public CommandHandler {
 public:
  explicit NodeManagementHandler(std::shared_ptr<NodeServices> s) : s_(std::move(s)) {}
  std::string Lane(const wire::Command&) const override { return "node"; }

  CommandOutcome Execute(const CommandContext& ctx) override {
    const auto* m = ctx.command().body_as_NodeManagement();
    std::vector<std::string> names;
    if (m->components()) {
      for (const auto* n : *m->components()) names.push_back(n->str());
    }
    CommandOutcome out;
    if (s_->supervisor->empty() && m->action() != wire::NodeAction::Status) {
      out.status = Status::FailedPrecondition(
          "this agent has no components configured (start it with --node-config)");
      return out;
    }
    if (m->action() == wire::NodeAction::Start) {
      ctx.Note("info", "starting components");
      // A backup of the stopped DB on another lane may take its LOCK between
      // the wait and ledgerd's open (fault suite: a thawed agent gets the
      // rollback's start and its own final sync at once); ledgerd then exits
      // at once. Wait for that copy and start again.
      for (int attempt = 1;; ++attempt) {
        out.status = WaitForTheLedgerDb(ctx);
        if (!out.status.ok()) return out;
        out.status = s_->supervisor->Start(names);
        const std::string& db = s_->config.ledger_db;
        if (out.status.ok() || attempt == 5 || db.empty() || !LedgerDbInUse(db) ||
            LedgerdListening(s_->config.ledger_control)) {
          break;
        }
        ctx.Note("info", "ledgerd could not open its DB: a backup of the stopped DB took it meanwhile; "
                         "starting again once that backup is done");
      }
      // Started means serving: wait for ledgerd's control socket, so the
      // next command (unwedge, block ids) finds it up.
      const std::string& control = s_->config.ledger_control;
      if (out.status.ok() && !control.empty()) {
        const int64_t deadline = MonotonicMs() + 30'000;
        while (!LedgerdListening(control) && MonotonicMs() < deadline) {
          std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
        if (!LedgerdListening(control)) {
          out.status = Status::Timeout("ledgerd started but its control socket " + control +
                                       " does not answer after 30 s; see its log");
        }
      }
    } else if (m->action() == wire::NodeAction::Stop) {
      ctx.Note("info", "stopping components");
      out.status = s_->supervisor->Stop(names);
    } else if (!names.empty()) {
      out.status = s_->supervisor->CheckNames(names);  // status of a component that is not there
    }
    wire::NodeStatusT st;
    for (const auto& c : s_->supervisor->Inspect()) {
      if (!names.empty() && std::find(names.begin(), names.end(), c.name) == names.end()) continue;
      auto cs = std::make_unique<wire::ComponentStateT>();
      cs->name = c.name;
      cs->running = c.running;
      cs->pid = c.pid;
      cs->detail = c.detail;
      st.components.push_back(std::move(cs));
    }
    out.detail.Set(std::move(st));
    return out;
  }

 private:
  // A backup copying the stopped DB holds its LOCK (TryLockLedgerDb): a
  // ledgerd started meanwhile fails to open the DB, and rewrites RocksDB's
  // LOG under the copy on its way. So a start waits for that copy to end,
  // until the command's deadline (fault suite: a frozen agent, thawed after
  // a rollback, finishes the final sync it was running and gets the
  // rollback's start at the same time).
  Status WaitForTheLedgerDb(const CommandContext& ctx) const {
    const std::string& db = s_->config.ledger_db;
    if (db.empty() || LedgerdListening(s_->config.ledger_control) || !LedgerDbInUse(db)) return Status::OK();
    ctx.Note("info",
             "waiting for the backup copying the stopped ledger DB to finish before starting ledgerd");
    const int64_t deadline =
        ctx.command().deadline_ms() > 0 ? ctx.command().deadline_ms() : ctx.clock()->NowMs() + 600'000;
    while (LedgerDbInUse(db)) {
      if (ctx.cancelled()) return Status::Aborted("agent stopping");
      if (ctx.clock()->NowMs() >= deadline) {
        return Status::Busy("the ledger DB " + db +
                            " is still locked (a backup copying it, or a ledgerd this agent did not start); "
                            "not starting ledgerd");
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return Status::OK();
  }

  std::shared_ptr<NodeServices> s_;
};

// Base for handlers that talk to the local ledgerd.
class LedgerHandler : public CommandHandler {
 public:
  explicit LedgerHandler(std::shared_ptr<NodeServices> s) : s_(std::move(s)) {}
  std::string Lane(const wire::Command&) const override { return "ledger"; }

 protected:
  // Nobody listening on the control socket (ledgerd stopped, or crashed and
  // left a stale socket): answer at once instead of waiting for a timeout.
  bool LedgerdMayRun() const { return LedgerdListening(s_->config.ledger_control); }

  // ledgerd's status, or Unavailable at once when nothing listens.
  Result<ledger::LedgerStatus> ProbeStatus(ledger::LedgerControlClient& client) const {
    if (!LedgerdMayRun()) return Status::Unavailable("ledgerd is not running");
    return client.GetStatus();
  }

  ledger::LedgerControlClient Client() const {
    ledger::ControlClientOptions o;
    o.timeout = kLedgerTimeout;
    return ledger::LedgerControlClient(s_->config.ledger_control, o);
  }
  Status NeedLedger() const {
    if (s_->config.ledger_control.empty() || s_->config.ledger_db.empty()) {
      return Status::FailedPrecondition(
          "this agent has no [ledger] db/control in its node config");
    }
    return Status::OK();
  }
  std::shared_ptr<NodeServices> s_;
};

class BlockIdsHandler final : public LedgerHandler {
 public:
  using LedgerHandler::LedgerHandler;
  CommandOutcome Execute(const CommandContext&) override {
    CommandOutcome out;
    out.status = NeedLedger();
    if (!out.status.ok()) return out;
    wire::BlockIdsT ids;
    auto client = Client();
    auto st = ProbeStatus(client);
    if (st.ok()) {
      ids.genesis = st->genesis;
      ids.last_reachable = st->last_reachable;
      ids.last = st->last;
      ids.last_state_transfer = st->last > st->last_reachable ? st->last : 0;
      ids.running = true;
    } else {
      // Stopped (or not answering): read the DB itself, read-only.
      auto store = ledger::LedgerStore::OpenReadOnly(s_->config.ledger_db);
      if (!store.ok()) {
        out.status = store.status().WithContext("ledgerd does not answer (" + st.status().message() +
                                                ") and its DB cannot be read");
        return out;
      }
      auto b = (*store)->GetBlockIds();
      ids.genesis = b.genesis;
      ids.last_reachable = b.last_reachable;
      ids.last_state_transfer = b.last_state_transfer;
      ids.last = b.last;
      ids.running = false;
    }
    out.detail.Set(std::move(ids));
    return out;
  }
};

wire::WedgeStatusT ToWedgeStatus(const ledger::LedgerStatus& st) {
  wire::WedgeStatusT w;
  w.wedged = st.wedged;
  w.stop_point = st.stop_point;
  w.last_reachable = st.last_reachable;
  w.last = st.last;
  w.running = true;
  return w;
}

class WedgeHandler final : public LedgerHandler {
 public:
  using LedgerHandler::LedgerHandler;
  CommandOutcome Execute(const CommandContext& ctx) override {
    CommandOutcome out;
    out.status = NeedLedger();
    if (!out.status.ok()) return out;
    const auto* w = ctx.command().body_as_Wedge();
    auto client = Client();
    if (w->action() == wire::WedgeAction::Stop) {
      auto st = client.Wedge(w->stop_point());
      if (!st.ok()) {
        out.status = st.status().WithContext("wedge at " + std::to_string(w->stop_point()));
        return out;
      }
      out.detail.Set(ToWedgeStatus(*st));
      return out;
    }
    auto st = ProbeStatus(client);
    if (!st.ok()) {
      // Down or unreachable: not wedged, and the result says why.
      wire::WedgeStatusT down;
      down.wedged = false;
      down.running = false;
      out.detail.Set(std::move(down));
      ctx.Note("warn", "wedge status: ledgerd not reachable: " + st.status().message());
      return out;
    }
    out.detail.Set(ToWedgeStatus(*st));
    return out;
  }
};

class UnwedgeHandler final : public LedgerHandler {
 public:
  using LedgerHandler::LedgerHandler;
  CommandOutcome Execute(const CommandContext&) override {
    CommandOutcome out;
    out.status = NeedLedger();
    if (!out.status.ok()) return out;
    auto client = Client();
    out.status = client.Unwedge();
    if (out.status.ok()) {
      auto st = client.GetStatus();
      if (st.ok()) out.detail.Set(ToWedgeStatus(*st));
    }
    return out;
  }
};

class HealthHandler final : public LedgerHandler {
 public:
  using LedgerHandler::LedgerHandler;
  CommandOutcome Execute(const CommandContext&) override {
    CommandOutcome out;
    out.status = NeedLedger();
    if (!out.status.ok()) return out;
    auto client = Client();
    auto st = ProbeStatus(client);
    wire::NodeHealthT h;
    if (st.ok()) {
      h.blocks_per_sec = st->blocks_per_sec;
      h.fast_paths = st->fast_paths;
      h.slow_paths = st->slow_paths;
      h.running = true;
      h.state_transfer_active = st->state_transfer_active;
      h.slow_path_fault = st->slow_path_fault;
      h.lag_blocks = st->lag_blocks;
      h.catch_up_blocks_per_sec = st->catch_up_blocks_per_sec;
      h.catching_up = st->catching_up;
    }
    out.detail.Set(std::move(h));
    return out;
  }
};

}  // namespace

HandlerMap BuildHandlers(wire::Role role, std::shared_ptr<NodeServices> services) {
  HandlerMap m;
  m[wire::CommandBody::Ping] = std::make_shared<PingHandler>();
  m[wire::CommandBody::NodeManagement] = std::make_shared<NodeManagementHandler>(services);
  if (role == wire::Role::Replica) {
    m[wire::CommandBody::GetBlockIds] = std::make_shared<BlockIdsHandler>(services);
    m[wire::CommandBody::Wedge] = std::make_shared<WedgeHandler>(services);
    m[wire::CommandBody::Unwedge] = std::make_shared<UnwedgeHandler>(services);
    m[wire::CommandBody::GetHealth] = std::make_shared<HealthHandler>(services);
  }
  return m;
}

}  // namespace ledgerkeep
