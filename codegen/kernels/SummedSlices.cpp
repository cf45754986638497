//===- SummedSlices.cpp - slices' gradients copied, not summed ------------===//
#include "codegen/kernels/SummedSlices.h"

#include "codegen/kernels/KernelBuilding.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/Utils/StaticValueUtils.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

#include "llvm/ADT/SmallPtrSet.h"

namespace mlir::aim {

namespace {

/// A zero-padded slice: `alloc` filled with zeros, then `source` copied
/// into its `slice`.
struct PaddedSlice {
  memref::AllocOp alloc;
  linalg::FillOp fill;
  memref::SubViewOp slice;
  linalg::CopyOp copy;
  SmallVector<memref::DeallocOp> deallocs;
  SmallVector<int64_t> offsets, sizes;
};

bool isZero(Value v) {
  auto c = v.getDefiningOp<arith::ConstantOp>();
  auto f = c ? dyn_cast<FloatAttr>(c.getValue()) : FloatAttr();
  return f && f.getValue().isZero();
}

/// `v` as a padded slice whose every other use is `sum`.
std::optional<PaddedSlice> matchPaddedSlice(Value v, Operation *sum) {
  PaddedSlice p;
  p.alloc = v.getDefiningOp<memref::AllocOp>();
  if (!p.alloc || p.alloc->getBlock() != sum->getBlock())
    return std::nullopt;
  for (Operation *user : v.getUsers()) {
    if (user == sum)
      continue;
    if (auto fill = dyn_cast<linalg::FillOp>(user);
        fill && !p.fill && fill.getOutputs()[0] == v &&
        isZero(fill.getInputs()[0])) {
      p.fill = fill;
    } else if (auto slice = dyn_cast<memref::SubViewOp>(user);
               slice && !p.slice && slice->hasOneUse()) {
      p.slice = slice;
      auto copy = dyn_cast<linalg::CopyOp>(*slice->getUsers().begin());
      if (!copy || copy.getOutputs()[0] != slice.getResult())
        return std::nullopt;
      p.copy = copy;
    } else if (auto dealloc = dyn_cast<memref::DeallocOp>(user)) {
      p.deallocs.push_back(dealloc);
    } else {
      return std::nullopt;
    }
  }
  if (!p.fill || !p.slice || p.fill->getBlock() != sum->getBlock() ||
      p.copy->getBlock() != sum->getBlock() ||
      !p.fill->isBeforeInBlock(p.copy) || !p.copy->isBeforeInBlock(sum))
    return std::nullopt;
  std::optional<SmallVector<int64_t>> offsets =
      getConstantIntValues(p.slice.getMixedOffsets());
  std::optional<SmallVector<int64_t>> sizes =
      getConstantIntValues(p.slice.getMixedSizes());
  std::optional<SmallVector<int64_t>> strides =
      getConstantIntValues(p.slice.getMixedStrides());
  if (!offsets || !sizes || !strides ||
      llvm::any_of(*strides, [](int64_t s) { return s != 1; }) ||
      p.slice.getSourceType().getRank() !=
          static_cast<int64_t>(sizes->size()))
    return std::nullopt;
  p.offsets = *offsets;
  p.sizes = *sizes;
  return p;
}

bool disjoint(const PaddedSlice &a, const PaddedSlice &b) {
  for (size_t d = 0; d < a.offsets.size(); ++d)
    if (a.offsets[d] + a.sizes[d] <= b.offsets[d] ||
        b.offsets[d] + b.sizes[d] <= a.offsets[d])
      return true;
  return false;
}

/// Whether `op`'s body yields the sum of all its inputs, each once.
bool sumsItsInputs(linalg::GenericOp op) {
  Block &body = op.getRegion().front();
  auto yield = cast<linalg::YieldOp>(body.getTerminator());
  if (yield.getValues().size() != 1)
    return false;
  SmallVector<Value> pending{yield.getValues()[0]};
  llvm::SmallPtrSet<void *, 8> leaves;
  unsigned adds = 0;
  while (!pending.empty()) {
    Value v = pending.pop_back_val();
    if (auto add = v.getDefiningOp<arith::AddFOp>();
        add && add->getBlock() == &body) {
      ++adds;
      pending.append({add.getLhs(), add.getRhs()});
      continue;
    }
    auto arg = dyn_cast<BlockArgument>(v);
    if (!arg || arg.getOwner() != &body ||
        arg.getArgNumber() >= op.getNumDpsInputs() ||
        !leaves.insert(arg.getAsOpaquePointer()).second)
      return false;
  }
  return leaves.size() == op.getNumDpsInputs() &&
         body.getOperations().size() == adds + 1;
}

bool rewrite(linalg::GenericOp op) {
  if (!op.hasPureBufferSemantics() || op.getNumDpsInputs() < 2 ||
      op.getNumDpsInits() != 1 ||
      op.getNumParallelLoops() != op.getNumLoops() ||
      !llvm::all_of(op.getIndexingMapsArray(),
                    [](AffineMap m) { return m.isIdentity(); }) ||
      !sumsItsInputs(op))
    return false;
  Value out = op.getDpsInits()[0];
  auto outType = dyn_cast<MemRefType>(out.getType());
  if (!outType || !outType.hasStaticShape())
    return false;
  SmallVector<PaddedSlice> slices;
  for (Value input : op.getDpsInputs()) {
    std::optional<PaddedSlice> p = matchPaddedSlice(input, op);
    if (!p || rootBuffer(p->copy.getInputs()[0]) == rootBuffer(out))
      return false;
    slices.push_back(*p);
  }
  int64_t covered = 0;
  for (size_t i = 0; i < slices.size(); ++i) {
    for (size_t j = 0; j < i; ++j)
      if (!disjoint(slices[i], slices[j]))
        return false;
    covered += product(slices[i].sizes);
  }
  // Between the first fill and the sum only these ops and pure ones (views,
  // constants, allocations): the copies may move to the sum.
  llvm::SmallPtrSet<Operation *, 16> own;
  Operation *first = op;
  for (PaddedSlice &p : slices) {
    own.insert({p.fill, p.copy, p.slice, p.alloc});
    if (p.fill->isBeforeInBlock(first))
      first = p.fill;
  }
  for (Operation *o = first; o != op; o = o->getNextNode())
    if (!own.contains(o) && !isPure(o) && !isa<memref::AllocOp>(o))
      return false;

  OpBuilder b(op);
  Location loc = op.getLoc();
  if (covered != product(outType.getShape())) {
    Value zero = arith::ConstantOp::create(b, loc, b.getFloatAttr(
                                                       outType.getElementType(), 0.0));
    linalg::FillOp::create(b, loc, zero, out);
  }
  for (PaddedSlice &p : slices) {
    auto place = memref::SubViewOp::create(
        b, loc, out, p.slice.getMixedOffsets(), p.slice.getMixedSizes(),
        p.slice.getMixedStrides());
    linalg::CopyOp::create(b, loc, p.copy.getInputs()[0], place.getResult());
  }
  op.erase();
  for (PaddedSlice &p : slices) {
    p.copy.erase();
    p.slice.erase();
    p.fill.erase();
    for (memref::DeallocOp d : p.deallocs)
      d.erase();
    p.alloc.erase();
  }
  return true;
}

} // namespace

int copySlicesInsteadOfSummingPads(ModuleOp module) {
  SmallVector<linalg::GenericOp> candidates;
  module.walk([&](linalg::GenericOp op) { candidates.push_back(op); });
  int rewritten = 0;
  for (linalg::GenericOp op : candidates)
    rewritten += rewrite(op);
  return rewritten;
}

} // namespace mlir::aim
