// UnwedgeRetrier: the broker's "needs unwedge" list (issue 13, point 6).
//
// A replica whose unwedge failed — ledgerd or its agent frozen during a
// maintenance rollback, the node lost, a timeout — stays wedged at its stop
// point for good: ledgerd persists the stop point (a crash right after a
// wedge must not lose it), so even a node stop/start leaves it wedged. The
// workflows put every such replica on this list (WorkflowContext::
// NeedsUnwedge); a thread of its own sends each one an Unwedge again, with
// exponential backoff while the node is alive (Options), until one succeeds
// (ledgerd says no stop point is left). A node that is not alive is not
// tried; it is tried as soon as it is back. Every attempt that fails and the
// final success are events (kind "wedge", the node's id).
//
// A replica leaves the list when an unwedge succeeds, also one a workflow
// sent, or when a new wedge is sent to it (the wedge's own unwedge answers
// for it then). No attempt runs while a workflow runs: Pause() returns once
// the attempt in flight has ended, so a late unwedge never lands in the
// middle of a new wedge.
//
// Persisted in the broker's store, column family `cf`, under keys
// "needs-unwedge/<node>" (JSON: reason, run id, since, attempts, last
// error); a restarted broker resumes the retries at once.
// Thread-safety: every method may be called from any thread.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "client/broker_client.h"
#include "common/clock.h"
#include "common/kv_store.h"

namespace ledgerkeep {

struct UnwedgeRetryOptions {
  // The delay after the n-th failed attempt: base_ms * 2^(n-1), at most
  // max_ms. Defaults: 1 s, 30 s.
  int64_t base_ms = 1'000;
  int64_t max_ms = 30'000;
  // How often the list is looked at for due entries. Default: 200 ms.
  int64_t poll_ms = 200;
};

class UnwedgeRetrier {
 public:
  using Options = UnwedgeRetryOptions;

  struct Entry {
    std::string node;
    std::string reason;                // why it is on the list (the failed unwedge)
    uint64_t run_id = 0;               // the workflow that put it there
    int64_t since_ms = 0;              // wall clock
    uint32_t attempts = 0;             // retries made so far
    std::string last_error;            // of the last failed retry
    int64_t next_attempt_mono_ms = 0;  // not persisted: due at once after a restart
  };

  UnwedgeRetrier(KvStore* store, int cf, const Clock* clock, Options options = {});
  ~UnwedgeRetrier();  // Stop()

  // Reads the persisted list.
  Status Load();
  // Starts the retry thread; it reaches the broker with `client` (the
  // broker's internal endpoint). Call once the broker serves.
  void Start(ClientOptions client);
  // Stops and joins the thread (an attempt in flight is abandoned; it is
  // made again after the next start).
  void Stop();

  // Puts `node` on the list (a node already on it keeps its attempts and
  // gets the new reason). Returns whether it was not on the list before.
  Result<bool> Add(const std::string& node, const std::string& reason, uint64_t run_id);
  // Takes `node` off the list. Returns whether it was on it.
  Result<bool> Remove(const std::string& node);
  std::vector<Entry> List() const;

  // While paused (by as many Resume() as Pause() calls) no attempt starts;
  // Pause() returns once the attempt in flight, if any, has ended.
  void Pause();
  void Resume();

 private:
  void Run(ClientOptions client_options);
  void Attempt(BrokerClient& client, const std::vector<std::string>& due);
  Status Persist(const Entry& e);
  int64_t DelayAfter(uint32_t attempts) const;

  KvStore* store_;
  int cf_;
  const Clock* clock_;
  Options opt_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, Entry> entries_;  // guarded by mu_
  int paused_ = 0;                        // guarded by mu_
  bool in_flight_ = false;                // guarded by mu_
  bool stopping_ = false;                 // guarded by mu_
  std::thread thread_;
};

}  // namespace ledgerkeep
