//===- Passes.h - the aim passes --------------------------------*- C++ -*-===//
#ifndef AIMC_PASSES_PASSES_H
#define AIMC_PASSES_PASSES_H

#include "dialects/aim/AimOps.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Shard/IR/ShardOps.h"
#include "mlir/Pass/Pass.h"

namespace mlir::aim {

#define GEN_PASS_DECL
#include "passes/Passes.h.inc"

#define GEN_PASS_REGISTRATION
#include "passes/Passes.h.inc"

/// Names of the entry points the passes add.
inline constexpr llvm::StringLiteral kLossAndGradsName = "loss_and_grads";
inline constexpr llvm::StringLiteral kTrainStepName = "train_step";
inline constexpr llvm::StringLiteral kApplyGradientsName = "apply_gradients";
/// The grid aim-shard adds: axis 0 data parallel, axis 1 tensor parallel.
inline constexpr llvm::StringLiteral kGridName = "mesh";
inline constexpr int16_t kDataParallelAxis = 0, kTensorParallelAxis = 1;
/// On a collective of @train_step that sums gradients over dp
/// (aim-build-train-step), for aim-schedule.
inline constexpr llvm::StringLiteral kGradientReductionAttrName =
    "aim.gradient_reduction";


} // namespace mlir::aim

#endif // AIMC_PASSES_PASSES_H
