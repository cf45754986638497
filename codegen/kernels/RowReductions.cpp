//===- RowReductions.cpp - reductions along rows by whole blocks ----------===//
#include "codegen/kernels/RowReductions.h"

#include "codegen/kernels/KernelBuilding.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"

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

struct RowReduction {
  linalg::GenericOp op;
  unsigned parallelLoops;
  SmallVector<int64_t> rowShape;     // the parallel loops' ranges
  SmallVector<int64_t> reducedShape; // the reduction loops' ranges
  SmallVector<Combiner> combiners;   // one an output
  SmallVector<linalg::FillOp> fills; // dropped: written, not combined into
  SmallVector<bool> filled;          // one an output
};

/// One step of a row kernel: a reduction of the row, an op on the row's
/// scalars (the parallel loops only: LayerNorm's mean from the sum), or an
/// element-wise op over the row (the parallel loops, then loops of the
/// reduced dimensions' ranges: the normalised row).
struct RowStage {
  enum Kind { Reduction, RowWise, ElementWise } kind;
  linalg::GenericOp op;
  std::optional<RowReduction> reduction;
};

/// A reduction and the stages after it that one block a row can run:
/// LayerNorm forward and backward, softmax. Thread t handles elements t,
/// t + T, ... of the row in every stage, so an element one stage writes is
/// read in a later one by the thread that wrote it; row results are in every
/// thread's registers after their block reduction.
struct RowKernel {
  SmallVector<int64_t> rowShape, reducedShape;
  std::vector<RowStage> stages;
};

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
  bool writesInBody = false;
  buffersReadInBody(op, writesInBody);
  if (!op.hasPureBufferSemantics() || op.getNumDpsInits() == 0 ||
      writesInBody || op->getParentOfType<gpu::LaunchOp>())
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

/// Whether `map` takes the parallel loops 0 .. rank-1 of a row kernel to a
/// buffer of the row's scalars, in order.
bool isRowMap(AffineMap map, size_t rank) {
  if (map.getNumResults() != rank)
    return false;
  for (unsigned i = 0; i < rank; ++i)
    if (map.getResult(i) != getAffineDimExpr(i, map.getContext()))
      return false;
  return true;
}

/// What the stages of a row kernel so far read and write, to admit a next
/// stage only if every thread can run it after them without waiting for
/// another thread's element.
class StageDependences {
public:
  explicit StageDependences(size_t rowRank) : rowRank(rowRank) {}

  bool admits(linalg::GenericOp op, RowStage::Kind kind) const {
    // Buffers the body loads itself: at indices of its own, so only if no
    // stage before writes them.
    bool writesInBody = false;
    for (Value v : buffersReadInBody(op, writesInBody))
      if (written.contains(rootBuffer(v)))
        return false;
    if (writesInBody)
      return false;
    for (OpOperand *input : op.getDpsInputOperands()) {
      Value v = input->get();
      if (!isa<MemRefType>(v.getType()))
        continue;
      AffineMap map = op.getMatchingIndexingMap(input);
      if (rowScalars.contains(v)) {
        if (!isRowMap(map, rowRank))
          return false;
      } else if (auto it = elements.find(v); it != elements.end()) {
        // Only where the thread that wrote it reads it.
        if (kind == RowStage::RowWise || it->second != map)
          return false;
      } else if (written.contains(rootBuffer(v))) {
        return false; // a view of something written: not analysed
      }
    }
    for (OpOperand &init : op.getDpsInitsMutable()) {
      Value root = rootBuffer(init.get());
      if (read.contains(root) || written.contains(root))
        return false;
      AffineMap map = op.getMatchingIndexingMap(&init);
      if (kind == RowStage::ElementWise && !map.isPermutation())
        return false;
      if (kind == RowStage::RowWise && !isRowMap(map, rowRank))
        return false;
    }
    return true;
  }

  void add(const RowStage &stage) {
    linalg::GenericOp op = stage.op;
    for (OpOperand *input : op.getDpsInputOperands())
      if (isa<MemRefType>(input->get().getType()))
        read.insert(rootBuffer(input->get()));
    bool writesInBody = false;
    for (Value v : buffersReadInBody(op, writesInBody))
      read.insert(rootBuffer(v));
    for (auto [i, init] : llvm::enumerate(op.getDpsInitsMutable())) {
      written.insert(rootBuffer(init.get()));
      AffineMap map = op.getMatchingIndexingMap(&init);
      if (stage.kind == RowStage::ElementWise)
        elements[init.get()] = map;
      else if (isRowMap(map, rowRank))
        rowScalars.insert(init.get());
    }
  }

private:
  size_t rowRank;
  llvm::DenseSet<Value> read, written; // root buffers
  llvm::DenseSet<Value> rowScalars;    // in registers after their stage
  llvm::DenseMap<Value, AffineMap> elements; // written element-wise, by map
};

/// The stage `op` would be in a kernel of rows `rowShape` reducing
/// `reducedShape`, if any.
std::optional<RowStage::Kind>
stageKind(linalg::GenericOp op, ArrayRef<int64_t> rowShape,
          ArrayRef<int64_t> reducedShape,
          const llvm::DenseMap<Operation *, RowReduction> &reductions) {
  if (auto it = reductions.find(op); it != reductions.end())
    return it->second.rowShape == rowShape &&
                   it->second.reducedShape == reducedShape
               ? std::optional(RowStage::Reduction)
               : std::nullopt;
  if (!op.hasPureBufferSemantics() || readsItsOutputs(op) ||
      op.getNumParallelLoops() != op.getNumLoops())
    return std::nullopt;
  SmallVector<int64_t> ranges = op.getStaticLoopRanges();
  SmallVector<int64_t> elementShape(rowShape);
  llvm::append_range(elementShape, reducedShape);
  if (ArrayRef<int64_t>(ranges) == rowShape)
    return RowStage::RowWise;
  if (ArrayRef<int64_t>(ranges) == ArrayRef<int64_t>(elementShape))
    return RowStage::ElementWise;
  return std::nullopt;
}

/// The row kernel of `first`: it and the stages after it in its block (pure
/// ops such as constants and views in between are passed over, so are
/// allocations and the fills a next reduction drops), and element-wise
/// stages just before it not `taken` by an earlier kernel.
RowKernel formRowKernel(
    const RowReduction &first,
    const llvm::DenseMap<Operation *, RowReduction> &reductions,
    const llvm::DenseSet<Operation *> &taken) {
  RowKernel kernel{first.rowShape, first.reducedShape, {}};
  StageDependences dependences(first.rowShape.size());
  // Element-wise ops over the same rows just before it (softmax's scaling
  // of the scores) join too: as many of the nearest as can run first.
  SmallVector<linalg::GenericOp> before; // nearest first
  for (Operation *prev = first.op->getPrevNode(); prev;
       prev = prev->getPrevNode()) {
    if (auto fill = dyn_cast<linalg::FillOp>(prev)) {
      if (llvm::is_contained(first.fills, fill))
        continue;
      break;
    }
    if (isPure(prev) || isa<memref::AllocOp>(prev))
      continue;
    auto op = dyn_cast<linalg::GenericOp>(prev);
    if (!op || taken.contains(op) ||
        stageKind(op, kernel.rowShape, kernel.reducedShape, reductions) !=
            RowStage::ElementWise)
      break;
    before.push_back(op);
  }
  for (; !before.empty(); before.pop_back()) {
    StageDependences trial(first.rowShape.size());
    bool admitted = true;
    for (linalg::GenericOp op : llvm::reverse(before)) {
      admitted = trial.admits(op, RowStage::ElementWise);
      if (!admitted)
        break;
      trial.add({RowStage::ElementWise, op, std::nullopt});
    }
    if (admitted && trial.admits(first.op, RowStage::Reduction)) {
      for (linalg::GenericOp op : llvm::reverse(before))
        kernel.stages.push_back({RowStage::ElementWise, op, std::nullopt});
      dependences = trial;
      break;
    }
  }
  kernel.stages.push_back({RowStage::Reduction, first.op, first});
  dependences.add(kernel.stages.back());
  for (Operation *next = first.op->getNextNode(); next;
       next = next->getNextNode()) {
    if (auto fill = dyn_cast<linalg::FillOp>(next)) {
      Operation *after = next->getNextNode();
      while (after && (isPure(after) || isa<linalg::FillOp, memref::AllocOp>(after)))
        after = after->getNextNode();
      auto it = after ? reductions.find(after) : reductions.end();
      if (it == reductions.end() || !llvm::is_contained(it->second.fills, fill))
        break;
      continue;
    }
    // New buffers may be passed over too (the kernel goes after them); a
    // deallocation may not (an earlier stage, moved after it, would read
    // freed memory).
    if (isPure(next) || isa<memref::AllocOp>(next))
      continue;
    auto op = dyn_cast<linalg::GenericOp>(next);
    std::optional<RowStage::Kind> kind =
        op ? stageKind(op, kernel.rowShape, kernel.reducedShape, reductions)
           : std::nullopt;
    if (!kind || !dependences.admits(op, *kind))
      break;
    std::optional<RowReduction> reduction;
    if (*kind == RowStage::Reduction)
      reduction = reductions.lookup(op);
    kernel.stages.push_back({*kind, op, reduction});
    dependences.add(kernel.stages.back());
  }
  // Trailing stages of the row's scalars alone are cheaper as they were.
  while (kernel.stages.back().kind == RowStage::RowWise)
    kernel.stages.pop_back();
  return kernel;
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

/// Thread `thread` of `threads` takes elements thread, thread + threads, ...
/// of a row of `length`: calls `element` with each one's linear index and
/// the values carried from the one before (starting from `initial`).
SmallVector<Value> strideRow(
    OpBuilder &b, Location loc, int64_t length, Value thread, int64_t threads,
    ValueRange initial,
    function_ref<SmallVector<Value>(OpBuilder &, Location, Value, ValueRange)>
        element) {
  int64_t trips = (length + threads - 1) / threads;
  Value count = indexConstant(b, loc, threads);
  auto loop = scf::ForOp::create(
      b, loc, indexConstant(b, loc, 0), indexConstant(b, loc, trips),
      indexConstant(b, loc, 1), initial,
      [&](OpBuilder &lb, Location l, Value trip, ValueRange carried) {
        Value linear = arith::AddIOp::create(
            lb, l, arith::MulIOp::create(lb, l, trip, count), thread);
        if (length % threads == 0) {
          scf::YieldOp::create(lb, l, element(lb, l, linear, carried));
          return;
        }
        // The last trip's threads past the row's end carry on unchanged.
        Value inside = arith::CmpIOp::create(lb, l, arith::CmpIPredicate::ult,
                                             linear,
                                             indexConstant(lb, l, length));
        auto guarded = scf::IfOp::create(
            lb, l, inside,
            [&](OpBuilder &tb, Location tl) {
              scf::YieldOp::create(tb, tl, element(tb, tl, linear, carried));
            },
            [&](OpBuilder &eb, Location el) {
              scf::YieldOp::create(eb, el, carried);
            });
        scf::YieldOp::create(lb, l, guarded.getResults());
      });
  return loop.getResults();
}

/// Thread `thread`'s elements of the row, combined from the identities.
SmallVector<Value> threadPartials(OpBuilder &b, Location loc,
                                  const RowReduction &row, ValueRange rowIndices,
                                  Value thread, int64_t threads,
                                  const KnownValues &rowValues) {
  linalg::GenericOp op = row.op;
  SmallVector<Value> identities;
  for (auto [c, init] : llvm::zip(row.combiners, op.getDpsInits()))
    identities.push_back(identity(
        b, loc, c, cast<MemRefType>(init.getType()).getElementType()));
  return strideRow(
      b, loc, product(row.reducedShape), thread, threads, identities,
      [&](OpBuilder &eb, Location el, Value linear, ValueRange accs) {
        SmallVector<Value> indices(rowIndices);
        llvm::append_range(indices,
                           delinearize(eb, el, linear, row.reducedShape));
        return applyBody(eb, el, op, indices, accs, rowValues);
      });
}

/// Thread `thread`'s elements of an element-wise stage, computed and stored.
void elementwisePass(OpBuilder &b, Location loc, linalg::GenericOp op,
                     ArrayRef<int64_t> reducedShape, ValueRange rowIndices,
                     Value thread, int64_t threads,
                     const KnownValues &rowValues) {
  strideRow(b, loc, product(reducedShape), thread, threads, ValueRange{},
            [&](OpBuilder &eb, Location el, Value linear, ValueRange) {
              SmallVector<Value> indices(rowIndices);
              llvm::append_range(indices,
                                 delinearize(eb, el, linear, reducedShape));
              SmallVector<Value> results =
                  applyBody(eb, el, op, indices, {}, rowValues);
              for (auto [init, value] :
                   llvm::zip(op.getDpsInitsMutable(), results))
                memref::StoreOp::create(
                    eb, el, value, init.get(),
                    mapIndices(eb, el, op.getMatchingIndexingMap(&init),
                               indices));
              return SmallVector<Value>{};
            });
}

/// A stored row result: written once a row, by the block's first thread.
struct RowStore {
  Value value, buffer;
  SmallVector<Value> indices;
};

/// Each thread's partials of a reduction combined into the row's totals:
/// across the block on a GPU, in thread order on the host.
using CombineThreads = function_ref<SmallVector<Value>(
    OpBuilder &, Location, const RowReduction &, ValueRange rowIndices,
    const KnownValues &)>;
/// An element-wise stage run by every thread of the row.
using RunThreads = function_ref<void(OpBuilder &, Location, linalg::GenericOp,
                                     ValueRange rowIndices, const KnownValues &)>;

/// The stages of `kernel` for one row, in order; returns the row results to
/// store.
SmallVector<RowStore> emitStages(OpBuilder &b, Location loc,
                                 const RowKernel &kernel, ValueRange rowIndices,
                                 CombineThreads combineThreads,
                                 RunThreads runThreads) {
  KnownValues rowValues;
  SmallVector<RowStore> stores;
  // Outputs' maps use the parallel loops only: pad the other indices.
  auto outputIndices = [&](linalg::GenericOp op, OpOperand &init) {
    SmallVector<Value> loopIndices(rowIndices);
    loopIndices.resize(op.getNumLoops(), indexConstant(b, loc, 0));
    return mapIndices(b, loc, op.getMatchingIndexingMap(&init), loopIndices);
  };
  for (const RowStage &stage : kernel.stages) {
    linalg::GenericOp op = stage.op;
    switch (stage.kind) {
    case RowStage::Reduction: {
      const RowReduction &row = *stage.reduction;
      SmallVector<Value> totals =
          combineThreads(b, loc, row, rowIndices, rowValues);
      for (auto [i, init] : llvm::enumerate(op.getDpsInitsMutable())) {
        SmallVector<Value> indices = outputIndices(op, init);
        Value value = totals[i];
        if (!row.filled[i]) // combined with what the output holds
          value = combine(b, loc, row.combiners[i],
                          memref::LoadOp::create(b, loc, init.get(), indices),
                          value);
        stores.push_back({value, init.get(), indices});
        rowValues[init.get()] = value;
      }
      break;
    }
    case RowStage::RowWise: {
      SmallVector<Value> results =
          applyBody(b, loc, op, rowIndices, {}, rowValues);
      for (auto [init, value] : llvm::zip(op.getDpsInitsMutable(), results)) {
        stores.push_back({value, init.get(), outputIndices(op, init)});
        rowValues[init.get()] = value;
      }
      break;
    }
    case RowStage::ElementWise:
      runThreads(b, loc, op, rowIndices, rowValues);
      break;
    }
  }
  return stores;
}

void launchOnGpu(OpBuilder &b, Location loc, const RowKernel &kernel,
                 int64_t threads) {
  Value one = indexConstant(b, loc, 1);
  auto launch = gpu::LaunchOp::create(
      b, loc, indexConstant(b, loc, product(kernel.rowShape)), one, one,
      indexConstant(b, loc, threads), one, one);
  OpBuilder in = OpBuilder::atBlockEnd(&launch.getBody().front());
  Value thread = launch.getThreadIds().x;
  SmallVector<Value> rowIndices =
      delinearize(in, loc, launch.getBlockIds().x, kernel.rowShape);
  SmallVector<RowStore> stores = emitStages(
      in, loc, kernel, rowIndices,
      [&](OpBuilder &sb, Location sl, const RowReduction &row,
          ValueRange indices, const KnownValues &rowValues) {
        SmallVector<Value> totals;
        for (auto [partial, c] :
             llvm::zip(threadPartials(sb, sl, row, indices, thread, threads,
                                      rowValues),
                       row.combiners))
          totals.push_back(gpu::AllReduceOp::create(
              sb, sl, partial,
              gpu::AllReduceOperationAttr::get(sb.getContext(), c.blockReduce),
              /*uniform=*/true));
        return totals;
      },
      [&](OpBuilder &sb, Location sl, linalg::GenericOp op,
          ValueRange indices, const KnownValues &rowValues) {
        elementwisePass(sb, sl, op, kernel.reducedShape, indices, thread,
                        threads, rowValues);
      });
  Value first = arith::CmpIOp::create(in, loc, arith::CmpIPredicate::eq,
                                      thread, indexConstant(in, loc, 0));
  scf::IfOp::create(in, loc, first, [&](OpBuilder &tb, Location tl) {
    for (const RowStore &s : stores)
      memref::StoreOp::create(tb, tl, s.value, s.buffer, s.indices);
    scf::YieldOp::create(tb, tl);
  });
  gpu::TerminatorOp::create(in, loc);
}

/// Rows one after another; in each stage the row's threads one after
/// another, a reduction's partials kept and then combined in thread order.
void emulateOnHost(OpBuilder &b, Location loc, const RowKernel &kernel,
                   int64_t threads) {
  Value zero = indexConstant(b, loc, 0), one = indexConstant(b, loc, 1),
        count = indexConstant(b, loc, threads);
  auto forEachThread = [&](OpBuilder &sb, Location sl,
                           function_ref<void(OpBuilder &, Location, Value)>
                               body) {
    scf::ForOp::create(sb, sl, zero, count, one, ValueRange{},
                       [&](OpBuilder &tb, Location tl, Value thread,
                           ValueRange) {
                         body(tb, tl, thread);
                         scf::YieldOp::create(tb, tl);
                       });
  };
  // Each reduction's partials, one a thread, at the function's start (an
  // alloca in a loop would take stack every iteration).
  llvm::DenseMap<Operation *, SmallVector<Value>> partialsOf;
  auto function = kernel.stages.front().op->getParentOfType<func::FuncOp>();
  OpBuilder atStart = OpBuilder::atBlockBegin(&function.front());
  for (const RowStage &stage : kernel.stages) {
    if (stage.kind != RowStage::Reduction)
      continue;
    linalg::GenericOp op = stage.op;
    for (Value init : op.getDpsInits())
      partialsOf[op].push_back(memref::AllocaOp::create(
          atStart, loc,
          MemRefType::get({threads},
                          cast<MemRefType>(init.getType()).getElementType())));
  }
  scf::ForOp::create(
      b, loc, zero, indexConstant(b, loc, product(kernel.rowShape)), one,
      ValueRange{}, [&](OpBuilder &rb, Location l, Value linearRow, ValueRange) {
        SmallVector<Value> rowIndices =
            delinearize(rb, l, linearRow, kernel.rowShape);
        SmallVector<RowStore> stores = emitStages(
            rb, l, kernel, rowIndices,
            [&](OpBuilder &sb, Location sl, const RowReduction &row,
                ValueRange indices, const KnownValues &rowValues) {
              linalg::GenericOp op = row.op;
              const SmallVector<Value> &partials =
                  partialsOf.find(op.getOperation())->second;
              forEachThread(sb, sl, [&](OpBuilder &tb, Location tl,
                                        Value thread) {
                for (auto [p, buffer] :
                     llvm::zip(threadPartials(tb, tl, row, indices, thread,
                                              threads, rowValues),
                               partials))
                  memref::StoreOp::create(tb, tl, p, buffer, thread);
              });
              SmallVector<Value> identities;
              for (auto [c, p] : llvm::zip(row.combiners, partials))
                identities.push_back(identity(
                    sb, sl, c,
                    cast<MemRefType>(p.getType()).getElementType()));
              auto totals = scf::ForOp::create(
                  sb, sl, zero, count, one, identities,
                  [&](OpBuilder &tb, Location tl, Value thread,
                      ValueRange accs) {
                    SmallVector<Value> next;
                    for (auto [c, p, acc] :
                         llvm::zip(row.combiners, partials, accs))
                      next.push_back(combine(
                          tb, tl, c, acc,
                          memref::LoadOp::create(tb, tl, p, thread)));
                    scf::YieldOp::create(tb, tl, next);
                  });
              return SmallVector<Value>(totals.getResults());
            },
            [&](OpBuilder &sb, Location sl, linalg::GenericOp op,
                ValueRange indices, const KnownValues &rowValues) {
              forEachThread(sb, sl, [&](OpBuilder &tb, Location tl,
                                        Value thread) {
                elementwisePass(tb, tl, op, kernel.reducedShape, indices,
                                thread, threads, rowValues);
              });
            });
        for (const RowStore &s : stores)
          memref::StoreOp::create(rb, l, s.value, s.buffer, s.indices);
        scf::YieldOp::create(rb, l);
      });
}

} // namespace

int64_t rowReductionThreads(int64_t length) {
  int64_t warps = std::clamp<int64_t>((length + 127) / 128, 1, 8);
  return 32 * warps;
}

int lowerRowReductions(ModuleOp module, KernelTarget target,
                       const RowReductionOptions &options) {
  llvm::DenseMap<Operation *, RowReduction> reductions;
  SmallVector<Operation *> order;
  module.walk([&](linalg::GenericOp op) {
    if (std::optional<RowReduction> row =
            matchRowReduction(op, options.minLength)) {
      reductions[op] = std::move(*row);
      order.push_back(op);
    }
  });
  std::vector<RowKernel> kernels;
  llvm::DenseSet<Operation *> taken;
  for (Operation *op : order) {
    if (taken.contains(op))
      continue;
    kernels.push_back(
        formRowKernel(reductions.find(op)->second, reductions, taken));
    for (const RowStage &stage : kernels.back().stages)
      taken.insert(stage.op);
  }
  for (RowKernel &kernel : kernels) {
    // After the last stage: every stage's operands are defined there.
    OpBuilder b(kernel.stages.back().op);
    Location loc = kernel.stages.front().op.getLoc();
    int64_t threads = options.threads > 0
                          ? options.threads
                          : rowReductionThreads(product(kernel.reducedShape));
    if (target == KernelTarget::GpuLaunch)
      launchOnGpu(b, loc, kernel, threads);
    else
      emulateOnHost(b, loc, kernel, threads);
    for (RowStage &stage : kernel.stages) {
      stage.op.erase();
      if (stage.reduction)
        for (linalg::FillOp fill : stage.reduction->fills)
          fill.erase();
    }
  }
  return kernels.size();
}

} // namespace mlir::aim
