//===- Pipelines.cpp - the pass pipelines of aimc's stages ----------------===//
#include "passes/Pipelines.h"

#include "passes/Passes.h"

namespace mlir::aim {

void addStagePipeline(OpPassManager &pm, Stage stage,
                      const PipelineOptions &options) {
  if (stage >= Stage::LossAndGrads && options.prefixMask) {
    PrefixMaskPassOptions prefixMask;
    prefixMask.mode = options.prefixMode;
    pm.addPass(createPrefixMaskPass(prefixMask));
  }
  if (stage >= Stage::LossAndGrads)
    pm.addPass(createAutodiffPass());
  if (stage >= Stage::TrainStep)
    pm.addPass(createBuildTrainStepPass());
  if (stage >= Stage::Kernels && options.fuse) {
    FusePassOptions fuse;
    fuse.target = options.target;
    pm.addPass(createFusePass(fuse));
  }
  if (stage >= Stage::Kernels)
    pm.addPass(createPlanMemoryPass());
}

} // namespace mlir::aim
