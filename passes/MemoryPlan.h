//===- MemoryPlan.h - static arena assignment from liveness -----*- C++ -*-===//
#ifndef AIMC_PASSES_MEMORYPLAN_H
#define AIMC_PASSES_MEMORYPLAN_H

#include "mlir/Dialect/Func/IR/FuncOps.h"

#include <string>
#include <vector>

namespace mlir::aim {

/// One activation buffer of a function's arena.
struct ArenaBuffer {
  Value value;         // the value that owns the storage
  int64_t bytes = 0;   // its size
  size_t firstUse = 0; // index of the defining op in the body
  size_t lastUse = 0;  // index of the last op reading it (or a view of it)
  int64_t offset = -1; // assigned byte offset
};

struct ArenaPlan {
  std::vector<ArenaBuffer> buffers;
  int64_t arenaBytes = 0;
};

inline constexpr int64_t kArenaAlignment = 256;

/// Lifetimes and offsets for the activations of `function` (see
/// aim-plan-memory).
ArenaPlan planArena(func::FuncOp function);

/// Checks that no two buffers alive at the same time overlap in the arena
/// and that every buffer fits; returns a description of the first problem.
std::string checkArenaPlan(const ArenaPlan &plan);

} // namespace mlir::aim

#endif // AIMC_PASSES_MEMORYPLAN_H
