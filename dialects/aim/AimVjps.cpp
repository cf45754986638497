//===- AimVjps.cpp - vector-Jacobian products of the aim ops --------------===//
//
// Each differentiable op's DifferentiableOpInterface::buildVjp: given the
// gradients of its results, build the gradients of the operands asked for.
// The math of each backward op is in its ODS description; here is only which
// backward ops a rule builds and how shapes are matched.
//
//===----------------------------------------------------------------------===//

#include "dialects/aim/AimOps.h"
#include "mlir/Dialect/Shard/IR/ShardOps.h"

using namespace mlir;
using namespace mlir::aim;

namespace {
RankedTensorType tensorType(Value v) {
  return cast<RankedTensorType>(v.getType());
}

/// `value` reshaped to `type`, or `value` itself when it already has it.
Value reshapeTo(OpBuilder &b, Location loc, Value value, Type type) {
  if (value.getType() == type)
    return value;
  return ReshapeOp::create(b, loc, type, value);
}

/// Collapses all leading dimensions: [..., last] -> [rows, last].
Value flattenTo2d(OpBuilder &b, Location loc, Value value) {
  auto type = tensorType(value);
  int64_t last = type.getShape().back();
  auto flat = RankedTensorType::get({type.getNumElements() / last, last},
                                    type.getElementType());
  return reshapeTo(b, loc, value, flat);
}

/// The operand-gradient list of an op whose operands get none.
void appendNoGradients(SmallVectorImpl<Value> &operandGrads, size_t count) {
  operandGrads.append(count, Value());
}
} // namespace

LogicalResult ReshapeOp::buildVjp(OpBuilder &b, ValueRange resultGrads,
                                  ArrayRef<bool> want,
                                  SmallVectorImpl<Value> &operandGrads) {
  operandGrads.push_back(
      want[0] ? reshapeTo(b, getLoc(), resultGrads[0], getInput().getType())
              : Value());
  return success();
}

LogicalResult SliceOp::buildVjp(OpBuilder &b, ValueRange resultGrads,
                                ArrayRef<bool> want,
                                SmallVectorImpl<Value> &operandGrads) {
  if (!want[0]) {
    appendNoGradients(operandGrads, 1);
    return success();
  }
  int64_t extent = tensorType(getInput()).getDimSize(getDim());
  int64_t after = extent - static_cast<int64_t>(getOffset() + getSize());
  operandGrads.push_back(PadOp::create(b, getLoc(), getInput().getType(),
                                       resultGrads[0], getDim(), getOffset(),
                                       after));
  return success();
}

LogicalResult CastOp::buildVjp(OpBuilder &b, ValueRange resultGrads,
                               ArrayRef<bool> want,
                               SmallVectorImpl<Value> &operandGrads) {
  operandGrads.push_back(
      want[0]
          ? CastOp::create(b, getLoc(), getInput().getType(), resultGrads[0])
                .getResult()
          : Value());
  return success();
}

LogicalResult LinearOp::buildVjp(OpBuilder &b, ValueRange resultGrads,
                                 ArrayRef<bool> want,
                                 SmallVectorImpl<Value> &operandGrads) {
  // y = x W^T (+ b) over rows r of the flattened leading dimensions:
  // dx = dy W, dW = dy^T x, db = sum_r dy.
  Location loc = getLoc();
  Value dy2 = flattenTo2d(b, loc, resultGrads[0]);
  auto dy2Type = tensorType(dy2);
  Value dx, dw, db;
  if (want[0]) {
    auto inType = tensorType(getInput());
    auto dx2Type =
        RankedTensorType::get({dy2Type.getDimSize(0), inType.getShape().back()},
                              inType.getElementType());
    Value dx2 = MatmulOp::create(b, loc, dx2Type, dy2, getWeight(),
                                 /*transpose_lhs=*/false,
                                 /*transpose_rhs=*/false);
    dx = reshapeTo(b, loc, dx2, inType);
  }
  if (want[1]) {
    Value x2 = flattenTo2d(b, loc, getInput());
    dw = MatmulOp::create(b, loc, getWeight().getType(), dy2, x2,
                          /*transpose_lhs=*/true, /*transpose_rhs=*/false);
  }
  if (getBias() && want[2])
    db = SumLeadingOp::create(b, loc, getBias().getType(), resultGrads[0]);
  operandGrads.append({dx, dw});
  if (getBias())
    operandGrads.push_back(db);
  return success();
}

LogicalResult LayerNormOp::buildVjp(OpBuilder &b, ValueRange resultGrads,
                                    ArrayRef<bool> want,
                                    SmallVectorImpl<Value> &operandGrads) {
  auto grads = LayerNormGradOp::create(
      b, getLoc(), getInput().getType(), getWeight().getType(),
      getBias().getType(), resultGrads[0], getInput(), getWeight(),
      getEpsilonAttr());
  operandGrads.push_back(want[0] ? grads.getInputGrad() : Value());
  operandGrads.push_back(want[1] ? grads.getWeightGrad() : Value());
  operandGrads.push_back(want[2] ? grads.getBiasGrad() : Value());
  return success();
}

LogicalResult AddOp::buildVjp(OpBuilder &b, ValueRange resultGrads,
                              ArrayRef<bool> want,
                              SmallVectorImpl<Value> &operandGrads) {
  Value grad = resultGrads[0];
  operandGrads.push_back(want[0] ? grad : Value());
  if (!want[1])
    operandGrads.push_back(Value());
  else if (getRhs().getType() == grad.getType())
    operandGrads.push_back(grad);
  else // rhs was broadcast over the leading dimensions: sum them away
    operandGrads.push_back(
        SumLeadingOp::create(b, getLoc(), getRhs().getType(), grad));
  return success();
}

LogicalResult GeluOp::buildVjp(OpBuilder &b, ValueRange resultGrads,
                               ArrayRef<bool> want,
                               SmallVectorImpl<Value> &operandGrads) {
  operandGrads.push_back(
      want[0] ? GeluGradOp::create(b, getLoc(), getInput().getType(),
                                   resultGrads[0], getInput(),
                                   getApproximationAttr())
                    .getResult()
              : Value());
  return success();
}

LogicalResult AttentionOp::buildVjp(OpBuilder &b, ValueRange resultGrads,
                                    ArrayRef<bool> want,
                                    SmallVectorImpl<Value> &operandGrads) {
  if (resultGrads[1])
    return emitOpError() << "cannot differentiate through row_logsumexp: it "
                            "is a statistic for the backward pass only";
  auto grads = AttentionGradOp::create(
      b, getLoc(), getQuery().getType(), getKey().getType(),
      getValue().getType(), resultGrads[0], getQuery(), getKey(), getValue(),
      getResult(), getRowLogsumexp(), getPrefix(), getHeadsAttr(),
      getMaskAttr(), getScaleAttr(), getTileEmptyFromAttr(),
      getTileFullUntilAttr(), getLiveQueriesAttr());
  operandGrads.push_back(want[0] ? grads.getQueryGrad() : Value());
  operandGrads.push_back(want[1] ? grads.getKeyGrad() : Value());
  operandGrads.push_back(want[2] ? grads.getValueGrad() : Value());
  if (getPrefix())
    operandGrads.push_back(Value()); // integer lengths: no gradient
  return success();
}

LogicalResult
NormalizedPixelLossOp::buildVjp(OpBuilder &b, ValueRange resultGrads,
                                ArrayRef<bool> want,
                                SmallVectorImpl<Value> &operandGrads) {
  if (want[1])
    return emitOpError() << "the gradient with respect to the target is not "
                            "implemented: targets come from the images, which "
                            "no parameter influences";
  operandGrads.push_back(
      want[0] ? NormalizedPixelLossGradOp::create(
                    b, getLoc(), getPrediction().getType(), resultGrads[0],
                    getPrediction(), getTarget(), getPrefix(), getEpsilonAttr())
                    .getResult()
              : Value());
  operandGrads.append({Value(), Value()});
  return success();
}

LogicalResult GatherLiveRowsOp::buildVjp(OpBuilder &b, ValueRange resultGrads,
                                         ArrayRef<bool> want,
                                         SmallVectorImpl<Value> &operandGrads) {
  if (want[0] && tensorType(getInput()).getRank() != 3)
    return emitOpError() << "the gradient of a row gather from a shared [N, D] "
                            "input is not implemented";
  operandGrads.push_back(
      want[0] ? ScatterLiveRowsOp::create(b, getLoc(), getInput().getType(),
                                          resultGrads[0], getPrefix())
                    .getResult()
              : Value());
  operandGrads.push_back(Value()); // integer lengths: no gradient
  return success();
}

LogicalResult
ScatterLiveRowsOp::buildVjp(OpBuilder &b, ValueRange resultGrads,
                            ArrayRef<bool> want,
                            SmallVectorImpl<Value> &operandGrads) {
  operandGrads.push_back(
      want[0] ? GatherLiveRowsOp::create(b, getLoc(), getInput().getType(),
                                         resultGrads[0], getPrefix())
                    .getResult()
              : Value());
  operandGrads.push_back(Value());
  return success();
}

//===----------------------------------------------------------------------===//
// Distribution (aim-shard)
//===----------------------------------------------------------------------===//

LogicalResult EnterPartialOp::buildVjp(OpBuilder &b, ValueRange resultGrads,
                                       ArrayRef<bool> want,
                                       SmallVectorImpl<Value> &operandGrads) {
  // Each rank's cotangent covers only its part of the computation: the whole
  // one is their sum.
  operandGrads.push_back(
      want[0] ? shard::AllReduceOp::create(b, getLoc(), resultGrads[0],
                                           getGrid(), getGridAxes(),
                                           shard::ReductionKind::Sum)
                    .getResult()
              : Value());
  return success();
}

LogicalResult ReweightOp::buildVjp(OpBuilder &b, ValueRange resultGrads,
                                   ArrayRef<bool> want,
                                   SmallVectorImpl<Value> &operandGrads) {
  operandGrads.push_back(
      want[0] ? ReweightOp::create(b, getLoc(), getType(), resultGrads[0],
                                   getWeight(), getTotal())
                    .getResult()
              : Value());
  appendNoGradients(operandGrads, 2); // counts
  return success();
}

namespace {
/// shard.all_reduce (sum) in a per-rank forward: its result is the same on
/// every rank of the group and so is the cotangent that reaches it; each
/// rank's input entered the sum once, so its gradient is that cotangent.
struct AllReduceVjp
    : public DifferentiableOpInterface::ExternalModel<AllReduceVjp,
                                                      shard::AllReduceOp> {
  LogicalResult buildVjp(Operation *op, OpBuilder &b, ValueRange resultGrads,
                         ArrayRef<bool> want,
                         SmallVectorImpl<Value> &operandGrads) const {
    auto reduce = cast<shard::AllReduceOp>(op);
    if (reduce.getReduction() != shard::ReductionKind::Sum ||
        reduce.getInput().getType() != reduce.getType())
      return reduce.emitOpError()
             << "is differentiable only as a sum of one type";
    operandGrads.push_back(want[0] ? resultGrads[0] : Value());
    return success();
  }
};
} // namespace

void mlir::aim::attachShardVjps(MLIRContext &context) {
  shard::AllReduceOp::attachInterface<AllReduceVjp>(context);
}
