//===- SplitFullReductions.cpp - sums to a scalar in two stages -----------===//
#include "codegen/kernels/SplitFullReductions.h"

#include "codegen/kernels/LowerToLinalg.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Linalg/Transforms/Transforms.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/IRMapping.h"

namespace mlir::aim {

namespace {

/// Whether the body yields `acc + x` (float or integer) with the
/// accumulator used nowhere else: then partial sums may be added later.
bool isAdditive(linalg::GenericOp op) {
  Block &body = op.getRegion().front();
  Value acc = body.getArguments().back();
  auto yield = cast<linalg::YieldOp>(body.getTerminator());
  Operation *add = yield.getValues()[0].getDefiningOp();
  if (!add || !isa<arith::AddFOp, arith::AddIOp>(add) || !acc.hasOneUse())
    return false;
  return add->getOperand(0) == acc || add->getOperand(1) == acc;
}

bool isFullReduction(linalg::GenericOp op, int64_t minElements) {
  if (op.getNumDpsInits() != 1 || op.getNumParallelLoops() != 0 ||
      op.getNumLoops() == 0 || !op.hasPureTensorSemantics())
    return false;
  auto result = dyn_cast<RankedTensorType>(op.getResult(0).getType());
  if (!result || result.getRank() != 0)
    return false;
  SmallVector<int64_t> ranges = op.getStaticLoopRanges();
  int64_t total = 1;
  for (int64_t r : ranges) {
    if (ShapedType::isDynamic(r))
      return false;
    total *= r;
  }
  return ranges[0] >= 2 && total >= minElements && isAdditive(op);
}

void split(linalg::GenericOp op) {
  OpBuilder b(op);
  Location loc = op.getLoc();
  MLIRContext *ctx = op.getContext();
  unsigned loops = op.getNumLoops();
  int64_t slices = op.getStaticLoopRanges()[0];
  Type element = cast<RankedTensorType>(op.getResult(0).getType())
                     .getElementType();

  // Stage 1: partial[d0] = sum over the other dimensions, from zero.
  auto partialType = RankedTensorType::get({slices}, element);
  Value empty = tensor::EmptyOp::create(b, loc, partialType.getShape(),
                                        element);
  Value zero = arith::ConstantOp::create(b, loc, b.getZeroAttr(element));
  Value init = linalg::FillOp::create(b, loc, zero, empty).getResult(0);
  SmallVector<AffineMap> maps = op.getIndexingMapsArray();
  maps.back() = AffineMap::get(loops, 0, b.getAffineDimExpr(0), ctx);
  SmallVector<utils::IteratorType> iterators(loops,
                                             utils::IteratorType::reduction);
  iterators[0] = utils::IteratorType::parallel;
  auto partial = linalg::GenericOp::create(b, loc, TypeRange{partialType},
                                           op.getDpsInputs(), ValueRange{init},
                                           maps, iterators);
  IRMapping same;
  op.getRegion().cloneInto(&partial.getRegion(), same);

  // Stage 2: the original accumulator plus every partial sum.
  AffineMap identity = b.getMultiDimIdentityMap(1);
  AffineMap scalar = AffineMap::get(1, 0, ArrayRef<AffineExpr>{}, ctx);
  bool isFloat = isa<FloatType>(element);
  auto total = linalg::GenericOp::create(
      b, loc, op.getResult(0).getType(), partial.getResult(0),
      op.getDpsInits()[0], ArrayRef<AffineMap>{identity, scalar},
      ArrayRef<utils::IteratorType>{utils::IteratorType::reduction},
      [&](OpBuilder &nb, Location l, ValueRange a) {
        Value sum = isFloat ? arith::AddFOp::create(nb, l, a[1], a[0]).getResult()
                            : arith::AddIOp::create(nb, l, a[1], a[0]).getResult();
        linalg::YieldOp::create(nb, l, sum);
      });
  op.getResult(0).replaceAllUsesWith(total.getResult(0));
  op.erase();
}

/// Whether `op` reduces along rows: its one reduction loop is the innermost
/// loop and the innermost dimension of every input it reduces. Such an op
/// becomes a row kernel (RowReductions.h), a block a row with coalesced loads.
bool reducesContiguousRows(linalg::GenericOp op) {
  unsigned loops = op.getNumLoops();
  if (op.getIteratorTypesArray().back() != utils::IteratorType::reduction)
    return false;
  AffineExpr innermost = getAffineDimExpr(loops - 1, op.getContext());
  for (OpOperand *input : op.getDpsInputOperands()) {
    AffineMap map = op.getMatchingIndexingMap(input);
    if (map.isFunctionOfDim(loops - 1) &&
        (map.getNumResults() == 0 || map.getResults().back() != innermost))
      return false;
  }
  return true;
}

} // namespace

int splitNarrowReductions(ModuleOp module, int64_t maxParallel,
                          int64_t minReduced) {
  SmallVector<linalg::GenericOp> candidates;
  module.walk([&](linalg::GenericOp op) {
    if (op.getNumDpsInits() == 1 && op.getNumReductionLoops() == 1 &&
        op.hasPureTensorSemantics() && isAdditive(op) &&
        !op->hasAttr(kBatchedGemmAttrName)) // a BLAS's to split
      candidates.push_back(op);
  });
  int split = 0;
  for (linalg::GenericOp op : candidates) {
    SmallVector<int64_t> ranges = op.getStaticLoopRanges();
    SmallVector<utils::IteratorType> iterators = op.getIteratorTypesArray();
    int64_t parallel = 1, reduced = 0;
    for (auto [range, kind] : llvm::zip(ranges, iterators)) {
      if (ShapedType::isDynamic(range))
        parallel = maxParallel; // not split
      else if (kind == utils::IteratorType::parallel)
        parallel *= range;
      else
        reduced = range;
    }
    if (parallel >= maxParallel || reduced < minReduced ||
        (parallel >= kRowsForRowKernels && reducesContiguousRows(op)))
      continue;
    // The most chunks (a power of two dividing the extent, each of at
    // least 16 elements) that keep the threads under maxParallel.
    int64_t chunks = 1;
    while (reduced % (chunks * 2) == 0 && reduced / (chunks * 2) >= 16 &&
           parallel * chunks * 2 <= maxParallel)
      chunks *= 2;
    if (chunks < 2)
      continue;
    IRRewriter rewriter(op.getContext());
    rewriter.setInsertionPoint(op);
    auto options = [chunks](linalg::LinalgOp) {
      return linalg::SplitReductionOptions{chunks, /*index=*/0,
                                           /*innerParallel=*/false};
    };
    if (succeeded(linalg::splitReduction(
            rewriter, cast<linalg::LinalgOp>(op.getOperation()), options)))
      ++split;
  }
  return split;
}

int splitFullReductions(ModuleOp module, int64_t minElements) {
  SmallVector<linalg::GenericOp> candidates;
  module.walk([&](linalg::GenericOp op) {
    if (isFullReduction(op, minElements))
      candidates.push_back(op);
  });
  for (linalg::GenericOp op : candidates)
    split(op);
  return static_cast<int>(candidates.size());
}

} // namespace mlir::aim
