//===- BuildTrainStep.cpp - @train_step: clipping and AdamW ---------------===//
//
// @loss_and_grads -> @train_step. The step calls @loss_and_grads, measures the
// global gradient norm, computes the clipping factor and updates every
// parameter and its optimiser state with one aim.adamw each (AIM.md, "Training
// recipe"). A later fusion pass turns the updates into one multi-tensor kernel.
// @apply_gradients is the same update for gradients computed elsewhere: the
// weighted sum of several micro-batches' (gradient accumulation), or of
// several ranks'.
//
//===----------------------------------------------------------------------===//

#include "passes/Passes.h"

#include "dialects/aim/AimSharding.h"

#include "mlir/IR/Builders.h"

#include <map>

namespace mlir::aim {
#define GEN_PASS_DEF_BUILDTRAINSTEPPASS
#include "passes/Passes.h.inc"
} // namespace mlir::aim

using namespace mlir;
using namespace mlir::aim;

namespace {

/// One trainable parameter of @loss_and_grads.
struct Parameter {
  unsigned argument; // its position among @loss_and_grads' arguments
  StringAttr name;
  RankedTensorType type;
  // On a grid (aim-shard): how the rank's parameter and optimiser state are
  // cut from the whole ones.
  DictionaryAttr sharding, stateSharding;
  bool tpSplit = false;      // the parameter is split over tp
  bool stateSliced = false;  // ZeRO-1: gradient, moments and update split over dp
  RankedTensorType stateType; // the moments' type: `type` or its dp slice
};

/// The grid of a per-rank program: dp x tp ranks, and ZeRO-1 or not.
struct Grid {
  int64_t dataParallel = 1, tensorParallel = 1;
  bool zero = false;
  bool present = false; // @mesh exists (a grid of one rank too)
};

struct BuildTrainStepPass
    : public mlir::aim::impl::BuildTrainStepPassBase<BuildTrainStepPass> {
  using BuildTrainStepPassBase::BuildTrainStepPassBase;

  void runOnOperation() override;

private:
  /// The usual decay groups: weights decay, biases and LayerNorm do not.
  bool decays(const Parameter &p) const { return p.type.getRank() >= 2; }
  /// The rank's share of the gradients of its replicas summed (or, with
  /// ZeRO-1, summed and split) over dp.
  Value reduceGradient(OpBuilder &b, Location loc, const Parameter &p,
                       Value gradient);
  /// The squared gradient norm of the whole model: each rank's sum of
  /// squares of what only it holds, summed over the ranks that split it.
  Value globalNorm(OpBuilder &b, Location loc, ArrayRef<Parameter> params,
                   ValueRange gradients);

  Grid grid;

  struct Update {
    Value norm;
    SmallVector<Value> results; // new params, exp_avgs, exp_avg_sqs
  };
  /// Clipping and one AdamW per parameter, at `b`'s insertion point.
  Update emitUpdate(OpBuilder &b, Location loc, ArrayRef<Parameter> params,
                    ValueRange values, ValueRange gradients, ValueRange expAvg,
                    ValueRange expAvgSq, Value lr, Value stepIndex);
  /// Names params and state on the arguments from `firstArgument` on and on
  /// the results from `firstResult` on.
  void nameState(func::FuncOp f, ArrayRef<Parameter> params,
                 unsigned firstArgument, unsigned firstResult);
  void buildApplyGradients(ModuleOp module, ArrayRef<Parameter> params);
};

const char *const kStateSuffix[] = {".exp_avg", ".exp_avg_sq"};

BuildTrainStepPass::Update BuildTrainStepPass::emitUpdate(
    OpBuilder &b, Location loc, ArrayRef<Parameter> params, ValueRange values,
    ValueRange gradients, ValueRange expAvg, ValueRange expAvgSq, Value lr,
    Value stepIndex) {
  auto tag = [&](Operation *op, const Twine &scope) {
    op->setAttr(AimDialect::kScopeAttrName, b.getStringAttr(scope));
  };
  auto scalarF32 = RankedTensorType::get({}, b.getF32Type());
  SmallVector<Value> grads(gradients), updated(values);
  Value norm;
  if (grid.present) {
    for (auto [k, p] : llvm::enumerate(params)) {
      grads[k] = reduceGradient(b, loc, p, gradients[k]);
      if (p.stateSliced)
        updated[k] = shard::AllSliceOp::create(
            b, loc, p.stateType, values[k], kGridName,
            ArrayRef<int16_t>{kDataParallelAxis}, /*sliceAxis=*/0);
    }
    norm = globalNorm(b, loc, params, grads);
  } else {
    norm = GlobalNormOp::create(b, loc, scalarF32, gradients);
    tag(norm.getDefiningOp(), "optimizer.clip");
  }
  auto coefficient = ClipCoefficientOp::create(
      b, loc, scalarF32, norm, llvm::APFloat(maxGradNorm.getValue()),
      /*epsilon=*/llvm::APFloat(1e-6));
  tag(coefficient, "optimizer.clip");
  SmallVector<Value> newParams, newExpAvg, newExpAvgSq;
  for (auto [k, p] : llvm::enumerate(params)) {
    auto update = AdamWOp::create(
        b, loc, p.stateType, p.stateType, p.stateType, updated[k], grads[k],
        expAvg[k], expAvgSq[k], lr, stepIndex, coefficient,
        llvm::APFloat(beta1.getValue()), llvm::APFloat(beta2.getValue()),
        llvm::APFloat(epsilon.getValue()),
        llvm::APFloat(decays(p) ? weightDecay.getValue() : 0.0));
    tag(update, "optimizer." + p.name.getValue());
    Value newParam = update.getNewParam();
    if (p.stateSliced) // every dp rank holds the whole parameter again
      newParam = shard::AllGatherOp::create(
          b, loc, p.type, kGridName, ArrayRef<int16_t>{kDataParallelAxis},
          newParam, APInt(64, 0));
    newParams.push_back(newParam);
    newExpAvg.push_back(update.getNewExpAvg());
    newExpAvgSq.push_back(update.getNewExpAvgSq());
  }
  Update u{norm, {}};
  llvm::append_range(u.results, newParams);
  llvm::append_range(u.results, newExpAvg);
  llvm::append_range(u.results, newExpAvgSq);
  return u;
}

Value BuildTrainStepPass::reduceGradient(OpBuilder &b, Location loc,
                                         const Parameter &p, Value gradient) {
  if (!sumsOverDataParallel(grid.dataParallel, grid.tensorParallel))
    return gradient;
  Operation *reduce =
      p.stateSliced
          ? shard::ReduceScatterOp::create(
                b, loc, p.stateType, kGridName,
                ArrayRef<int16_t>{kDataParallelAxis}, gradient,
                shard::ReductionKind::Sum, APInt(64, 0))
                .getOperation()
          : shard::AllReduceOp::create(b, loc, gradient, kGridName,
                                       ArrayRef<int16_t>{kDataParallelAxis},
                                       shard::ReductionKind::Sum)
                .getOperation();
  // What aim-schedule may start early, during the backward.
  reduce->setAttr(kGradientReductionAttrName, b.getUnitAttr());
  return reduce->getResult(0);
}

Value BuildTrainStepPass::globalNorm(OpBuilder &b, Location loc,
                                     ArrayRef<Parameter> params,
                                     ValueRange gradients) {
  auto scalarF32 = RankedTensorType::get({}, b.getF32Type());
  // Gradients by the grid axes they are split over: a replicated one counts
  // once, a split one is summed over the ranks that split it.
  std::map<SmallVector<int16_t>, SmallVector<Value>> byAxes;
  for (auto [p, g] : llvm::zip(params, gradients)) {
    SmallVector<int16_t> axes;
    if (p.stateSliced)
      axes.push_back(kDataParallelAxis);
    if (p.tpSplit && grid.tensorParallel > 1)
      axes.push_back(kTensorParallelAxis);
    byAxes[axes].push_back(g);
  }
  Value total;
  for (auto &[axes, group] : byAxes) {
    Value sum = SumSquaresOp::create(b, loc, scalarF32, group);
    if (!axes.empty())
      sum = shard::AllReduceOp::create(b, loc, sum, kGridName, axes,
                                       shard::ReductionKind::Sum);
    total = total ? AddOp::create(b, loc, scalarF32, total, sum).getResult()
                  : sum;
  }
  Value norm = SqrtOp::create(b, loc, scalarF32, total);
  norm.getDefiningOp()->setAttr(AimDialect::kScopeAttrName,
                                b.getStringAttr("optimizer.clip"));
  return norm;
}

void BuildTrainStepPass::nameState(func::FuncOp f, ArrayRef<Parameter> params,
                                   unsigned firstArgument,
                                   unsigned firstResult) {
  OpBuilder b(f.getContext());
  const size_t count = params.size();
  for (auto [k, p] : llvm::enumerate(params)) {
    f.setArgAttr(firstArgument + k, AimDialect::kParamAttrName, p.name);
    f.setResultAttr(firstResult + k, AimDialect::kParamAttrName, p.name);
    if (p.sharding) {
      f.setArgAttr(firstArgument + k, AimDialect::kShardingAttrName,
                   p.sharding);
      f.setResultAttr(firstResult + k, AimDialect::kShardingAttrName,
                      p.sharding);
    }
    for (int s = 0; s < 2; ++s) {
      StringAttr state = b.getStringAttr(p.name.getValue() + kStateSuffix[s]);
      unsigned arg = firstArgument + (s + 1) * count + k;
      unsigned result = firstResult + (s + 1) * count + k;
      f.setArgAttr(arg, AimDialect::kStateAttrName, state);
      f.setResultAttr(result, AimDialect::kStateAttrName, state);
      if (p.stateSharding) {
        f.setArgAttr(arg, AimDialect::kShardingAttrName, p.stateSharding);
        f.setResultAttr(result, AimDialect::kShardingAttrName,
                        p.stateSharding);
      }
    }
  }
}

/// @apply_gradients(lr, step, params..., exp_avgs..., exp_avg_sqs...,
/// grads...) -> (grad_norm, new params..., new exp_avgs..., new
/// exp_avg_sqs...), each gradient named "<param>.grad", as @loss_and_grads
/// names its results.
void BuildTrainStepPass::buildApplyGradients(ModuleOp module,
                                             ArrayRef<Parameter> params) {
  OpBuilder b(module.getContext());
  Location loc = NameLoc::get(b.getStringAttr("optimizer"));
  auto scalarF32 = RankedTensorType::get({}, b.getF32Type());
  auto scalarI64 = RankedTensorType::get({}, b.getI64Type());
  const unsigned count = params.size();
  SmallVector<Type> argTypes = {scalarF32, scalarI64}, resultTypes = {scalarF32};
  for (int copy = 0; copy < 4; ++copy) // params, 2 moments, gradients
    for (const Parameter &p : params) {
      Type type = copy == 1 || copy == 2 ? p.stateType : p.type;
      argTypes.push_back(type);
      if (copy < 3)
        resultTypes.push_back(type);
    }
  b.setInsertionPointToEnd(module.getBody());
  auto apply = func::FuncOp::create(b, loc, kApplyGradientsName,
                                    b.getFunctionType(argTypes, resultTypes));
  Block *body = apply.addEntryBlock();
  apply.setArgAttr(0, AimDialect::kInputAttrName, b.getStringAttr("lr"));
  apply.setArgAttr(1, AimDialect::kInputAttrName, b.getStringAttr("step"));
  nameState(apply, params, 2, 1);
  for (auto [k, p] : llvm::enumerate(params)) {
    apply.setArgAttr(2 + 3 * count + k, AimDialect::kInputAttrName,
                     b.getStringAttr(p.name.getValue() + ".grad"));
    if (p.sharding)
      apply.setArgAttr(2 + 3 * count + k, AimDialect::kShardingAttrName,
                       p.sharding);
  }
  apply.setResultAttr(0, AimDialect::kOutputAttrName,
                      b.getStringAttr("grad_norm"));
  b.setInsertionPointToEnd(body);
  ValueRange args = body->getArguments();
  Update u = emitUpdate(b, loc, params, args.slice(2, count),
                        args.slice(2 + 3 * count, count),
                        args.slice(2 + count, count),
                        args.slice(2 + 2 * count, count), args[0], args[1]);
  SmallVector<Value> results = {u.norm};
  llvm::append_range(results, u.results);
  func::ReturnOp::create(b, loc, results);
}

void BuildTrainStepPass::runOnOperation() {
  ModuleOp module = getOperation();
  auto lossAndGrads = module.lookupSymbol<func::FuncOp>(kLossAndGradsName);
  if (!lossAndGrads) {
    module.emitError() << "aim-build-train-step needs @" << kLossAndGradsName
                       << ": run aim-autodiff first";
    return signalPassFailure();
  }
  for (StringRef name : {kTrainStepName, kApplyGradientsName})
    if (module.lookupSymbol(name)) {
      lossAndGrads.emitError() << "the module already has @" << name;
      return signalPassFailure();
    }

  // 1. The signature: data inputs, lr, step, parameters, exp_avg, exp_avg_sq.
  OpBuilder b(module.getContext());
  Location loc = NameLoc::get(b.getStringAttr("optimizer"));
  SmallVector<unsigned> dataArguments;
  SmallVector<Parameter> params;
  if (auto mesh = module.lookupSymbol<shard::GridOp>(kGridName)) {
    if (mesh.getShape().size() != 2 || ShapedType::isDynamicShape(mesh.getShape())) {
      mesh.emitError() << "@" << kGridName
                       << " is not aim-shard's static dp x tp grid";
      return signalPassFailure();
    }
    grid.dataParallel = mesh.getShape()[kDataParallelAxis];
    grid.tensorParallel = mesh.getShape()[kTensorParallelAxis];
    auto zero = module->getAttrOfType<IntegerAttr>(AimDialect::kZeroAttrName);
    grid.present = true;
    grid.zero = zero && zero.getInt() == 1;
  }
  for (unsigned i = 0, e = lossAndGrads.getNumArguments(); i < e; ++i) {
    auto name = lossAndGrads.getArgAttrOfType<StringAttr>(
        i, AimDialect::kParamAttrName);
    if (!name) {
      dataArguments.push_back(i);
      continue;
    }
    Parameter p{i, name,
                cast<RankedTensorType>(lossAndGrads.getArgumentTypes()[i])};
    p.stateType = p.type;
    p.sharding = lossAndGrads.getArgAttrOfType<DictionaryAttr>(
        i, AimDialect::kShardingAttrName);
    p.stateSharding = p.sharding;
    ::aim::TensorSharding cut = readSharding(p.sharding);
    p.tpSplit = cut.tpDim >= 0;
    // ZeRO-1 splits dimension 0 over dp where it divides evenly; the rest
    // (none in AIM's configs with even widths) keep whole moments.
    if (grid.zero && grid.dataParallel > 1 &&
        p.type.getDimSize(0) % grid.dataParallel == 0) {
      p.stateSliced = true;
      SmallVector<int64_t> shape(p.type.getShape());
      shape[0] /= grid.dataParallel;
      p.stateType = p.type.clone(shape);
      cut.dpDim = 0;
      p.stateSharding = shardingAttr(b, cut);
    }
    params.push_back(p);
  }
  auto scalarF32 = RankedTensorType::get({}, b.getF32Type());
  auto scalarI64 = RankedTensorType::get({}, b.getI64Type());
  SmallVector<Type> argTypes, resultTypes = {scalarF32, scalarF32};
  for (unsigned i : dataArguments)
    argTypes.push_back(lossAndGrads.getArgumentTypes()[i]);
  argTypes.append({scalarF32, scalarI64});
  for (int copy = 0; copy < 3; ++copy) // params, then the two moments
    for (const Parameter &p : params) {
      argTypes.push_back(copy == 0 ? p.type : p.stateType);
      resultTypes.push_back(copy == 0 ? p.type : p.stateType);
    }

  b.setInsertionPointAfter(lossAndGrads);
  auto step = func::FuncOp::create(b, loc, kTrainStepName,
                                   b.getFunctionType(argTypes, resultTypes));
  Block *body = step.addEntryBlock();
  unsigned next = 0;
  for (unsigned i : dataArguments)
    step.setArgAttrs(next++, lossAndGrads.getArgAttrDict(i));
  Value lr = body->getArgument(next), stepIndex = body->getArgument(next + 1);
  step.setArgAttr(next++, AimDialect::kInputAttrName, b.getStringAttr("lr"));
  step.setArgAttr(next++, AimDialect::kInputAttrName, b.getStringAttr("step"));
  const unsigned firstParam = next;
  const unsigned count = params.size();

  // 2. Loss and gradients.
  b.setInsertionPointToEnd(body);
  SmallVector<Value> callArgs(lossAndGrads.getNumArguments());
  for (auto [k, i] : llvm::enumerate(dataArguments))
    callArgs[i] = body->getArgument(k);
  for (auto [k, p] : llvm::enumerate(params))
    callArgs[p.argument] = body->getArgument(firstParam + k);
  auto call = func::CallOp::create(b, loc, lossAndGrads, callArgs);
  ValueRange gradients = call.getResults().drop_front();

  // 3. Global-norm clipping, then one AdamW update per parameter.
  ValueRange args = body->getArguments();
  Update u = emitUpdate(b, loc, params, args.slice(firstParam, count),
                        gradients, args.slice(firstParam + count, count),
                        args.slice(firstParam + 2 * count, count), lr,
                        stepIndex);
  SmallVector<Value> results = {call.getResult(0), u.norm};
  llvm::append_range(results, u.results);
  func::ReturnOp::create(b, loc, results);

  // 4. Names on the results, as on the arguments.
  step.setResultAttr(0, AimDialect::kOutputAttrName, b.getStringAttr("loss"));
  step.setResultAttr(1, AimDialect::kOutputAttrName,
                     b.getStringAttr("grad_norm"));
  nameState(step, params, firstParam, 2);

  // 5. The update alone, for gradients summed elsewhere.
  buildApplyGradients(module, params);
}

} // namespace
