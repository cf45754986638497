//===- CollectiveCalls.h - shard collectives as calls of the runtime -*- C++ -*-===//
//
// A per-rank program's collectives (shard.all_reduce, shard.reduce_scatter,
// shard.all_gather, shard.all_slice) are kernels of their own after
// outlining. markCollectives turns each into a linalg.generic marked with
// what it does, which reads its input (so that bufferization keeps the input
// alive and unwritten until the call); after bufferization,
// callCollectiveFunction replaces each mark with a call of the runtime's
// aimcCollective (common/CollectiveCall.h). The host backend makes the
// calls; the GPU backend has no collectives yet (NCCL) and refuses them.
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

/// After bufferization: each marked collective becomes a call of
/// aimcCollective, or of aimcCollectiveStart where aim-schedule started it
/// ahead ({aim.async}; common/CollectiveCall.h).
void callCollectiveFunctions(ModuleOp module);

} // namespace mlir::aim

#endif // AIMC_CODEGEN_KERNELS_COLLECTIVECALLS_H
