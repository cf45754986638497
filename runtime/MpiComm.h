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

  /// Ends this rank's part in MPI (at exit).
  ~MpiComm();

private:
  MpiComm() = default;
  void *library = nullptr;
  int rankIndex = 0, worldSize = 1;
  // Open MPI's entry points and predefined handles.
  int (*allreduce)(const void *, void *, int, void *, void *, void *) = nullptr;
  int (*finalize)() = nullptr;
  int (*abort)(void *, int) = nullptr;
  double timeoutSeconds = 600;
  void *commWorld = nullptr, *doubleType = nullptr, *sumOp = nullptr;
};

} // namespace aim::rt

#endif // AIMC_RUNTIME_MPICOMM_H
