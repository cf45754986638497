//===- Nccl.h - NCCL, loaded with dlopen -------------------------*- C++ -*-===//
//
// The GPU collectives of a per-rank program (NcclCollectives.h) run with
// NCCL. Like the driver and cuBLASLt it is opened with dlopen, only when a
// per-rank program runs on GPUs: aim-run links none of them. nccl.h is used
// for its types and constants only. $AIMC_NCCL names another library
// (tests use a fake that sums over MPI on host memory).
//
//===----------------------------------------------------------------------===//
#ifndef AIMC_RUNTIME_CUDA_NCCL_H
#define AIMC_RUNTIME_CUDA_NCCL_H

#include "common/Status.h"

#include <nccl.h>

#include <memory>
#include <string>

namespace aim::rt {

/// The NCCL calls aim-run makes; X(name) with nccl.h's name for it.
#define AIM_NCCL_FUNCTIONS(X)                                                  \
  X(ncclGetVersion)                                                            \
  X(ncclGetErrorString)                                                        \
  X(ncclGetLastError)                                                          \
  X(ncclGetUniqueId)                                                           \
  X(ncclCommInitRankConfig)                                                    \
  X(ncclCommGetAsyncError)                                                     \
  X(ncclCommAbort)                                                             \
  X(ncclCommDestroy)                                                           \
  X(ncclAllReduce)                                                             \
  X(ncclReduceScatter)                                                         \
  X(ncclAllGather)

class Nccl {
public:
  /// Opens $AIMC_NCCL, or libnccl.so.2 where the loader or CUDA's
  /// directories have it; the error says what was tried.
  static StatusOr<std::unique_ptr<Nccl>> open();

  /// Ok, or an error "<what>: ncclX (<NCCL's last words for `comm`>)".
  Status check(ncclResult_t result, const std::string &what,
               ncclComm_t comm = nullptr) const;
  /// "2.28.9".
  std::string version() const;

#define AIM_NCCL_DECLARE(name) decltype(&::name) name = nullptr;
  AIM_NCCL_FUNCTIONS(AIM_NCCL_DECLARE)
#undef AIM_NCCL_DECLARE

private:
  Nccl() = default;
  void *library = nullptr;
  int code = 0; // NCCL_VERSION_CODE of the library
};

} // namespace aim::rt

#endif // AIMC_RUNTIME_CUDA_NCCL_H
