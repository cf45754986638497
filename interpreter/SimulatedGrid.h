//===- SimulatedGrid.h - every rank of a per-rank program at once -*- C++ -*-===//
//
// aim-shard's per-rank program, run by the interpreter for every rank of its
// grid together: one thread per rank, each collective a rendezvous of its
// group in shared memory. The oracle of the sharding: the ranks' results,
// put back together, must be the unsharded program's (test/unit/ShardTest).
//
//===----------------------------------------------------------------------===//
#ifndef AIMC_INTERPRETER_SIMULATEDGRID_H
#define AIMC_INTERPRETER_SIMULATEDGRID_H

#include "interpreter/Interpreter.h"

namespace aim::interp {

/// Runs `function` on each rank of a grid of `gridShape` (rank r has the
/// row-major multi-index of r) with that rank's arguments; returns each
/// rank's results. A rank that fails stops the others; the error names it.
llvm::Expected<std::vector<std::vector<HostTensor>>>
runOnGrid(mlir::func::FuncOp function, llvm::ArrayRef<int64_t> gridShape,
          const std::vector<std::vector<HostTensor>> &argumentsPerRank,
          const Options &options);

} // namespace aim::interp

#endif // AIMC_INTERPRETER_SIMULATEDGRID_H
