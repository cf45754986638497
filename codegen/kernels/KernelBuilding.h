//===- KernelBuilding.h - building blocks of hand-built kernels -*- C++ -*-===//
//
// What the kernels built directly as gpu.launch ops (RowReductions.h,
// MultiTensorKernels.h) share: linalg ops' bodies applied to one element of
// their iteration space, with their operands loaded at the indices their
// maps give.
//
//===----------------------------------------------------------------------===//
#ifndef AIMC_CODEGEN_KERNELS_KERNELBUILDING_H
#define AIMC_CODEGEN_KERNELS_KERNELBUILDING_H

#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/IR/Builders.h"

#include "llvm/ADT/DenseMap.h"

namespace mlir::aim {

/// Where a hand-built kernel goes.
enum class KernelTarget {
  /// A gpu.launch (block and thread ids, gpu.all_reduce across a block).
  GpuLaunch,
  /// The same partition of the work as loops on the CPU, the threads of a
  /// block one after another: checks the GPU's indexing on the host.
  HostEmulation,
};

/// The buffer a view (subview, reshape, cast) reads through.
Value rootBuffer(Value v);

int64_t product(ArrayRef<int64_t> shape);

Value indexConstant(OpBuilder &b, Location loc, int64_t v);

/// The indices of `shape` (row-major) whose linear index is `linear`.
SmallVector<Value> delinearize(OpBuilder &b, Location loc, Value linear,
                               ArrayRef<int64_t> shape);

/// `map` applied to the loop indices: one affine.apply a result.
SmallVector<Value> mapIndices(OpBuilder &b, Location loc, AffineMap map,
                              ValueRange loopIndices);

/// Scalars already in registers, by the buffer they are stored in (a row
/// kernel's row results): read from there, not loaded.
using KnownValues = llvm::DenseMap<Value, Value>;

/// `op`'s body for one element: inputs loaded at the loop indices (or taken
/// from `known`), the accumulators in place of the outputs (none for ops
/// that do not read their outputs); returns the yielded values.
SmallVector<Value> applyBody(OpBuilder &b, Location loc, linalg::GenericOp op,
                             ValueRange loopIndices, ValueRange accumulators,
                             const KnownValues &known = KnownValues());

/// Whether `type` can be read `width` elements at a time, aligned to the
/// vector's size: float32 or bfloat16, innermost stride 1, a static offset
/// and outer strides that are multiples of `width` (buffers themselves
/// start 256-byte aligned: cuMemAlloc, the temporaries pool and arenas).
bool alignedForVectors(MemRefType type, int64_t width);

/// `op`'s body for the `width` consecutive elements along the innermost
/// loop that start at `loopIndices` (lane j at innermost index + j), its
/// inputs taken from `vectors` (lane j of an input's vector) and `known`
/// (the same scalar for every lane); each output's lanes stored as one
/// vector, aligned to its size, where the output's map puts `loopIndices`
/// (the innermost loop its innermost dimension): the 16-byte accesses of
/// the element-wise and multi-tensor kernels.
void applyBodyToVectors(OpBuilder &b, Location loc, linalg::GenericOp op,
                        ValueRange loopIndices,
                        const llvm::DenseMap<Value, Value> &vectors,
                        const KnownValues &known, int64_t width);

/// Whether `op`'s body reads any of its outputs' current values.
bool readsItsOutputs(linalg::GenericOp op);

/// The buffers `op`'s body reads besides its operands (loads of buffers
/// defined outside it: the prefix lengths in attention's masks, a gather's
/// source); none if it writes memory itself (then `writesInBody` is set).
SmallVector<Value> buffersReadInBody(linalg::GenericOp op, bool &writesInBody);

} // namespace mlir::aim

#endif // AIMC_CODEGEN_KERNELS_KERNELBUILDING_H
