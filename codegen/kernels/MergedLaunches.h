//===- MergedLaunches.h - independent launches, one kernel ------*- C++ -*-===//
//
// After the row kernels and the multi-tensor kernels, many of a step's
// launches are still small and independent of one another: the gradient
// norm's sum of squares, a few kernels for each of aim-600m's 458
// parameters (1374 launches, 10 ms of a 330 ms step on an H100, most of it
// launch latency); the fills and partial sums of LayerNorm's weight and bias
// gradients. Launches that do not depend on one another become one launch:
// block b of the merged grid runs the launch whose range of blocks holds b,
// as that launch's block b - offset (its own grid and block ids recovered by
// delinearising), so each kernel's work and indexing are unchanged.
//
// Within a run of launches between two other operations (calls, copies;
// allocations, deallocations and pure ops do not end a run), each launch
// gets a level: one more than the highest level of the earlier launches it
// conflicts with (reads what one writes, writes what one reads or writes).
// The launches of a level are independent and become one kernel, placed at
// the end of the run in level order; the run's deallocations move after
// them.
//
// The merged block has the largest block's threads; a launch with fewer
// threads runs in the first ones. A launch that synchronises its block
// (gpu.all_reduce, gpu.barrier) joins only a kernel of exactly its block
// size, so that every thread of the block takes part. A kernel takes at most
// maxCaptured captured values (its parameters must fit PTX ISA 8.1's 32 KB).
//
//===----------------------------------------------------------------------===//
#ifndef AIMC_CODEGEN_KERNELS_MERGEDLAUNCHES_H
#define AIMC_CODEGEN_KERNELS_MERGEDLAUNCHES_H

#include "mlir/IR/BuiltinOps.h"

namespace mlir::aim {

struct MergedLaunchOptions {
  /// Captured values (kernel parameters) a merged kernel may take.
  int64_t maxCaptured = 3800;
  /// Launches a merged kernel may take (code size, ptxas time).
  int64_t maxLaunches = 512;
};

/// Merges independent gpu.launch ops in every function of `module`; returns
/// how many launches were removed.
int mergeIndependentLaunches(ModuleOp module,
                             const MergedLaunchOptions &options = {});

} // namespace mlir::aim

#endif // AIMC_CODEGEN_KERNELS_MERGEDLAUNCHES_H
