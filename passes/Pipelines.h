//===- Pipelines.h - the pass pipelines of aimc's stages --------*- C++ -*-===//
#ifndef AIMC_PASSES_PIPELINES_H
#define AIMC_PASSES_PIPELINES_H

#include "mlir/Pass/PassManager.h"

namespace mlir::aim {

/// What a compilation stops at; each stage includes the ones before it.
enum class Stage {
  Forward,      // @forward only (the frontend's output)
  LossAndGrads, // + @loss_and_grads
  TrainStep,    // + @train_step
};

/// Adds the passes that take a module holding @forward to `stage`.
void addStagePipeline(OpPassManager &pm, Stage stage);

} // namespace mlir::aim

#endif // AIMC_PASSES_PIPELINES_H
