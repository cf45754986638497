//===- ElementwiseKernels.h - element-wise ops, several elements a thread -*- C++ -*-===//
//
// An element-wise op tiled as the other linalg ops are (a thread an element,
// blocks of 128 along the innermost dimension) gives each thread one load
// of each input in flight, and a grid of hundreds of thousands of short
// blocks for aim-600m's activations: its GELU ran at 2.2 times its memory
// roofline on an H100. Here an op whose outputs are written at a
// permutation of the iteration's indices (each element once: identity maps,
// or a layout change such as attention's batch-major copies) and whose
// inputs are read at projections of them (broadcasts: a bias) becomes a
// kernel of blocks of T threads over chunks of T K consecutive iterations:
// thread t loads its K iterations t, t + T, ... of every input first
// (coalesced along the innermost loop, K independent loads in flight), then
// computes and stores each. Where every output and every input that varies
// along the innermost loop has that loop as its innermost, contiguous
// dimension with aligned rows (float32 or bfloat16), the iterations go four
// at a time (vector<4xf32>: ld.global.v4; vector<4xbf16>: 8 bytes), K
// vectors a thread; inputs that do not vary along it are one scalar for the
// vector. Loads go before any store: an output shares no buffer with an
// input except that very input at the same element, so no load of one
// iteration can depend on the store of another.
//
// The host backend runs the same partition when it checks the GPU's loop
// structure on the CPU (HostCompileOptions::gpuTileThreads).
//
//===----------------------------------------------------------------------===//
#ifndef AIMC_CODEGEN_KERNELS_ELEMENTWISEKERNELS_H
#define AIMC_CODEGEN_KERNELS_ELEMENTWISEKERNELS_H

#include "codegen/kernels/KernelBuilding.h"

#include "mlir/IR/BuiltinOps.h"

#include <cstdint>

namespace mlir::aim {

struct ElementwiseOptions {
  int64_t threads = 256;         // T
  int64_t elementsPerThread = 4; // K, as scalars
  /// Where every operand allows it (float32, the innermost dimension and
  /// every buffer's offset and outer strides multiples of it): vectors of
  /// this many elements, 16-byte loads and stores for 4; K vectors a thread.
  int64_t vectorWidth = 4;
  int64_t vectorsPerThread = 2;
  /// Smaller ops keep a thread an element (one short block either way).
  int64_t minElements = 4096;
};

/// Rewrites every such linalg.generic on buffers in `module`; returns how
/// many kernels it made.
int lowerElementwiseOps(ModuleOp module, KernelTarget target,
                        const ElementwiseOptions &options = {});

} // namespace mlir::aim

#endif // AIMC_CODEGEN_KERNELS_ELEMENTWISEKERNELS_H
