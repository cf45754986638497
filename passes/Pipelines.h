//===- Pipelines.h - the pass pipelines of aimc's stages --------*- C++ -*-===//
#ifndef AIMC_PASSES_PIPELINES_H
#define AIMC_PASSES_PIPELINES_H

#include "mlir/Pass/PassManager.h"

#include <string>

namespace mlir::aim {

/// What a compilation stops at; each stage includes the ones before it.
enum class Stage {
  Forward,      // @forward only (the frontend's output)
  LossAndGrads, // + @loss_and_grads
  TrainStep,    // + @train_step
  Kernels, // + aim.fusion kernels (aim-fuse), arena offsets (aim-plan-memory)
};

struct PipelineOptions {
  /// aim-prefix-mask before differentiation, for this prefix sampling mode.
  bool prefixMask = true;
  std::string prefixMode = "antithetic";
  /// aim-bf16-gemm-operands at the kernels stage, before aim-fuse: GEMM
  /// operands rounded to bfloat16 once a value (for GPU code).
  bool bf16GemmOperands = false;
  /// aim-fuse at the kernels stage, deciding on this target description.
  bool fuse = true;
  std::string target = "h100-sxm";
  /// aim-shard first, for the program of one rank of a dp x tp grid: when
  /// `grid` is set (aimc --mesh, even a grid of one rank), or dp x tp > 1,
  /// or zero.
  bool grid = false;
  int64_t dataParallel = 1, tensorParallel = 1;
  bool zero = false;
  /// Where the program sums over dp: aim-schedule's buckets of gradient
  /// reductions started during the backward (0: reduce after the backward,
  /// synchronously).
  int64_t bucketBytes = 25 << 20;
};

/// Adds the passes that take a module holding @forward to `stage`. The
/// forward stage runs no pass but aim-shard: it is the frontend's IR as
/// built (for one rank, on a grid).
void addStagePipeline(OpPassManager &pm, Stage stage,
                      const PipelineOptions &options = {});

} // namespace mlir::aim

#endif // AIMC_PASSES_PIPELINES_H
