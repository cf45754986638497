//===- Program.h - where an artifact's entry points run ---------*- C++ -*-===//
//
// An artifact carries code for the host (HostProgram) and/or for a GPU
// (cuda/CudaProgram). Both are called the same way: a packed entry point
// `f(void **buffers)` with one buffer per argument, then one per result.
// The caller's buffers are in host memory; a device program stages them.
//
//===----------------------------------------------------------------------===//
#ifndef AIMC_RUNTIME_PROGRAM_H
#define AIMC_RUNTIME_PROGRAM_H

#include "runtime/GemmPrecision.h"
#include "runtime/Artifact.h"

#include <string>
#include <vector>

namespace aim::rt {

/// A compiled function: one pointer per argument, then one per result.
using PackedEntry = void (*)(void **buffers);

/// A host buffer bound to one slot of an entry point.
struct BufferRef {
  void *data;
  size_t bytes;
};

class Program {
public:
  virtual ~Program() = default;

  virtual StatusOr<PackedEntry> entry(const aimx::EntryPoint &e) const = 0;

  /// A result that is the next value of an argument (train_step's new
  /// parameters and optimiser state): slot indices into `buffers`.
  struct InPlace {
    size_t result, argument;
    /// The compiled code may write the result into the argument's buffer
    /// (GpuCode.in_place_results): a device gives it that buffer.
    bool sharesBuffer = false;
  };

  /// Runs `function` on `buffers` (the first `numArguments` are read, the
  /// rest are its results, written) and returns when they are written.
  /// Each `inPlace` result becomes its argument's value: on the host it is
  /// copied into the argument's buffer; a device keeps it on the device
  /// (the argument is resident: read from the host buffer on the first call
  /// only, its result not copied back) until fetchArgument.
  virtual Status run(PackedEntry function, const std::vector<BufferRef> &buffers,
                     size_t numArguments,
                     const std::vector<InPlace> &inPlace = {}) = 0;

  /// Writes the current value of argument `slot` of `function` into `to`
  /// (a no-op where arguments live in the caller's buffers).
  virtual Status fetchArgument(PackedEntry function, size_t slot,
                               BufferRef to) {
    return Status::ok();
  }

  /// "host (x86-64-v3)", "cuda:0 NVIDIA H100 80GB HBM3 (sm_90a)", ...
  virtual std::string description() const = 0;
};

/// Where aim-run runs a step.
enum class DeviceKind { Host, Cuda };

/// Loads the artifact's code for `device`; fails clearly when the artifact
/// has none for it or the device cannot be used.
/// `gemm`: how a GPU's GEMMs multiply (the host's are float32).
StatusOr<std::unique_ptr<Program>>
loadProgram(const Artifact &artifact, DeviceKind device,
            GemmPrecision gemm = GemmPrecision::F32);

/// "host" or "cuda" into a DeviceKind.
StatusOr<DeviceKind> parseDeviceKind(const std::string &text);

} // namespace aim::rt

#endif // AIMC_RUNTIME_PROGRAM_H
