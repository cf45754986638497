//===- CudaProgram.h - an artifact's GPU code on a CUDA device --*- C++ -*-===//
//
// Opens the driver, checks that the device is the chip the artifact was
// compiled for, and loads the launcher code (which loads its cubin). A call
// stages the caller's host buffers in device-visible (managed) memory kept
// per entry point and slot, runs the entry point -- every kernel on one
// stream -- and copies the results back. Part 1 of the GPU backend: the
// parameters and optimiser state travel each step; device-resident state
// and CUDA graphs come next (docs/gpu-codegen.md).
//
//===----------------------------------------------------------------------===//
#ifndef AIMC_RUNTIME_CUDA_CUDAPROGRAM_H
#define AIMC_RUNTIME_CUDA_CUDAPROGRAM_H

#include "runtime/Program.h"
#include "runtime/SharedObject.h"
#include "runtime/cuda/GpuRuntimeCalls.h"

#include <map>
#include <memory>

namespace aim::rt {

class CudaProgram : public Program {
public:
  static StatusOr<std::unique_ptr<CudaProgram>> load(const Artifact &artifact,
                                                     int ordinal = 0);
  ~CudaProgram() override;

  StatusOr<PackedEntry> entry(const aimx::EntryPoint &e) const override {
    return code->entry(e);
  }
  Status run(PackedEntry function, const std::vector<BufferRef> &buffers,
             size_t numArguments) override;
  std::string description() const override;

  /// Times every kernel launch with device events from now on (or stops).
  void setProfiling(bool on);
  /// Per kernel name: launches and device time since the last reset.
  std::map<std::string, KernelTime> takeKernelTimes();
  /// The pool of the step's temporaries (managed memory).
  const MemoryPool &temporaries() const { return *gpuCallState().temporaries; }

private:
  CudaProgram() = default;
  std::unique_ptr<CudaDriver> driver;
  std::unique_ptr<SharedObject> code;
  std::string chip;
  /// Device copies of each entry point's buffers, by slot.
  std::map<PackedEntry, std::vector<std::pair<void *, size_t>>> staging;
};

} // namespace aim::rt

#endif // AIMC_RUNTIME_CUDA_CUDAPROGRAM_H
