//===- BufferizedKernels.cpp - aim IR to kernels on buffers ---------------===//
#include "codegen/kernels/BufferizedKernels.h"

#include "codegen/kernels/CollectiveCalls.h"
#include "codegen/kernels/LowerToLinalg.h"
#include "codegen/kernels/SplitFullReductions.h"
#include "codegen/kernels/SummedSlices.h"
#include "codegen/kernels/TiledAttention.h"

#include "mlir/Conversion/Passes.h"
#include "mlir/Dialect/Affine/IR/AffineOps.h"
#include "mlir/Dialect/Arith/Transforms/BufferizableOpInterfaceImpl.h"
#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/Dialect/Bufferization/Pipelines/Passes.h"
#include "mlir/Dialect/Bufferization/Transforms/FuncBufferizableOpInterfaceImpl.h"
#include "mlir/Dialect/Bufferization/Transforms/Passes.h"
#include "mlir/Dialect/ControlFlow/IR/ControlFlow.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Linalg/Transforms/BufferizableOpInterfaceImpl.h"
#include "mlir/Dialect/Linalg/Transforms/Transforms.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/SCF/Transforms/Transforms.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Tensor/Transforms/BufferizableOpInterfaceImpl.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Transforms/Passes.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

#include <algorithm>

namespace mlir::aim {

namespace {

/// buffer-results-to-out-params rewrites a function's returns before the
/// calls inside it: a result that came from a call stays a temporary the
/// callee writes, then copied into the out parameter (in train_step, a
/// second pass over every parameter and both moments). Where the out
/// parameter is used by that copy alone and the temporary is an allocation
/// of the same type that nothing but its deallocation uses after the copy,
/// the callee writes the out parameter itself.
void forwardTemporariesToOutParams(ModuleOp module) {
  for (auto function : module.getOps<func::FuncOp>()) {
    if (function.isExternal())
      continue;
    Block &entry = function.front();
    SmallVector<memref::CopyOp> copies(entry.getOps<memref::CopyOp>());
    for (memref::CopyOp copy : copies) {
      auto out = dyn_cast<BlockArgument>(copy.getTarget());
      auto alloc = copy.getSource().getDefiningOp<memref::AllocOp>();
      if (!out || out.getOwner() != &entry || !out.hasOneUse() || !alloc ||
          alloc->getBlock() != &entry || alloc.getType() != out.getType())
        continue;
      SmallVector<Operation *> deallocs;
      bool onlyFreedAfter = true;
      for (Operation *user : alloc->getUsers()) {
        Operation *inEntry = entry.findAncestorOpInBlock(*user);
        if (user == copy.getOperation() || !inEntry ||
            inEntry->isBeforeInBlock(copy))
          continue;
        if (isa<memref::DeallocOp>(user))
          deallocs.push_back(user);
        else
          onlyFreedAfter = false;
      }
      if (!onlyFreedAfter)
        continue;
      for (Operation *dealloc : deallocs)
        dealloc->erase();
      copy.erase();
      alloc.replaceAllUsesWith(out);
      alloc.erase();
    }
  }
}

/// Identical scalar computations marked computed-once in one block (AdamW's
/// bias corrections, the same for every parameter of the optimiser fusion)
/// computed once. Not a general CSE: merging other ops would give producers
/// several uses and keep them out of elementwise fusion.
void reuseComputedOnce(ModuleOp module) {
  module.walk([](Block *block) {
    SmallVector<Operation *> kept;
    for (Operation &op : llvm::make_early_inc_range(*block)) {
      if (!op.hasAttr(kComputedOnceAttrName))
        continue;
      auto generic = dyn_cast<linalg::GenericOp>(op);
      if (!generic)
        continue;
      // The same inputs, maps and body, into fresh tensors.
      auto same = llvm::find_if(kept, [&](Operation *k) {
        auto other = cast<linalg::GenericOp>(k);
        auto fresh = [](Value v) { return v.getDefiningOp<tensor::EmptyOp>(); };
        return other.getInputs() == generic.getInputs() &&
               other.getIndexingMaps() == generic.getIndexingMaps() &&
               other->getResultTypes() == generic->getResultTypes() &&
               llvm::all_of(generic.getOutputs(), fresh) &&
               llvm::all_of(other.getOutputs(), fresh) &&
               OperationEquivalence::isRegionEquivalentTo(
                   &other.getRegion(), &generic.getRegion(),
                   OperationEquivalence::IgnoreLocations);
      });
      if (same == kept.end()) {
        kept.push_back(&op);
        continue;
      }
      op.replaceAllUsesWith(*same);
      op.erase();
    }
  });
}

/// A GEMM operand's bfloat16 copy (kGemmOperandCastAttrName) of a value an
/// element-wise op computes for other uses too (a saved activation:
/// elementwise fusion leaves such producers alone, or would compute them
/// twice): the producer yields the copy as a second result, so that one
/// kernel writes both and nothing reads the float32 value back to round it.
void mergeGemmCastsIntoProducers(ModuleOp module) {
  SmallVector<linalg::GenericOp> casts;
  module.walk([&](linalg::GenericOp op) {
    if (op->hasAttr(kGemmOperandCastAttrName))
      casts.push_back(op);
  });
  IRRewriter rewriter(module.getContext());
  for (linalg::GenericOp copy : casts) {
    auto producer = copy.getDpsInputs()[0].getDefiningOp<linalg::GenericOp>();
    // Both over the same elements: the producer's output and the copy's
    // operands indexed by the identity.
    if (!producer || producer->getNumResults() != 1 ||
        producer.getNumReductionLoops() != 0 ||
        !producer.getIndexingMapsArray().back().isIdentity() ||
        !llvm::all_of(copy.getIndexingMapsArray(),
                      [](AffineMap m) { return m.isIdentity(); }) ||
        producer->getBlock() != copy->getBlock() ||
        producer.getNumLoops() != copy.getNumLoops())
      continue;
    // The copy's (empty, static) output tensor made before the producer.
    auto empty = copy.getDpsInits()[0].getDefiningOp<tensor::EmptyOp>();
    if (!empty || empty->getNumOperands() != 0)
      continue;
    empty->moveBefore(producer);
    // The producer again, with the copy's output added and its rounding
    // (the copy's body, on the value it yields) yielded too.
    rewriter.setInsertionPoint(producer);
    SmallVector<Value> inits = {producer.getDpsInits()[0],
                                copy.getDpsInits()[0]};
    SmallVector<AffineMap> maps = producer.getIndexingMapsArray();
    maps.push_back(copy.getIndexingMapsArray()[1]);
    auto merged = linalg::GenericOp::create(
        rewriter, producer.getLoc(),
        TypeRange{producer->getResultTypes()[0], copy->getResultTypes()[0]},
        producer.getDpsInputs(), inits, maps,
        producer.getIteratorTypesArray());
    Block *body = rewriter.createBlock(&merged.getRegion());
    for (BlockArgument arg : producer.getRegion().front().getArguments())
      body->addArgument(arg.getType(), arg.getLoc());
    body->addArgument(copy.getRegion().front().getArguments().back().getType(),
                      copy.getLoc());
    IRMapping mapping;
    for (auto [from, to] : llvm::zip(producer.getRegion().front().getArguments(),
                                     body->getArguments()))
      mapping.map(from, to);
    rewriter.setInsertionPointToStart(body);
    for (Operation &op : producer.getRegion().front().without_terminator())
      rewriter.clone(op, mapping);
    auto yield = cast<linalg::YieldOp>(
        producer.getRegion().front().getTerminator());
    Value value = mapping.lookupOrDefault(yield.getOperand(0));
    Block &castBody = copy.getRegion().front();
    IRMapping castMapping;
    castMapping.map(castBody.getArgument(0), value);
    castMapping.map(castBody.getArgument(1), body->getArguments().back());
    for (Operation &op : castBody.without_terminator())
      rewriter.clone(op, castMapping);
    Value rounded = castMapping.lookupOrDefault(
        castBody.getTerminator()->getOperand(0));
    linalg::YieldOp::create(rewriter, yield.getLoc(),
                            ValueRange{value, rounded});
    rewriter.replaceOp(copy, merged.getResult(1));
    rewriter.replaceOp(producer, merged.getResult(0));
  }
}

} // namespace

llvm::Expected<KernelCount>
lowerToBufferizedKernels(ModuleOp module,
                         const BufferizedKernelOptions &options) {
  const bool fuseElementwise = options.fuseElementwise;
  const int64_t splitReductionsFrom = options.splitReductionsFrom;
  auto failure = [](const char *message) {
    return llvm::createStringError(llvm::inconvertibleErrorCode(), message);
  };
  MLIRContext *ctx = module.getContext();
  DialectRegistry registry;
  arith::registerBufferizableOpInterfaceExternalModels(registry);
  linalg::registerBufferizableOpInterfaceExternalModels(registry);
  tensor::registerBufferizableOpInterfaceExternalModels(registry);
  bufferization::func_ext::registerBufferizableOpInterfaceExternalModels(
      registry);
  ctx->appendDialectRegistry(registry);
  ctx->loadDialect<affine::AffineDialect, bufferization::BufferizationDialect,
                   cf::ControlFlowDialect, memref::MemRefDialect,
                   scf::SCFDialect>();

  KernelCount kernels = outlineKernels(module);
  if (failed(lowerAimToLinalg(module, options.linalg)))
    return failure("the module has ops code generation cannot lower yet");
  if (failed(markCollectives(module)))
    return failure("the module has collectives the runtime cannot do (see "
                   "the diagnostics)");
  if (fuseElementwise) {
    // Only single-use producers: fusing one with several consumers would
    // compute it once per consumer. Marked GEMMs are not elementwise and
    // stay as they are, their operands too. Nor producers with a loop in their
    // body (the loss's sum over each patch): fused into a sum over every patch,
    // they made aim-600m's loss a one-thread kernel of 86 ms; on their own they
    // are a thread per patch.
    RewritePatternSet patterns(ctx);
    linalg::populateElementwiseOpsFusionPatterns(
        patterns, [](OpOperand *operand) {
          Operation *producer = operand->get().getDefiningOp();
          // A collective is a call of the runtime, not a loop nest.
          if (!producer || !producer->hasOneUse() ||
              producer->hasAttr(kComputedOnceAttrName) ||
              isCollectiveMark(producer) ||
              isCollectiveMark(operand->getOwner()) ||
              operand->getOwner()->hasAttr(kBatchedGemmAttrName) ||
              operand->getOwner()->hasAttr(kGemmAttrName))
            return false;
          WalkResult loops = producer->walk([&](Operation *nested) {
            return nested != producer && nested->getNumRegions() > 0
                       ? WalkResult::interrupt()
                       : WalkResult::advance();
          });
          return !loops.wasInterrupted();
        });
    if (failed(applyPatternsGreedily(module, std::move(patterns))))
      return failure("elementwise fusion did not converge");
  }
  reuseComputedOnce(module);
  if (fuseElementwise)
    mergeGemmCastsIntoProducers(module);
  if (splitReductionsFrom > 0) {
    splitFullReductions(module, splitReductionsFrom);
    // Then the long, narrow ones (and the full ones' second stages): up to
    // 256 blocks of 128 threads.
    splitNarrowReductions(module, /*maxParallel=*/256 * 128,
                          /*minReduced=*/std::max<int64_t>(
                              32, splitReductionsFrom / 16));
  }

  PassManager pm(ctx);
  bufferization::OneShotBufferizePassOptions bufferize;
  bufferize.bufferizeFunctionBoundaries = true;
  bufferize.functionBoundaryTypeConversion =
      bufferization::LayoutMapOption::IdentityLayoutMap;
  pm.addPass(bufferization::createOneShotBufferizePass(bufferize));
  // A GEMM's [B, N, D] result is its [B * N, D] buffer reshaped twice
  // (collapsed for the call, expanded back): folded away, the buffer is the
  // function's result and becomes its out parameter -- no copy into it.
  pm.addNestedPass<func::FuncOp>(createCanonicalizerPass());
  bufferization::BufferResultsToOutParamsPassOptions outParams;
  outParams.hoistStaticAllocs = true;
  outParams.modifyPublicFunctions =
      true; // every entry point writes its results
  pm.addPass(bufferization::createBufferResultsToOutParamsPass(outParams));
  bufferization::buildBufferDeallocationPipeline(pm);
  pm.addPass(createConvertBufferizationToMemRefPass());
  if (failed(pm.run(module)))
    return failure("bufferization failed (see the diagnostics)");
  forwardTemporariesToOutParams(module);
  // Strided copies (into and out of slices) would lower to a call of MLIR's
  // C runtime helper memrefCopy, which no library here provides: as linalg
  // copies they become plain loops instead.
  SmallVector<memref::CopyOp> copies;
  module.walk([&](memref::CopyOp copy) { copies.push_back(copy); });
  for (memref::CopyOp copy : copies) {
    OpBuilder b(copy);
    linalg::CopyOp::create(b, copy.getLoc(), copy.getSource(),
                           copy.getTarget());
    copy.erase();
  }
  copySlicesInsteadOfSummingPads(module);
  if (options.linalg.attention != AttentionLowering::Dense)
    lowerAttentionKernels(module, options.attentionTarget,
                          options.linalg.attention);
  return kernels;
}

void tileInnermostParallelLoops(ModuleOp module, int64_t threads) {
  SmallVector<scf::ParallelOp> nests;
  module.walk([&](scf::ParallelOp loop) {
    if (!loop->getParentOfType<scf::ParallelOp>())
      nests.push_back(loop);
  });
  for (scf::ParallelOp loop : nests) {
    SmallVector<int64_t> sizes(loop.getNumLoops(), 1);
    sizes.back() = threads;
    // Constant inner bounds and a guard: upstream's loop-to-GPU conversion
    // cannot map min-bounded tiles.
    scf::tileParallelLoop(loop, sizes, /*noMinMaxBounds=*/true);
  }
}

} // namespace mlir::aim
