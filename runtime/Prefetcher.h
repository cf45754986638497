//===- Prefetcher.h - batches prepared ahead on data threads --------------===//
//
// The data half of aim-run's threading policy: `threads` data threads take
// step numbers in order, prepare those batches (decode, augment, normalise)
// and keep at most `depth` finished ones ahead of the trainer, who receives
// them in step order whatever thread finished first. The batch of a step
// depends only on the step (Batch.h), so the thread count changes speed,
// never content.
//
//===----------------------------------------------------------------------===//
#ifndef AIMC_RUNTIME_PREFETCHER_H
#define AIMC_RUNTIME_PREFETCHER_H

#include "runtime/Batch.h"

#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

namespace aim::rt {

class Prefetcher {
public:
  using MakeBatch = std::function<StatusOr<Batch>(int64_t step)>;
  /// `make` must be safe to call from several threads at once.
  Prefetcher(MakeBatch make, int64_t firstStep, int depth, int threads);
  ~Prefetcher();
  Prefetcher(const Prefetcher &) = delete;
  Prefetcher &operator=(const Prefetcher &) = delete;

  /// The next step's batch (or the error preparing it); blocks until ready.
  StatusOr<Batch> next();

private:
  void work();

  MakeBatch make;
  const int depth;
  std::mutex mutex;
  std::condition_variable changed;
  std::map<int64_t, StatusOr<Batch>> finished;
  int64_t nextToClaim, nextToHand;
  bool stopping = false;
  std::vector<std::thread> workers;
};

} // namespace aim::rt

#endif // AIMC_RUNTIME_PREFETCHER_H
