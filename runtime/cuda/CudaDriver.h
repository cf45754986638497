//===- CudaDriver.h - the CUDA driver, loaded with dlopen -------*- C++ -*-===//
//
// aim-run runs where no GPU is (CI, laptops), so it never links libcuda: the
// driver is opened with dlopen when --device cuda asks for it, and every
// entry point is resolved through cuGetProcAddress for the ABI of the
// headers aim-run was built with (or the driver's, if older). cuda.h is used
// for its types and constants only. $AIMC_CUDA_DRIVER names another library
// (tests use it to check the errors).
//
//===----------------------------------------------------------------------===//
#ifndef AIMC_RUNTIME_CUDA_CUDADRIVER_H
#define AIMC_RUNTIME_CUDA_CUDADRIVER_H

#include "common/Status.h"

#include <cuda.h>

#include <memory>
#include <string>

namespace aim::rt {

/// The driver calls aim-run makes; X(name) with cuda.h's name for it.
#define AIM_CUDA_DRIVER_FUNCTIONS(X)                                           \
  X(cuInit)                                                                    \
  X(cuDriverGetVersion)                                                        \
  X(cuGetErrorName)                                                            \
  X(cuGetErrorString)                                                          \
  X(cuDeviceGetCount)                                                          \
  X(cuDeviceGet)                                                               \
  X(cuDeviceGetName)                                                           \
  X(cuDeviceGetAttribute)                                                      \
  X(cuDevicePrimaryCtxRetain)                                                  \
  X(cuDevicePrimaryCtxRelease)                                                 \
  X(cuCtxSetCurrent)                                                           \
  X(cuCtxGetCurrent)                                                           \
  X(cuCtxSynchronize)                                                          \
  X(cuMemGetInfo)                                                              \
  X(cuMemAlloc)                                                                \
  X(cuMemAllocManaged)                                                         \
  X(cuMemFree)                                                                 \
  X(cuMemcpy)                                                                  \
  X(cuModuleLoadData)                                                          \
  X(cuModuleUnload)                                                            \
  X(cuModuleGetFunction)                                                       \
  X(cuLaunchKernel)                                                            \
  X(cuFuncGetAttribute)                                                        \
  X(cuFuncGetParamInfo)                                                        \
  X(cuFuncSetAttribute)                                                        \
  X(cuTensorMapEncodeTiled)                                                    \
  X(cuStreamCreate)                                                            \
  X(cuStreamDestroy)                                                           \
  X(cuStreamSynchronize)                                                       \
  X(cuStreamQuery)                                                             \
  X(cuStreamWaitEvent)                                                         \
  X(cuMemcpyDtoDAsync)                                                         \
  X(cuEventCreate)                                                             \
  X(cuEventDestroy)                                                            \
  X(cuEventRecord)                                                             \
  X(cuEventSynchronize)                                                        \
  X(cuEventElapsedTime)                                                        \
  X(cuStreamBeginCapture)                                                      \
  X(cuStreamEndCapture)                                                        \
  X(cuGraphInstantiateWithFlags)                                               \
  X(cuGraphLaunch)                                                             \
  X(cuGraphDestroy)                                                            \
  X(cuGraphExecDestroy)

class CudaDriver {
public:
  /// Opens the driver and makes device `ordinal`'s primary context current
  /// on this thread; kByLocalRank: the device of this process's rank on its
  /// node (LaunchEnvironment.h) among the node's devices, so that ranks
  /// started together use one GPU each. Errors say what is missing (no
  /// library, no device, ...).
  static constexpr int kByLocalRank = -1;
  static StatusOr<std::unique_ptr<CudaDriver>> open(int ordinal = kByLocalRank);
  ~CudaDriver();
  CudaDriver(const CudaDriver &) = delete;
  CudaDriver &operator=(const CudaDriver &) = delete;

  /// Ok, or an error "<what>: CUDA_ERROR_X (<the driver's words>)".
  Status check(CUresult result, const std::string &what) const;

  /// "sm_90a"-style name of the device's architecture: the "a" variant
  /// for compute capability 9.0 (what aimc compiles for), plain otherwise.
  std::string chip() const;
  const std::string &name() const { return deviceName; }
  int ordinal() const { return deviceOrdinal; }
  CUcontext context() const { return primaryContext; }
  /// cuDeviceGetAttribute of this device, or `fallback` if it fails.
  int attribute(CUdevice_attribute which, int fallback) const;

#define AIM_CUDA_DECLARE(name) decltype(&::name) name = nullptr;
  AIM_CUDA_DRIVER_FUNCTIONS(AIM_CUDA_DECLARE)
#undef AIM_CUDA_DECLARE

private:
  CudaDriver() = default;
  void *library = nullptr;
  CUdevice device = 0;
  CUcontext primaryContext = nullptr;
  int deviceOrdinal = 0, major = 0, minor = 0;
  std::string deviceName;
};

} // namespace aim::rt

#endif // AIMC_RUNTIME_CUDA_CUDADRIVER_H
