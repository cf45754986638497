//===- GridCollectives.h - the collectives of a per-rank program -*- C++ -*-===//
//
// An artifact compiled with `aimc --mesh dp=D,tp=T` runs on D x T MPI ranks,
// rank r at (r / T, r % T) of the grid. Its host code calls
// aimcCollective(kind, axes, in, out, inCount, outCount)
// (common/CollectiveCall.h) for each shard collective; aim-run exports that
// symbol and routes each call here, to MPI over the ranks of the grid axes
// named: the dp group (the ranks with this tp index), the tp group, or the
// world. Collectives that aim-schedule starts ahead
// (aimcCollectiveStart ... aimcCollectivesWait) run on a communication
// thread while the step computes; so do the blocking ones, in order.
//
//===----------------------------------------------------------------------===//
#ifndef AIMC_RUNTIME_GRIDCOLLECTIVES_H
#define AIMC_RUNTIME_GRIDCOLLECTIVES_H

#include "common/Sharding.h"
#include "runtime/MpiComm.h"

#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

namespace aim::rt {

class GridCollectives {
public:
  /// The groups of a dp x tp grid over `world` (of dp x tp ranks).
  static StatusOr<std::unique_ptr<GridCollectives>>
  create(MpiComm &world, int64_t dp, int64_t tp);

  const GridPosition &position() const { return at; }
  /// The ranks with this rank's tp index, by dp index.
  MpiComm &dataParallelGroup() const { return *dataParallel; }
  /// The ranks with this rank's dp index, by tp index.
  MpiComm &tensorParallelGroup() const { return *tensorParallel; }

  /// One collective of a per-rank program (common/CollectiveCall.h), done
  /// when it returns.
  Status call(int32_t kind, int32_t axes, const float *in, float *out,
              int64_t inCount, int64_t outCount);
  /// One started ahead (aim-schedule): `in` is copied, `out` written by the
  /// time waitAll() returns.
  void start(int32_t kind, int32_t axes, const float *in, float *out,
             int64_t inCount, int64_t outCount);
  /// Waits for every collective started so far; the first error if any.
  Status waitAll();

  /// The grid aimcCollective calls go to; null: none (a call is an error).
  static void install(GridCollectives *grid);

  ~GridCollectives();

private:
  GridCollectives() = default;
  /// A collective for the communication thread.
  struct Task {
    int32_t kind, axes;
    std::vector<float> copy; // of `in`, for one started ahead
    const float *in;
    float *out;
    int64_t inCount, outCount;
  };
  /// Runs `task` with MPI (on the communication thread).
  Status run(const Task &task);
  void communicate(); // the communication thread's loop
  Status enqueue(Task task, bool wait);
  /// The communicator of the grid axes in `axes` (bit 0 dp, bit 1 tp) and
  /// this rank's index in it.
  std::pair<MpiComm *, int64_t> group(int32_t axes);

  MpiComm *world = nullptr;
  std::unique_ptr<MpiComm> dataParallel, tensorParallel;
  GridPosition at;
  // Every collective runs on one communication thread, in program order (the
  // same on every rank); MPI is called by one thread at a time.
  std::thread thread;
  std::mutex mutex;
  std::condition_variable changed;
  std::deque<Task> queue;
  int64_t issued = 0, finished = 0;
  Status firstError = Status::ok();
  bool stopping = false;
};

} // namespace aim::rt

#endif // AIMC_RUNTIME_GRIDCOLLECTIVES_H
