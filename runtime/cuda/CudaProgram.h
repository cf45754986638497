//===- CudaProgram.h - an artifact's GPU code on a CUDA device --*- C++ -*-===//
//
// Opens the driver, checks that the device is the chip the artifact was
// compiled for, and loads the launcher code (which loads its cubin). A call
// stages the caller's host buffers in device memory kept per entry point and
// slot (managed memory instead when the launcher code reads or writes
// buffers itself: GpuCode.host_touches_memory), runs the entry point -- every
// kernel on one stream -- and copies the results back. Arguments updated in
// place by their results (train_step's parameters and optimiser state) stay on
// the device between calls: copied in on the first call, replaced by their
// results with a device-to-device copy, copied out on fetchArgument.
//
// When the launcher code only launches (GpuCode.host_touches_memory false),
// an entry point's second call is captured into a CUDA graph and every later
// call replays it: one launch instead of hundreds. The host code is the same
// every call (same buffers: staging slots are fixed, and the captured call
// takes its temporaries from an arena placed by the first call's recorded
// lifetimes, or else from the pool, which hands the same blocks back), so
// the graph stands for it.
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
  /// `ordinal` as CudaDriver::open takes it (by default the local rank's).
  static StatusOr<std::unique_ptr<CudaProgram>>
  load(const Artifact &artifact, int ordinal = CudaDriver::kByLocalRank,
       GemmPrecision gemm = GemmPrecision::F32);
  ~CudaProgram() override;

  StatusOr<PackedEntry> entry(const aimx::EntryPoint &e) const override {
    return code->entry(e);
  }
  Status run(PackedEntry function, const std::vector<BufferRef> &buffers,
             size_t numArguments,
             const std::vector<InPlace> &inPlace = {}) override;
  Status fetchArgument(PackedEntry function, size_t slot,
                       BufferRef to) override;
  std::string description() const override;

  /// Times every kernel launch with device events from now on (or stops).
  void setProfiling(bool on);
  /// Per kernel name: launches and device time since the last reset.
  std::map<std::string, KernelTime> takeKernelTimes();
  /// Capture and replay CUDA graphs where the artifact allows (default on;
  /// $AIMC_CUDA_GRAPHS=0 turns them off).
  void setGraphs(bool on) { graphs = on; }
  /// Whether calls of `function` now replay a graph.
  bool replaysGraph(PackedEntry function) const {
    auto it = entries.find(function);
    return graphs && !gpuCallState().profiling && it != entries.end() &&
           it->second.exec;
  }
  /// The pool of the step's temporaries (device memory, or managed memory
  /// when the launcher code touches buffers).
  const MemoryPool &temporaries() const { return *gpuCallState().temporaries; }
  /// The entry points' step arenas (the captured graphs' temporaries): how
  /// many, their bytes, and the sum of their liveness peaks (what a perfect
  /// placement of the same lifetimes would take).
  struct StepArenas {
    size_t count = 0, bytes = 0, peakLive = 0;
  };
  StepArenas stepArenas() const;

private:
  CudaProgram() = default;
  std::unique_ptr<CudaDriver> driver;
  std::unique_ptr<SharedObject> code;
  std::string chip;
  bool bf16GemmOperands = false; // GpuCode.gemm_operands "bf16"
  std::string attention;  // GpuCode.attention: "tiled", "flash"; "" dense
  std::string gemmKernel; // GpuCode.gemm_kernel: "wgmma"; "" cuBLASLt
  int generatedGemms = 0, gemmsWithEpilogue = 0; // of GpuCode.gemms
  GemmPrecision gemm = GemmPrecision::F32;
  /// Per entry point: device copies of its buffers by slot, its calls, and
  /// its graph once captured.
  struct EntryState {
    std::vector<std::pair<void *, size_t>> slots;
    std::vector<bool> resident; // argument slots the device holds current
    int64_t calls = 0;
    CUgraph graph = nullptr;
    CUgraphExec exec = nullptr;
    /// Per slot, the argument slot whose buffer the result shares, or -1.
    std::vector<long> sharedWith;
    /// The temporaries of the first call, placed in one arena (recorded
    /// then), and that arena once the capture allocated it: the graph's
    /// temporaries take the liveness peak, not the pool's blocks by size.
    bool recorded = false;
    ArenaPlan plan;
    CUdeviceptr arena = 0;
  };
  std::map<PackedEntry, EntryState> entries;
  bool graphs = true;
  /// Whether a captured graph uses blocks of the temporaries pool (then
  /// the pool's free blocks must stay: the graph reuses them).
  bool graphsUsePool = false;
  /// Whether buffers live in plain device memory (the launcher code never
  /// touches them) or in managed memory.
  bool deviceMemoryOnly = false;

  /// A buffer for a step: device or managed memory (deviceMemoryOnly).
  CUresult allocate(CUdeviceptr *pointer, size_t bytes);

  /// Drops the entry's captured graph (it holds buffers about to change).
  void forgetGraph(EntryState &entry);

  /// Runs the entry point's launches on the stream: directly, by capturing
  /// them into a graph, or by replaying it.
  Status launch(PackedEntry function, EntryState &entry, void **pointers);
};

} // namespace aim::rt

#endif // AIMC_RUNTIME_CUDA_CUDAPROGRAM_H
