//===- GpuLoopMapping.h - parallel loops onto blocks and threads -*- C++ -*-===//
//
// Which hardware index runs each dimension of the tiled parallel loops
// (tileInnermostParallelLoops). The outermost loop of a nest runs on
// blocks: its dimensions 0, 1, 2 on grid x, y, z (the outermost dimensions
// are the largest, and x has the largest cap), any further one sequentially.
// The loop inside it runs on threads: its last (contiguous) dimension on
// thread x, the others (one iteration each) sequentially. Anything deeper is
// sequential. Upstream's gpu-map-parallel-loops maps dimension i to index i
// at both levels, which put the 128 threads of a 3-d tile on block.z (CUDA
// caps it at 64): launches failed on a real H100.
//
//===----------------------------------------------------------------------===//
#ifndef AIMC_CODEGEN_KERNELS_GPULOOPMAPPING_H
#define AIMC_CODEGEN_KERNELS_GPULOOPMAPPING_H

#include "mlir/IR/BuiltinOps.h"

namespace mlir::aim {

/// Sets the `mapping` attribute of every scf.parallel in `module`, for
/// convert-parallel-loops-to-gpu.
void mapParallelLoopsToGpu(ModuleOp module);

} // namespace mlir::aim

#endif // AIMC_CODEGEN_KERNELS_GPULOOPMAPPING_H
