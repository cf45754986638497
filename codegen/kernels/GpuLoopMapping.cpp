//===- GpuLoopMapping.cpp - parallel loops onto blocks and threads --------===//
#include "codegen/kernels/GpuLoopMapping.h"

#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/GPU/Transforms/ParallelLoopMapper.h"
#include "mlir/Dialect/SCF/IR/SCF.h"

namespace mlir::aim {

namespace {
int parallelDepth(scf::ParallelOp loop) {
  int depth = 0;
  for (Operation *p = loop->getParentOp(); p; p = p->getParentOp())
    depth += isa<scf::ParallelOp>(p);
  return depth;
}
} // namespace

void mapParallelLoopsToGpu(ModuleOp module) {
  MLIRContext *ctx = module.getContext();
  AffineMap identity = AffineMap::getMultiDimIdentityMap(1, ctx);
  auto dim = [&](gpu::Processor p) {
    return gpu::ParallelLoopDimMappingAttr::get(ctx, p, identity, identity);
  };
  module.walk([&](scf::ParallelOp loop) {
    int depth = parallelDepth(loop);
    unsigned n = loop.getNumLoops();
    SmallVector<gpu::ParallelLoopDimMappingAttr> mapping(
        n, dim(gpu::Processor::Sequential));
    if (depth == 0) {
      // Kernels serve every shape of their distinct kernel, so trip counts
      // are not known here: the outermost dimensions (batch, rows: the
      // largest) take x, whose cap is 2^31 - 1, then y and z.
      const gpu::Processor blocks[3] = {gpu::Processor::BlockX,
                                        gpu::Processor::BlockY,
                                        gpu::Processor::BlockZ};
      for (unsigned i = 0; i < n && i < 3; ++i)
        mapping[i] = dim(blocks[i]);
    } else if (depth == 1) {
      // The tile's threads run along its last, contiguous dimension (its
      // other dimensions have one iteration).
      mapping[n - 1] = dim(gpu::Processor::ThreadX);
    }
    // Valid by construction: each processor is used at most once.
    (void)gpu::setMappingAttr(loop, mapping);
  });
}

} // namespace mlir::aim
