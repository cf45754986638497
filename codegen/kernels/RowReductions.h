//===- RowReductions.h - reductions along rows by whole blocks -*- C++ -*-===//
//
// A linalg op that reduces along the rows of its inputs -- its reduction
// loops last, the innermost reduced dimension the innermost, contiguous
// dimension of every input it reduces: LayerNorm's mean and variance,
// softmax's maximum and denominator, the loss's per-patch sums, each partial
// sum of a split full reduction -- would run as one thread a row, each
// thread reading its own row, a warp's 32 loads 32 rows apart. Here a block
// of T threads takes a row: thread t combines elements t, t + T, t + 2T, ...
// of it (neighbouring threads, neighbouring addresses), then the block
// combines its T partial results (gpu.all_reduce: warp shuffles and shared
// memory) and thread 0 writes the row's result. An op without parallel
// loops (a short sum to a scalar) becomes one block instead of one thread.
//
// The combiner must be associative: a sum, a maximum or a minimum, possibly
// masked (`select(c, acc + x, acc)`: softmax's maximum over visible keys).
// A fill of the output with the combiner's identity right before the op is
// dropped: the row's result is written, not combined into the output.
//
// The ops after it on the same rows join the same kernel: more reductions,
// ops on the row's scalars (the mean from the sum), element-wise ops over
// the row (the normalised row). Thread t takes the same elements in every
// stage, so it reads only what it wrote itself or what the block reduced;
// an op that would read another thread's element ends the kernel. LayerNorm
// forward, its input gradient and softmax each become one kernel.
//
// The host backend runs the same partition when it checks the GPU's loop
// structure on the CPU (HostCompileOptions::gpuTileThreads): each row's T
// partial results, then their combination in thread order.
//
//===----------------------------------------------------------------------===//
#ifndef AIMC_CODEGEN_KERNELS_ROWREDUCTIONS_H
#define AIMC_CODEGEN_KERNELS_ROWREDUCTIONS_H

#include "codegen/kernels/KernelBuilding.h"

#include "mlir/IR/BuiltinOps.h"

#include <cstdint>

namespace mlir::aim {


struct RowReductionOptions {
  /// Reductions of fewer elements a row stay one thread a row.
  int64_t minLength = 32;
  /// Threads a row; 0: rowReductionThreads(length).
  int64_t threads = 0;
};

/// The GPU's block size for rows of `length` elements: whole warps, about
/// four elements a thread, at most 256 threads.
int64_t rowReductionThreads(int64_t length);

/// Rewrites every such linalg.generic on buffers in `module`, with the
/// stages after it; returns how many kernels it made.
int lowerRowReductions(ModuleOp module, KernelTarget target,
                       const RowReductionOptions &options = {});

} // namespace mlir::aim

#endif // AIMC_CODEGEN_KERNELS_ROWREDUCTIONS_H
