//===- GpuPreparation.cpp - bufferized kernels made fit for a GPU ---------===//
#include "codegen/kernels/GpuPreparation.h"

#include "codegen/kernels/CodegenError.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Linalg/Transforms/Transforms.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/IR/SymbolTable.h"

namespace mlir::aim {

namespace {

/// A kernel cannot read the host's globals: every use of a constant global
/// (splat, e.g. the loss' seed gradient 1.0) becomes a fresh buffer filled
/// by a kernel, freed when its function returns.
llvm::Error copyConstantsToAllocations(ModuleOp module) {
  SmallVector<memref::GetGlobalOp> uses;
  module.walk([&](memref::GetGlobalOp use) { uses.push_back(use); });
  for (memref::GetGlobalOp use : uses) {
    auto global = SymbolTable::lookupNearestSymbolFrom<memref::GlobalOp>(
        use, use.getNameAttr());
    auto value =
        global
            ? dyn_cast_or_null<SplatElementsAttr>(global.getConstantInitValue())
            : SplatElementsAttr();
    if (!value)
      return codegenError(
          "the GPU backend handles splat constant globals only; "
          "not @" +
          use.getName());
    // At the function's start, so that it dominates every return.
    auto function = use->getParentOfType<func::FuncOp>();
    auto b = OpBuilder::atBlockBegin(&function.front());
    auto type = cast<MemRefType>(use.getType());
    Value buffer = memref::AllocOp::create(
        b, use.getLoc(),
        MemRefType::get(type.getShape(), type.getElementType()));
    Value scalar = arith::ConstantOp::create(
        b, use.getLoc(), cast<TypedAttr>(value.getSplatValue<Attribute>()));
    linalg::FillOp::create(b, use.getLoc(), scalar, buffer);
    function.walk([&](func::ReturnOp ret) {
      OpBuilder at(ret);
      memref::DeallocOp::create(at, ret.getLoc(), buffer);
    });
    use.replaceAllUsesWith(buffer);
    use.erase();
  }
  for (auto global :
       llvm::make_early_inc_range(module.getOps<memref::GlobalOp>()))
    if (SymbolTable::symbolKnownUseEmpty(global, module))
      global.erase();
  return llvm::Error::success();
}
/// A linalg op without a parallel loop (rank 0, or reducing every
/// dimension: the loss, the clipping norm) would run as host code between
/// the launches and read what kernels wrote. Wrapped in a one-iteration
/// scf.parallel it becomes a one-thread kernel, so the host only launches.
void wrapSequentialOpsInKernels(ModuleOp module) {
  SmallVector<linalg::LinalgOp> sequential;
  module.walk([&](linalg::LinalgOp op) {
    if (op.getNumParallelLoops() == 0)
      sequential.push_back(op);
  });
  for (linalg::LinalgOp op : sequential) {
    OpBuilder b(op);
    Location loc = op.getLoc();
    Value zero = arith::ConstantIndexOp::create(b, loc, 0);
    Value one = arith::ConstantIndexOp::create(b, loc, 1);
    auto loop = scf::ParallelOp::create(b, loc, ValueRange{zero},
                                        ValueRange{one}, ValueRange{one});
    op->moveBefore(loop.getBody()->getTerminator());
  }
}

/// Loops reordered so that every parallel loop comes before every
/// reduction (their own orders kept). A reduction loop outside a parallel
/// one would stay on the host and launch a kernel per iteration (the
/// LayerNorm weight gradients: one per row); inside, each thread sums its
/// own output, over the same terms in the same order as before.
void parallelLoopsFirst(ModuleOp module) {
  SmallVector<linalg::GenericOp> generics;
  module.walk([&](linalg::GenericOp op) { generics.push_back(op); });
  IRRewriter rewriter(module.getContext());
  for (linalg::GenericOp op : generics) {
    SmallVector<unsigned> order;
    for (auto [i, type] : llvm::enumerate(op.getIteratorTypesArray()))
      if (type == utils::IteratorType::parallel)
        order.push_back(i);
    for (auto [i, type] : llvm::enumerate(op.getIteratorTypesArray()))
      if (type != utils::IteratorType::parallel)
        order.push_back(i);
    if (llvm::is_sorted(order))
      continue;
    rewriter.setInsertionPoint(op);
    (void)linalg::interchangeGenericOp(rewriter, op, order);
  }
}
/// linalg.copy and linalg.fill as the generics they are, so that the
/// element-wise kernels take them (ElementwiseKernels.h: vectors, several a
/// thread) instead of a thread an element: bufferization's copies of
/// attention's q, k and v out of qkv (gone since: OutlineKernels.cpp) ran
/// at a third of an H200's bandwidth that way.
void generalizeCopiesAndFills(ModuleOp module) {
  SmallVector<linalg::LinalgOp> named;
  module.walk([&](Operation *op) {
    if (isa<linalg::CopyOp, linalg::FillOp>(op) &&
        cast<linalg::LinalgOp>(op).hasPureBufferSemantics())
      named.push_back(cast<linalg::LinalgOp>(op));
  });
  IRRewriter rewriter(module.getContext());
  for (linalg::LinalgOp op : named) {
    rewriter.setInsertionPoint(op);
    (void)linalg::generalizeNamedOp(rewriter, op);
  }
}

} // namespace

llvm::Error prepareKernelsForGpu(ModuleOp module,
                                 const GpuPreparationOptions &options) {
  if (llvm::Error e = copyConstantsToAllocations(module))
    return e;
  parallelLoopsFirst(module);
  lowerRowReductions(module, options.target, options.rows);
  mergeIndependentElementwise(module, options.target, options.multiTensor);
  generalizeCopiesAndFills(module);
  lowerElementwiseOps(module, options.target, options.elementwise);
  wrapSequentialOpsInKernels(module);
  return llvm::Error::success();
}

} // namespace mlir::aim
