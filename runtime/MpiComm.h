//===- MpiComm.h - ranks and sums across processes, MPI by dlopen -*- C++ -*-===//
//
// `mpirun -np N aim-run train ...`: each process learns its rank and the
// world's size from MPI and sums gradients with MPI_Allreduce. aim-run links
// no MPI: Open MPI's libmpi.so.40 (or $AIMC_MPI) is opened with dlopen when
// the launcher (mpirun or srun: LaunchEnvironment.h) says there are several
// ranks, and
// its predefined handles (MPI_COMM_WORLD, MPI_DOUBLE, MPI_SUM) are Open MPI's
// exported objects -- this is Open MPI's ABI, not MPI's API. One process with
// no launcher is the world of one, with no library at all.
//
//===----------------------------------------------------------------------===//
#ifndef AIMC_RUNTIME_MPICOMM_H
#define AIMC_RUNTIME_MPICOMM_H

#include "common/Status.h"

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace aim::rt {

class MpiComm {
public:
  /// The world this process belongs to (initialises MPI once when launched
  /// by mpirun with more than one rank).
  static StatusOr<MpiComm *> world();

  int rank() const { return rankIndex; }
  int size() const { return worldSize; }

  /// Element-wise sum of `values` over every rank, in place. A rank that
  /// died or hangs would block the others forever: when the sum has waited
  /// `timeoutSeconds`, this rank prints `what` and why, and aborts the job.
  Status sum(std::vector<double> &values, const std::string &what);
  void setTimeout(double seconds) { timeoutSeconds = seconds; }
  double timeout() const { return timeoutSeconds; }
  /// The rank mpirun numbered this process (for messages).
  int worldRank() const { return worldRankIndex; }

  /// `bytes` bytes at `data` from the rank `root` of this communicator to
  /// every other (MPI_Bcast), under the same watchdog as sum().
  Status broadcast(void *data, int64_t bytes, int root,
                   const std::string &what);
  /// Stops every rank of the job (MPI_Abort), after an error that leaves the
  /// others waiting; returns only without MPI (one process).
  void abortJob();

  /// The ranks of this communicator with the same `color`, ordered by `key`
  /// (MPI_Comm_split; every rank calls it).
  StatusOr<std::unique_ptr<MpiComm>> split(int color, int key);

  /// Float32 collectives of a per-rank program, each under the same
  /// watchdog as sum(): `out` = the ranks' sum of `in` (count elements);
  /// this rank's block of `outCount` of that sum; every rank's `inCount`
  /// elements in rank order.
  Status allReduce(const float *in, float *out, int64_t count,
                   const std::string &what);
  Status reduceScatter(const float *in, float *out, int64_t outCount,
                       const std::string &what);
  Status allGather(const float *in, float *out, int64_t inCount,
                   const std::string &what);

  /// Ends this rank's part in MPI (at exit).
  ~MpiComm();

private:
  MpiComm() = default;
  /// Runs `collective` (true: it succeeded); a rank that waits longer than
  /// the timeout prints `what` and why, and aborts the job.
  Status guarded(const std::string &what, const std::function<bool()> &collective);
  /// A float32 collective of `ownCount` elements a rank (`totalCount` over
  /// all): a copy on one rank, else `collective(ownCount)` under guarded().
  Status floatCollective(const float *in, float *out, int64_t ownCount,
                         int64_t totalCount, const std::string &what,
                         const std::function<int(int)> &collective);

  void *library = nullptr;
  int rankIndex = 0, worldSize = 1;
  int worldRankIndex = 0; // in messages: the rank mpirun numbered
  // Open MPI's entry points and predefined handles.
  int (*allreduce)(const void *, void *, int, void *, void *, void *) = nullptr;
  int (*reduceScatterBlock)(const void *, void *, int, void *, void *,
                            void *) = nullptr;
  int (*allgather)(const void *, int, void *, void *, int, void *,
                   void *) = nullptr;
  int (*commSplit)(void *, int, int, void **) = nullptr;
  int (*finalize)() = nullptr;
  int (*bcast)(void *, int, void *, int, void *) = nullptr;
  int (*abort)(void *, int) = nullptr;
  double timeoutSeconds = 600;
  void *comm = nullptr, *commWorld = nullptr, *doubleType = nullptr,
       *floatType = nullptr, *byteType = nullptr, *sumOp = nullptr;
  bool ownsMpi = false; // the world finalizes MPI
};

} // namespace aim::rt

#endif // AIMC_RUNTIME_MPICOMM_H
