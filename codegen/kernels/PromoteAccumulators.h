//===- PromoteAccumulators.h - reduction sums kept in registers -*- C++ -*-===//
//
// linalg's loop lowering reads and writes a reduction's output element in
// every iteration of the reduced loop: `acc[i] = acc[i] + x[i, k]` is a load
// and a store of memory per k. LLVM cannot keep acc[i] in a register, since
// it cannot prove that no input aliases it. On the first H100 runs this was
// most of attention's time (each score a global load and store per element
// of the head dimension, 252 times its roofline estimate).
//
// Where a loop's body loads and stores one location of a buffer that nothing
// else in the loop touches, at indices fixed for the loop, the value becomes
// the loop's iteration argument instead: one load before the loop, one store
// after. Sound for what bufferization produces: an input is never a view of
// the element being accumulated (that would be a read-after-write conflict,
// which one-shot bufferization resolves with a copy).
//
//===----------------------------------------------------------------------===//
#ifndef AIMC_CODEGEN_KERNELS_PROMOTEACCUMULATORS_H
#define AIMC_CODEGEN_KERNELS_PROMOTEACCUMULATORS_H

#include "mlir/IR/BuiltinOps.h"

namespace mlir::aim {

/// Promotes every such accumulator of every scf.for in `module`, inner loops
/// first (so that a sum over two nested loops is promoted out of both).
/// Returns how many were promoted.
int promoteLoopAccumulators(ModuleOp module);

} // namespace mlir::aim

#endif // AIMC_CODEGEN_KERNELS_PROMOTEACCUMULATORS_H
