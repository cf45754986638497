//===- Pipelines.cpp - the pass pipelines of aimc's stages ----------------===//
#include "passes/Pipelines.h"

#include "passes/Passes.h"

#include "dialects/aim/AimSharding.h"

namespace mlir::aim {

void addStagePipeline(OpPassManager &pm, Stage stage,
                      const PipelineOptions &options) {
  const bool onGrid = options.grid ||
                      options.dataParallel * options.tensorParallel > 1 ||
                      options.zero;
  if (onGrid) {
    ShardPassOptions shard;
    shard.dataParallel = options.dataParallel;
    shard.tensorParallel = options.tensorParallel;
    shard.zero = options.zero;
    pm.addPass(createShardPass(shard));
  }
  if (stage >= Stage::LossAndGrads && options.prefixMask) {
    PrefixMaskPassOptions prefixMask;
    prefixMask.mode = options.prefixMode;
    pm.addPass(createPrefixMaskPass(prefixMask));
  }
  if (stage >= Stage::LossAndGrads)
    pm.addPass(createAutodiffPass());
  if (stage >= Stage::TrainStep)
    pm.addPass(createBuildTrainStepPass());
  if (stage >= Stage::TrainStep && onGrid &&
      sumsOverDataParallel(options.dataParallel, options.tensorParallel) &&
      options.bucketBytes > 0) {
    ScheduleCommunicationPassOptions schedule;
    schedule.bucketBytes = options.bucketBytes;
    pm.addPass(createScheduleCommunicationPass(schedule));
  }
  if (stage >= Stage::Kernels && options.bf16GemmOperands)
    pm.addPass(createBf16GemmOperandsPass());
  if (stage >= Stage::Kernels && options.fuse) {
    FusePassOptions fuse;
    fuse.target = options.target;
    pm.addPass(createFusePass(fuse));
  }
  if (stage >= Stage::Kernels)
    pm.addPass(createPlanMemoryPass());
}

} // namespace mlir::aim
