//===- BuildTrainStep.cpp - @train_step: clipping and AdamW ---------------===//
//
// @loss_and_grads -> @train_step. The step calls @loss_and_grads, measures the
// global gradient norm, computes the clipping factor and updates every
// parameter and its optimiser state with one aim.adamw each (AIM.md, "Training
// recipe"). A later fusion pass turns the updates into one multi-tensor kernel.
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
};

void BuildTrainStepPass::runOnOperation() {
  ModuleOp module = getOperation();
  auto lossAndGrads = module.lookupSymbol<func::FuncOp>(kLossAndGradsName);
  if (!lossAndGrads) {
    module.emitError() << "aim-build-train-step needs @" << kLossAndGradsName
                       << ": run aim-autodiff first";
    return signalPassFailure();
  }
  if (module.lookupSymbol(kTrainStepName)) {
    lossAndGrads.emitError() << "the module already has @" << kTrainStepName;
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
  const size_t count = params.size();
  const char *stateSuffix[] = {".exp_avg", ".exp_avg_sq"};
  for (auto [k, p] : llvm::enumerate(params)) {
    step.setArgAttr(firstParam + k, AimDialect::kParamAttrName, p.name);
    for (int s = 0; s < 2; ++s)
      step.setArgAttr(firstParam + (s + 1) * count + k,
                      AimDialect::kStateAttrName,
                      b.getStringAttr(p.name.getValue() + stateSuffix[s]));
  }

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
  auto tag = [&](Operation *op, const Twine &scope) {
    op->setAttr(AimDialect::kScopeAttrName, b.getStringAttr(scope));
  };
  auto norm = GlobalNormOp::create(b, loc, scalarF32, gradients);
  tag(norm, "optimizer.clip");
  auto coefficient = ClipCoefficientOp::create(
      b, loc, scalarF32, norm, llvm::APFloat(maxGradNorm.getValue()),
      /*epsilon=*/llvm::APFloat(1e-6));
  tag(coefficient, "optimizer.clip");
  SmallVector<Value> newParams, newExpAvg, newExpAvgSq;
  for (auto [k, p] : llvm::enumerate(params)) {
    auto update = AdamWOp::create(
        b, loc, p.type, p.type, p.type, body->getArgument(firstParam + k),
        gradients[k], body->getArgument(firstParam + count + k),
        body->getArgument(firstParam + 2 * count + k), lr, stepIndex,
        coefficient, llvm::APFloat(beta1.getValue()),
        llvm::APFloat(beta2.getValue()), llvm::APFloat(epsilon.getValue()),
        llvm::APFloat(decays(p) ? weightDecay.getValue() : 0.0));
    tag(update, "optimizer." + p.name.getValue());
    newParams.push_back(update.getNewParam());
    newExpAvg.push_back(update.getNewExpAvg());
    newExpAvgSq.push_back(update.getNewExpAvgSq());
  }
  SmallVector<Value> results = {call.getResult(0), norm};
  llvm::append_range(results, newParams);
  llvm::append_range(results, newExpAvg);
  llvm::append_range(results, newExpAvgSq);
  func::ReturnOp::create(b, loc, results);

  // 4. Names on the results, as on the arguments.
  step.setResultAttr(0, AimDialect::kOutputAttrName, b.getStringAttr("loss"));
  step.setResultAttr(1, AimDialect::kOutputAttrName,
                     b.getStringAttr("grad_norm"));
  for (auto [k, p] : llvm::enumerate(params)) {
    step.setResultAttr(2 + k, AimDialect::kParamAttrName, p.name);
    for (int s = 0; s < 2; ++s)
      step.setResultAttr(2 + (s + 1) * count + k, AimDialect::kStateAttrName,
                         b.getStringAttr(p.name.getValue() + stateSuffix[s]));
  }
}

} // namespace
