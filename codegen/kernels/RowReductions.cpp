//===- RowReductions.cpp - reductions along rows by whole blocks ----------===//
#include "codegen/kernels/RowReductions.h"

#include "mlir/Dialect/Affine/IR/AffineOps.h"
#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/Interfaces/ViewLikeInterface.h"

#include <optional>

namespace mlir::aim {

namespace {

/// How one output of the op is updated: `acc = acc (op) x`, or masked,
/// `acc = select(c, acc (op) x, acc)`.
struct Combiner {
  Operation *op;                       // the arith op combining acc and x
  gpu::AllReduceOperation blockReduce; // the same across a block
  bool identityIsLowest;               // -inf (maximum) or +inf (minimum)
  bool isSum;                          // identity 0
};

std::optional<Combiner> combinerOf(Operation *op) {
  using gpu::AllReduceOperation;
  if (isa<arith::AddFOp>(op))
    return Combiner{op, AllReduceOperation::ADD, false, true};
  if (isa<arith::MaximumFOp>(op))
    return Combiner{op, AllReduceOperation::MAXIMUMF, true, false};
  if (isa<arith::MaxNumFOp>(op))
    return Combiner{op, AllReduceOperation::MAXNUMF, true, false};
  if (isa<arith::MinimumFOp>(op))
    return Combiner{op, AllReduceOperation::MINIMUMF, false, false};
  if (isa<arith::MinNumFOp>(op))
    return Combiner{op, AllReduceOperation::MINNUMF, false, false};
  return std::nullopt;
}

/// The combiner of the output whose block argument is `acc` and whose
/// yielded value is `yielded`, if the update has one of the two forms above
/// and `acc` is read nowhere else (so the rest of the body does not depend
/// on the output: its per-element terms may be combined in any grouping).
std::optional<Combiner> matchUpdate(Value acc, Value yielded) {
  Operation *def = yielded.getDefiningOp();
  if (!def)
    return std::nullopt;
  Operation *combining = def;
  unsigned accUses = 1;
  if (auto select = dyn_cast<arith::SelectOp>(def)) {
    if (select.getFalseValue() != acc)
      return std::nullopt;
    combining = select.getTrueValue().getDefiningOp();
    accUses = 2;
    if (!combining || !combining->hasOneUse())
      return std::nullopt;
  }
  std::optional<Combiner> c = combinerOf(combining);
  if (!c || !yielded.hasOneUse() ||
      (combining->getOperand(0) != acc && combining->getOperand(1) != acc) ||
      combining->getOperand(0) == combining->getOperand(1))
    return std::nullopt;
  if (static_cast<unsigned>(std::distance(acc.use_begin(), acc.use_end())) !=
      accUses)
    return std::nullopt;
  return c;
}

/// The buffer a view (subview, reshape, cast) reads through.
Value rootBuffer(Value v) {
  while (auto view = v.getDefiningOp<ViewLikeOpInterface>())
    v = view.getViewSource();
  return v;
}

struct RowReduction {
  linalg::GenericOp op;
  unsigned parallelLoops;
  SmallVector<int64_t> rowShape;     // the parallel loops' ranges
  SmallVector<int64_t> reducedShape; // the reduction loops' ranges
  SmallVector<Combiner> combiners;   // one an output
  SmallVector<linalg::FillOp> fills; // dropped: written, not combined into
  SmallVector<bool> filled;          // one an output
};

int64_t product(ArrayRef<int64_t> shape) {
  int64_t p = 1;
  for (int64_t s : shape)
    p *= s;
  return p;
}

/// The constant a fill writes, if it is the combiner's identity.
bool fillsIdentity(linalg::FillOp fill, const Combiner &c) {
  auto value = fill.getInputs()[0].getDefiningOp<arith::ConstantOp>();
  auto f = value ? dyn_cast<FloatAttr>(value.getValue()) : FloatAttr();
  if (!f)
    return false;
  const APFloat &v = f.getValue();
  if (c.isSum)
    return v.isZero();
  return v.isInfinity() && v.isNegative() == c.identityIsLowest;
}

std::optional<RowReduction> matchRowReduction(linalg::GenericOp op,
                                              int64_t minLength) {
  if (!op.hasPureBufferSemantics() || op.getNumDpsInits() == 0 ||
      op->getParentOfType<gpu::LaunchOp>())
    return std::nullopt;
  RowReduction row{op};
  SmallVector<utils::IteratorType> iterators = op.getIteratorTypesArray();
  row.parallelLoops =
      llvm::find_if(iterators,
                    [](utils::IteratorType t) {
                      return t != utils::IteratorType::parallel;
                    }) -
      iterators.begin();
  unsigned loops = iterators.size();
  if (row.parallelLoops == loops ||
      !llvm::all_of(llvm::drop_begin(iterators, row.parallelLoops),
                    [](utils::IteratorType t) {
                      return t == utils::IteratorType::reduction;
                    }))
    return std::nullopt;
  SmallVector<int64_t> ranges = op.getStaticLoopRanges();
  if (llvm::any_of(ranges, ShapedType::isDynamic))
    return std::nullopt;
  row.rowShape.assign(ranges.begin(), ranges.begin() + row.parallelLoops);
  row.reducedShape.assign(ranges.begin() + row.parallelLoops, ranges.end());
  if (product(row.reducedShape) < minLength)
    return std::nullopt;

  // Every input that is reduced is read along its contiguous dimension by
  // the innermost reduction loop, so that neighbouring threads read
  // neighbouring elements.
  AffineExpr innermost = getAffineDimExpr(loops - 1, op.getContext());
  bool readsRows = false;
  for (OpOperand *input : op.getDpsInputOperands()) {
    AffineMap map = op.getMatchingIndexingMap(input);
    bool reduced = false;
    for (unsigned d = row.parallelLoops; d < loops; ++d)
      reduced |= map.isFunctionOfDim(d);
    if (!reduced)
      continue;
    auto type = dyn_cast<MemRefType>(input->get().getType());
    if (!type || map.getNumResults() == 0 ||
        map.getResults().back() != innermost || !type.isLastDimUnitStride())
      return std::nullopt;
    for (Value init : op.getDpsInits())
      if (rootBuffer(input->get()) == rootBuffer(init))
        return std::nullopt;
    readsRows = true;
  }
  if (!readsRows)
    return std::nullopt;

  // Each output element belongs to one row (so a fill before the op is
  // overwritten everywhere).
  auto yield = cast<linalg::YieldOp>(op.getRegion().front().getTerminator());
  for (auto [i, init] : llvm::enumerate(op.getDpsInitsMutable())) {
    auto type = dyn_cast<MemRefType>(init.get().getType());
    AffineMap map = op.getMatchingIndexingMap(&init);
    if (!type || !map.isProjectedPermutation() ||
        map.getNumResults() != type.getRank())
      return std::nullopt;
    for (unsigned d = row.parallelLoops; d < loops; ++d)
      if (map.isFunctionOfDim(d))
        return std::nullopt;
    std::optional<Combiner> c =
        matchUpdate(op.getMatchingBlockArgument(&init), yield.getValues()[i]);
    if (!c)
      return std::nullopt;
    row.combiners.push_back(*c);
  }

  // Fills of identities into the outputs just before the op (nothing but
  // pure ops, such as constants and views, in between).
  row.filled.assign(op.getNumDpsInits(), false);
  for (Operation *prev = op->getPrevNode(); prev; prev = prev->getPrevNode()) {
    auto fill = dyn_cast<linalg::FillOp>(prev);
    if (!fill) {
      if (isPure(prev))
        continue;
      break;
    }
    bool taken = false;
    for (auto [i, init] : llvm::enumerate(op.getDpsInits()))
      if (!row.filled[i] && fill.getOutputs()[0] == init &&
          fillsIdentity(fill, row.combiners[i])) {
        row.filled[i] = taken = true;
        row.fills.push_back(fill);
        break;
      }
    if (!taken)
      break;
  }
  return row;
}

Value indexConstant(OpBuilder &b, Location loc, int64_t v) {
  return arith::ConstantIndexOp::create(b, loc, v);
}

/// The indices of `shape` (row-major) whose linear index is `linear`.
SmallVector<Value> delinearize(OpBuilder &b, Location loc, Value linear,
                               ArrayRef<int64_t> shape) {
  SmallVector<Value> indices(shape.size());
  for (int i = static_cast<int>(shape.size()) - 1; i >= 0; --i) {
    if (i == 0) {
      indices[i] = linear;
      break;
    }
    Value size = indexConstant(b, loc, shape[i]);
    indices[i] = arith::RemUIOp::create(b, loc, linear, size);
    linear = arith::DivUIOp::create(b, loc, linear, size);
  }
  return indices;
}

Value identity(OpBuilder &b, Location loc, const Combiner &c, Type type) {
  auto ft = cast<FloatType>(type);
  APFloat v = c.isSum ? APFloat::getZero(ft.getFloatSemantics())
                      : APFloat::getInf(ft.getFloatSemantics(),
                                        /*Negative=*/c.identityIsLowest);
  return arith::ConstantOp::create(b, loc, FloatAttr::get(ft, v));
}

Value combine(OpBuilder &b, Location loc, const Combiner &c, Value x,
              Value y) {
  return b
      .create(loc, c.op->getName().getIdentifier(), ValueRange{x, y},
              TypeRange{x.getType()}, c.op->getAttrs())
      ->getResult(0);
}

SmallVector<Value> mapIndices(OpBuilder &b, Location loc, AffineMap map,
                              ValueRange loopIndices) {
  SmallVector<Value> indices;
  for (unsigned i = 0; i < map.getNumResults(); ++i)
    indices.push_back(affine::AffineApplyOp::create(b, loc, map.getSubMap({i}),
                                                    loopIndices));
  return indices;
}

/// The op's body for one element: inputs loaded at the loop indices, the
/// accumulators in place of the outputs; returns the updated accumulators.
SmallVector<Value> applyBody(OpBuilder &b, Location loc, linalg::GenericOp op,
                             ValueRange loopIndices, ValueRange accumulators) {
  Block &body = op.getRegion().front();
  IRMapping map;
  for (OpOperand *input : op.getDpsInputOperands()) {
    Value v = input->get();
    if (isa<MemRefType>(v.getType()))
      v = memref::LoadOp::create(
          b, loc, v,
          mapIndices(b, loc, op.getMatchingIndexingMap(input), loopIndices));
    map.map(op.getMatchingBlockArgument(input), v);
  }
  for (auto [init, acc] : llvm::zip(op.getDpsInitsMutable(), accumulators))
    map.map(op.getMatchingBlockArgument(&init), acc);
  for (Operation &inner : body.without_terminator()) {
    if (auto index = dyn_cast<linalg::IndexOp>(inner)) {
      map.map(index.getResult(), loopIndices[index.getDim()]);
      continue;
    }
    b.clone(inner, map);
  }
  SmallVector<Value> updated;
  for (Value v : body.getTerminator()->getOperands())
    updated.push_back(map.lookup(v));
  return updated;
}

/// Thread `thread` of `threads`: its elements of the row, combined from the
/// identities.
SmallVector<Value> threadPartials(OpBuilder &b, Location loc,
                                  const RowReduction &row, ValueRange rowIndices,
                                  Value thread, int64_t threads) {
  linalg::GenericOp op = row.op;
  int64_t length = product(row.reducedShape);
  int64_t trips = (length + threads - 1) / threads;
  SmallVector<Value> identities;
  for (auto [c, init] : llvm::zip(row.combiners, op.getDpsInits()))
    identities.push_back(identity(
        b, loc, c, cast<MemRefType>(init.getType()).getElementType()));
  Value count = indexConstant(b, loc, threads);
  auto loop = scf::ForOp::create(
      b, loc, indexConstant(b, loc, 0), indexConstant(b, loc, trips),
      indexConstant(b, loc, 1), identities,
      [&](OpBuilder &lb, Location l, Value trip, ValueRange accs) {
        Value linear = arith::AddIOp::create(
            lb, l, arith::MulIOp::create(lb, l, trip, count), thread);
        auto element = [&](OpBuilder &eb, Location el) {
          SmallVector<Value> indices(rowIndices);
          llvm::append_range(indices,
                             delinearize(eb, el, linear, row.reducedShape));
          return applyBody(eb, el, op, indices, accs);
        };
        if (length % threads == 0) {
          scf::YieldOp::create(lb, l, element(lb, l));
          return;
        }
        // The last trip's threads past the row's end keep their partials.
        Value inside = arith::CmpIOp::create(lb, l, arith::CmpIPredicate::ult,
                                             linear,
                                             indexConstant(lb, l, length));
        auto guarded = scf::IfOp::create(
            lb, l, inside,
            [&](OpBuilder &tb, Location tl) {
              scf::YieldOp::create(tb, tl, element(tb, tl));
            },
            [&](OpBuilder &eb, Location el) {
              scf::YieldOp::create(eb, el, accs);
            });
        scf::YieldOp::create(lb, l, guarded.getResults());
      });
  return loop.getResults();
}

/// out[row] = total, or out[row] (op) total where the output was not filled
/// with the identity.
void writeRow(OpBuilder &b, Location loc, const RowReduction &row,
              ValueRange rowIndices, ValueRange totals) {
  linalg::GenericOp op = row.op;
  // The outputs' maps do not use the reduction loops: any index will do.
  SmallVector<Value> loopIndices(rowIndices);
  loopIndices.resize(op.getNumLoops(), indexConstant(b, loc, 0));
  for (auto [i, init] : llvm::enumerate(op.getDpsInitsMutable())) {
    SmallVector<Value> indices =
        mapIndices(b, loc, op.getMatchingIndexingMap(&init), loopIndices);
    Value value = totals[i];
    if (!row.filled[i])
      value = combine(
          b, loc, row.combiners[i],
          memref::LoadOp::create(b, loc, init.get(), indices), value);
    memref::StoreOp::create(b, loc, value, init.get(), indices);
  }
}

void launchOnGpu(OpBuilder &b, Location loc, const RowReduction &row,
                 int64_t threads) {
  Value one = indexConstant(b, loc, 1);
  auto launch = gpu::LaunchOp::create(
      b, loc, indexConstant(b, loc, product(row.rowShape)), one, one,
      indexConstant(b, loc, threads), one, one);
  OpBuilder in = OpBuilder::atBlockEnd(&launch.getBody().front());
  Value thread = launch.getThreadIds().x;
  SmallVector<Value> rowIndices =
      delinearize(in, loc, launch.getBlockIds().x, row.rowShape);
  SmallVector<Value> totals;
  for (auto [partial, c] :
       llvm::zip(threadPartials(in, loc, row, rowIndices, thread, threads),
                 row.combiners))
    totals.push_back(gpu::AllReduceOp::create(
        in, loc, partial,
        gpu::AllReduceOperationAttr::get(b.getContext(), c.blockReduce),
        /*uniform=*/true));
  Value first = arith::CmpIOp::create(in, loc, arith::CmpIPredicate::eq,
                                      thread, indexConstant(in, loc, 0));
  scf::IfOp::create(in, loc, first, [&](OpBuilder &tb, Location tl) {
    writeRow(tb, tl, row, rowIndices, totals);
    scf::YieldOp::create(tb, tl);
  });
  gpu::TerminatorOp::create(in, loc);
}

/// Rows one after another; each row's threads one after another, their
/// partial results kept, then combined in thread order.
void emulateOnHost(OpBuilder &b, Location loc, const RowReduction &row,
                   int64_t threads) {
  SmallVector<Value> partials;
  linalg::GenericOp op = row.op;
  for (Value init : op.getDpsInits())
    partials.push_back(memref::AllocaOp::create(
        b, loc,
        MemRefType::get({threads},
                        cast<MemRefType>(init.getType()).getElementType())));
  Value zero = indexConstant(b, loc, 0), one = indexConstant(b, loc, 1),
        count = indexConstant(b, loc, threads);
  scf::ForOp::create(
      b, loc, zero, indexConstant(b, loc, product(row.rowShape)), one,
      ValueRange{}, [&](OpBuilder &rb, Location l, Value linearRow, ValueRange) {
        SmallVector<Value> rowIndices =
            delinearize(rb, l, linearRow, row.rowShape);
        scf::ForOp::create(
            rb, l, zero, count, one, ValueRange{},
            [&](OpBuilder &tb, Location tl, Value thread, ValueRange) {
              for (auto [p, buffer] :
                   llvm::zip(threadPartials(tb, tl, row, rowIndices, thread,
                                            threads),
                             partials))
                memref::StoreOp::create(tb, tl, p, buffer, thread);
              scf::YieldOp::create(tb, tl);
            });
        SmallVector<Value> identities;
        for (auto [c, p] : llvm::zip(row.combiners, partials))
          identities.push_back(identity(
              rb, l, c, cast<MemRefType>(p.getType()).getElementType()));
        auto totals = scf::ForOp::create(
            rb, l, zero, count, one, identities,
            [&](OpBuilder &tb, Location tl, Value thread, ValueRange accs) {
              SmallVector<Value> next;
              for (auto [c, p, acc] :
                   llvm::zip(row.combiners, partials, accs))
                next.push_back(combine(
                    tb, tl, c, acc,
                    memref::LoadOp::create(tb, tl, p, thread)));
              scf::YieldOp::create(tb, tl, next);
            });
        writeRow(rb, l, row, rowIndices, totals.getResults());
        scf::YieldOp::create(rb, l);
      });
}

} // namespace

int64_t rowReductionThreads(int64_t length) {
  int64_t warps = std::clamp<int64_t>((length + 127) / 128, 1, 8);
  return 32 * warps;
}

int lowerRowReductions(ModuleOp module, RowReductionTarget target,
                       const RowReductionOptions &options) {
  std::vector<RowReduction> rows;
  module.walk([&](linalg::GenericOp op) {
    if (std::optional<RowReduction> row =
            matchRowReduction(op, options.minLength))
      rows.push_back(std::move(*row));
  });
  for (RowReduction &row : rows) {
    OpBuilder b(row.op);
    Location loc = row.op.getLoc();
    int64_t threads = options.threads > 0
                          ? options.threads
                          : rowReductionThreads(product(row.reducedShape));
    if (target == RowReductionTarget::GpuBlocks)
      launchOnGpu(b, loc, row, threads);
    else
      emulateOnHost(b, loc, row, threads);
    row.op.erase();
    for (linalg::FillOp fill : row.fills)
      fill.erase();
  }
  return rows.size();
}

} // namespace mlir::aim
