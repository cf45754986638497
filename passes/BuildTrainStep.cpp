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

#include "mlir/IR/Builders.h"

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
};

struct BuildTrainStepPass
    : public mlir::aim::impl::BuildTrainStepPassBase<BuildTrainStepPass> {
  using BuildTrainStepPassBase::BuildTrainStepPassBase;

  void runOnOperation() override;

private:
  /// The usual decay groups: weights decay, biases and LayerNorm do not.
  bool decays(const Parameter &p) const { return p.type.getRank() >= 2; }

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
  auto norm = GlobalNormOp::create(b, loc, scalarF32, gradients);
  tag(norm, "optimizer.clip");
  auto coefficient = ClipCoefficientOp::create(
      b, loc, scalarF32, norm, llvm::APFloat(maxGradNorm.getValue()),
      /*epsilon=*/llvm::APFloat(1e-6));
  tag(coefficient, "optimizer.clip");
  SmallVector<Value> newParams, newExpAvg, newExpAvgSq;
  for (auto [k, p] : llvm::enumerate(params)) {
    auto update = AdamWOp::create(
        b, loc, p.type, p.type, p.type, values[k], gradients[k], expAvg[k],
        expAvgSq[k], lr, stepIndex, coefficient,
        llvm::APFloat(beta1.getValue()), llvm::APFloat(beta2.getValue()),
        llvm::APFloat(epsilon.getValue()),
        llvm::APFloat(decays(p) ? weightDecay.getValue() : 0.0));
    tag(update, "optimizer." + p.name.getValue());
    newParams.push_back(update.getNewParam());
    newExpAvg.push_back(update.getNewExpAvg());
    newExpAvgSq.push_back(update.getNewExpAvgSq());
  }
  Update u{norm, {}};
  llvm::append_range(u.results, newParams);
  llvm::append_range(u.results, newExpAvg);
  llvm::append_range(u.results, newExpAvgSq);
  return u;
}

void BuildTrainStepPass::nameState(func::FuncOp f, ArrayRef<Parameter> params,
                                   unsigned firstArgument,
                                   unsigned firstResult) {
  OpBuilder b(f.getContext());
  const size_t count = params.size();
  for (auto [k, p] : llvm::enumerate(params)) {
    f.setArgAttr(firstArgument + k, AimDialect::kParamAttrName, p.name);
    f.setResultAttr(firstResult + k, AimDialect::kParamAttrName, p.name);
    for (int s = 0; s < 2; ++s) {
      StringAttr state = b.getStringAttr(p.name.getValue() + kStateSuffix[s]);
      f.setArgAttr(firstArgument + (s + 1) * count + k,
                   AimDialect::kStateAttrName, state);
      f.setResultAttr(firstResult + (s + 1) * count + k,
                      AimDialect::kStateAttrName, state);
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
  for (int copy = 0; copy < 4; ++copy)
    for (const Parameter &p : params) {
      argTypes.push_back(p.type);
      if (copy < 3)
        resultTypes.push_back(p.type);
    }
  b.setInsertionPointToEnd(module.getBody());
  auto apply = func::FuncOp::create(b, loc, kApplyGradientsName,
                                    b.getFunctionType(argTypes, resultTypes));
  Block *body = apply.addEntryBlock();
  apply.setArgAttr(0, AimDialect::kInputAttrName, b.getStringAttr("lr"));
  apply.setArgAttr(1, AimDialect::kInputAttrName, b.getStringAttr("step"));
  nameState(apply, params, 2, 1);
  for (auto [k, p] : llvm::enumerate(params))
    apply.setArgAttr(2 + 3 * count + k, AimDialect::kInputAttrName,
                     b.getStringAttr(p.name.getValue() + ".grad"));
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
  for (unsigned i = 0, e = lossAndGrads.getNumArguments(); i < e; ++i) {
    if (auto name = lossAndGrads.getArgAttrOfType<StringAttr>(
            i, AimDialect::kParamAttrName))
      params.push_back(
          {i, name,
           cast<RankedTensorType>(lossAndGrads.getArgumentTypes()[i])});
    else
      dataArguments.push_back(i);
  }
  auto scalarF32 = RankedTensorType::get({}, b.getF32Type());
  auto scalarI64 = RankedTensorType::get({}, b.getI64Type());
  SmallVector<Type> argTypes, resultTypes = {scalarF32, scalarF32};
  for (unsigned i : dataArguments)
    argTypes.push_back(lossAndGrads.getArgumentTypes()[i]);
  argTypes.append({scalarF32, scalarI64});
  for (int copy = 0; copy < 3; ++copy)
    for (const Parameter &p : params) {
      argTypes.push_back(p.type);
      resultTypes.push_back(p.type);
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
