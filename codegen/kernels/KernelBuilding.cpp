//===- KernelBuilding.cpp - building blocks of hand-built kernels ---------===//
#include "codegen/kernels/KernelBuilding.h"

#include "mlir/Dialect/Affine/IR/AffineOps.h"
#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

#include "llvm/ADT/SetVector.h"
#include "mlir/Interfaces/ViewLikeInterface.h"

namespace mlir::aim {

Value rootBuffer(Value v) {
  while (auto view = v.getDefiningOp<ViewLikeOpInterface>())
    v = view.getViewSource();
  return v;
}

int64_t product(ArrayRef<int64_t> shape) {
  int64_t p = 1;
  for (int64_t s : shape)
    p *= s;
  return p;
}

Value indexConstant(OpBuilder &b, Location loc, int64_t v) {
  return arith::ConstantIndexOp::create(b, loc, v);
}

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

SmallVector<Value> mapIndices(OpBuilder &b, Location loc, AffineMap map,
                              ValueRange loopIndices) {
  SmallVector<Value> indices;
  for (unsigned i = 0; i < map.getNumResults(); ++i)
    indices.push_back(affine::AffineApplyOp::create(b, loc, map.getSubMap({i}),
                                                    loopIndices));
  return indices;
}

SmallVector<Value> applyBody(OpBuilder &b, Location loc, linalg::GenericOp op,
                             ValueRange loopIndices, ValueRange accumulators,
                             const KnownValues &known) {
  Block &body = op.getRegion().front();
  IRMapping map;
  for (OpOperand *input : op.getDpsInputOperands()) {
    Value v = input->get();
    if (Value k = known.lookup(v))
      v = k;
    else if (isa<MemRefType>(v.getType()))
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

bool alignedForVectors(MemRefType type, int64_t width) {
  SmallVector<int64_t> strides;
  int64_t offset = 0;
  Type element = type.getElementType();
  if (!(element.isF32() || element.isBF16()) || type.getRank() == 0 ||
      failed(type.getStridesAndOffset(strides, offset)) ||
      ShapedType::isDynamic(offset) || offset % width != 0 ||
      strides.back() != 1)
    return false;
  for (int64_t stride : ArrayRef<int64_t>(strides).drop_back())
    if (ShapedType::isDynamic(stride) || stride % width != 0)
      return false;
  return true;
}

void applyBodyToVectors(OpBuilder &b, Location loc, linalg::GenericOp op,
                        ValueRange loopIndices,
                        const llvm::DenseMap<Value, Value> &vectors,
                        const KnownValues &known, int64_t width) {
  SmallVector<SmallVector<Value>> lanes(op.getNumDpsInits());
  for (int64_t lane = 0; lane < width; ++lane) {
    SmallVector<Value> at(loopIndices);
    at.back() =
        arith::AddIOp::create(b, loc, at.back(), indexConstant(b, loc, lane));
    KnownValues laneValues = known;
    for (auto [input, vector] : vectors)
      laneValues[input] = vector::ExtractOp::create(b, loc, vector, lane);
    for (auto [o, value] :
         llvm::enumerate(applyBody(b, loc, op, at, {}, laneValues)))
      lanes[o].push_back(value);
  }
  for (OpOperand &init : op.getDpsInitsMutable()) {
    ArrayRef<Value> values =
        lanes[init.getOperandNumber() - op.getNumDpsInputs()];
    Type element = values.front().getType();
    auto type = VectorType::get({width}, element);
    Value vector = vector::FromElementsOp::create(b, loc, type, values);
    vector::StoreOp::create(
        b, loc, vector, init.get(),
        mapIndices(b, loc, op.getMatchingIndexingMap(&init), loopIndices),
        /*nontemporal=*/false,
        llvm::MaybeAlign(width * element.getIntOrFloatBitWidth() / 8));
  }
}

SmallVector<Value> buffersReadInBody(linalg::GenericOp op, bool &writesInBody) {
  llvm::SetVector<Value> read;
  writesInBody = false;
  op.getRegion().walk([&](Operation *inner) {
    if (auto load = dyn_cast<memref::LoadOp>(inner)) {
      if (!op->isAncestor(load.getMemref().getParentBlock()->getParentOp()))
        read.insert(load.getMemref());
      return;
    }
    auto effects = dyn_cast<MemoryEffectOpInterface>(inner);
    if ((effects && effects.hasEffect<MemoryEffects::Write>()) ||
        (!effects && !inner->hasTrait<OpTrait::HasRecursiveMemoryEffects>() &&
         !isa<linalg::YieldOp>(inner)))
      writesInBody = true;
  });
  return read.takeVector();
}

bool readsItsOutputs(linalg::GenericOp op) {
  for (OpOperand &init : op.getDpsInitsMutable())
    if (!op.getMatchingBlockArgument(&init).use_empty())
      return true;
  return false;
}

} // namespace mlir::aim
