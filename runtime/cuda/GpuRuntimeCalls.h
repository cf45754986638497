//===- GpuRuntimeCalls.h - what GPU launcher code calls in aim-run -*- C++
//-*-===//
//
// The launcher code of an artifact (codegen/nvptx/GpuProgramCompiler.h)
// calls upstream MLIR's GPU runtime ABI -- mgpuModuleLoad, mgpuLaunchKernel,
// ... --, the generic allocation functions of memref-to-llvm, and
// aimcCudaGemm (a GEMM with its epilogue), aimcCudaSgemm and
// aimcCudaSgemmStridedBatched for GEMMs (aimcCudaGemmBf16StridedBatched
// with bfloat16 A and B) (codegen/kernels/GemmCalls.h), and
// aimcCudaTensorMap for the generated GEMMs' TMA copies
// (codegen/kernels/WgmmaGemm.h). aim-run
// exports them (tools/aim-run/CMakeLists.txt) and implements them here over
// the dlopen'd driver, on one device and one stream. The launcher code has
// no way to return an error: the first one is kept and reported by
// CudaProgram after the call, and later calls do nothing.
//
//===----------------------------------------------------------------------===//
#ifndef AIMC_RUNTIME_CUDA_GPURUNTIMECALLS_H
#define AIMC_RUNTIME_CUDA_GPURUNTIMECALLS_H

#include "runtime/cuda/CublasLt.h"
#include "runtime/cuda/CudaDriver.h"
#include "runtime/cuda/MemoryPool.h"

#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>

namespace aim::rt {

/// Time a kernel took on the device (events around each launch).
struct KernelTime {
  int64_t launches = 0;
  double milliseconds = 0;
};

/// The device's launch limits (cuDeviceGetAttribute), read at load.
struct DeviceLimits {
  int64_t block[3] = {1024, 1024, 64};
  int64_t grid[3] = {2147483647, 65535, 65535};
  int64_t threadsPerBlock = 1024;
};

/// A kernel launch's grid and block.
struct LaunchShape {
  int64_t grid[3];
  int64_t block[3];
};

/// What the calls act on. One per process: aim-run drives one device.
struct GpuCallState {
  CudaDriver *driver = nullptr;
  CUstream stream = nullptr;
  std::unique_ptr<MemoryPool> temporaries; // CudaProgram::allocate
  std::unique_ptr<CublasLt> gemms;
  std::string firstError;
  std::set<void *> hostFallbacks; // temporaries handed out after an error
  std::map<std::pair<CUmodule, std::string>, CUfunction> functions;
  std::map<CUfunction, std::string> kernelNames;
  std::set<CUfunction> parametersChecked; // against the cubin, once each
  /// Dynamic shared memory each kernel may take (cuFuncSetAttribute), where
  /// raised past the default 48 KB.
  std::map<CUfunction, int32_t> dynamicSharedLimit;
  /// Wait for each launch (the launcher code reads buffers between them,
  /// or kernels are being timed); otherwise only at the end of a call.
  bool hostTouchesMemory = true;
  DeviceLimits limits;
  bool profiling = false;
  CUevent start = nullptr, stop = nullptr;
  CUfunction timed = nullptr; // launched between start and stop
  std::map<std::string, KernelTime> kernelTimes;
  /// Waits for the step's stream at its end; unset: cuStreamSynchronize.
  /// (A per-rank program's NCCL collectives bound the wait:
  /// NcclCollectives::finish.)
  std::function<Status(CUstream)> awaitStream;

  /// Keeps the first error.
  void fail(const std::string &message) {
    if (firstError.empty())
      firstError = message;
  }
  bool ok() const { return driver && firstError.empty(); }
};

GpuCallState &gpuCallState();

/// "grid 1x2x3, block 128x1x1".
std::string describe(const LaunchShape &launch);
/// Why the launch exceeds the device's limits, or "" if it does not.
std::string outsideDeviceLimits(const LaunchShape &launch);
/// How many parameters the cubin declares for `f` (cuFuncGetParamInfo),
/// or size_t(-1) if the driver cannot tell.
size_t declaredParameters(CUfunction f);
/// What the driver says of a kernel whose launch failed: its limits, its
/// parameter count against the launcher's, the current context.
std::string explainLaunchFailure(CUfunction f, int32_t sharedBytes,
                                 void **params, size_t paramCount);

} // namespace aim::rt

#endif // AIMC_RUNTIME_CUDA_GPURUNTIMECALLS_H
