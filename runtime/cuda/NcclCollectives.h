//===- NcclCollectives.h - a per-rank program's collectives on GPUs -*- C++ -*-===//
//
// The GPU launcher code of a per-rank program (aimc --mesh ... --target
// sm_90a) calls aimcCudaCollective, aimcCudaCollectiveStart and
// aimcCudaCollectivesWait (common/CollectiveCall.h) with device pointers.
// aim-run exports them and runs them here with NCCL:
//
//  - one communicator per grid axis group (the dp group, the tp group, and
//    the whole grid when both are larger than one rank), each from an id
//    that the group's first rank draws and sends over MPI
//    (GridCollectives' groups), in NCCL's non-blocking mode;
//  - a collective of the step runs on aim-run's stream, in order with the
//    kernels, so it is captured into the step's CUDA graph with them;
//  - one started ahead (aim-schedule's buckets) copies its input into a
//    buffer of its own and runs on a second stream that waits for that
//    copy; the wait makes aim-run's stream wait for the second stream, so
//    the rest of the backward overlaps the sums;
//  - the step's end is awaited at most the collective timeout
//    (--collective-timeout): a rank that died or hangs leaves the others'
//    NCCL kernels waiting, and they abort their communicators, say so and
//    stop the job (MPI_Abort) instead of hanging. An asynchronous NCCL error
//    does the same.
//
//===----------------------------------------------------------------------===//
#ifndef AIMC_RUNTIME_CUDA_NCCLCOLLECTIVES_H
#define AIMC_RUNTIME_CUDA_NCCLCOLLECTIVES_H

#include "runtime/GridCollectives.h"
#include "runtime/cuda/CudaDriver.h"
#include "runtime/cuda/Nccl.h"

#include <memory>
#include <string>
#include <vector>

namespace aim::rt {

class NcclCollectives {
public:
  /// Communicators over `grid`'s groups on the device of the loaded
  /// CudaProgram (gpuCallState()); every rank calls it. Installed for the
  /// launcher code's calls, and to await the end of each step.
  static StatusOr<std::unique_ptr<NcclCollectives>>
  create(GridCollectives &grid, MpiComm &world);
  ~NcclCollectives();

  /// "NCCL 2.28.9: communicators of 2 (dp), 2 (tp), 4 (dp x tp) ranks".
  std::string description() const;

  /// What the launcher code's calls do (errors go to gpuCallState().fail).
  void call(int32_t kind, int32_t axes, const float *in, float *out,
            int64_t inCount, int64_t outCount);
  void start(int32_t kind, int32_t axes, const float *in, float *out,
             int64_t inCount, int64_t outCount);
  void waitAll();

  /// Waits until `stream` is done, at most the collective timeout; on the
  /// timeout or an NCCL error it stops the job (see above).
  Status finish(CUstream stream);

private:
  NcclCollectives() = default;
  /// A communicator of one grid axis group.
  struct Group {
    ncclComm_t comm = nullptr;
    int size = 1, index = 0;
    std::string name; // "dp", "tp", "dp x tp"
  };
  /// The group of the grid axes in `axes` (bit 0 dp, bit 1 tp), or null.
  Group *group(int32_t axes);
  /// Issues one collective on `stream`, reading `in`.
  void issue(int32_t kind, int32_t axes, const float *in, float *out,
             int64_t inCount, int64_t outCount, CUstream stream);
  /// Waits while `comm` has an operation in progress (non-blocking mode).
  Status settle(ncclComm_t comm, const std::string &what);
  /// Aborts the communicators, prints `why`, and stops the job.
  [[noreturn]] void stop(const std::string &why);

  std::unique_ptr<Nccl> nccl;
  CudaDriver *driver = nullptr;
  MpiComm *world = nullptr;
  double timeoutSeconds = 600;
  std::vector<Group> groups; // dp, tp, and the whole grid
  int wholeGrid = 0;         // index into groups of axes 3
  CUstream communication = nullptr;
  CUevent ready = nullptr, done = nullptr;
  /// Inputs of collectives started ahead: the k-th start of a step uses
  /// buffer k (the same each step, so a captured graph stays valid).
  std::vector<std::pair<CUdeviceptr, size_t>> staging;
  size_t started = 0;
};

} // namespace aim::rt

#endif // AIMC_RUNTIME_CUDA_NCCLCOLLECTIVES_H
