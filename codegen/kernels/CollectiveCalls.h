//===- CollectiveCalls.h - shard collectives as calls of the runtime -*- C++ -*-===//
//
// A per-rank program's collectives (shard.all_reduce, shard.reduce_scatter,
// shard.all_gather, shard.all_slice) are kernels of their own after
// outlining. markCollectives turns each into a linalg.generic marked with
// what it does, which reads its input (so that bufferization keeps the input
// alive and unwritten until the call); after bufferization,
// callCollectiveFunction replaces each mark with a call of the runtime's
// aimcCollective (common/CollectiveCall.h). The host backend's calls run
// over MPI on host memory; the GPU backend's launcher code calls the
// aimcCuda* functions instead, which aim-run runs with NCCL on device memory
// in stream order.
//
//===----------------------------------------------------------------------===//
#ifndef AIMC_CODEGEN_KERNELS_COLLECTIVECALLS_H
#define AIMC_CODEGEN_KERNELS_COLLECTIVECALLS_H

#include "mlir/IR/BuiltinOps.h"

namespace mlir::aim {

/// Marks every shard collective and erases the grid. Fails on a collective
/// the runtime cannot do (not a sum, not along dimension 0, axes out of
/// order).
LogicalResult markCollectives(ModuleOp module);

/// Whether the module holds marked collectives.
bool hasCollectives(ModuleOp module);
/// Whether `op` is a marked collective (no fusion may touch it).
bool isCollectiveMark(Operation *op);

/// The runtime functions collectives call (common/CollectiveCall.h).
struct CollectiveSymbols {
  const char *call, *start, *wait;
  static CollectiveSymbols host();
  static CollectiveSymbols cuda();
};

/// After bufferization: each marked collective becomes a call of
/// `symbols.call`, or of `symbols.start` where aim-schedule started it
/// ahead ({aim.async}); calls of the host's wait function become calls of
/// `symbols.wait`.
void callCollectiveFunctions(
    ModuleOp module, CollectiveSymbols symbols = CollectiveSymbols::host());

} // namespace mlir::aim

#endif // AIMC_CODEGEN_KERNELS_COLLECTIVECALLS_H
