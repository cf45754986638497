//===- Autodiff.cpp - reverse-mode differentiation of aim IR --------------===//
//
// @forward -> @loss_and_grads. The pass knows no op: it finds which values
// depend on parameters (activity), walks the ops backwards from the loss, asks
// each for its vector-Jacobian product through DifferentiableOpInterface and
// sums gradients of values used more than once.
//
//===----------------------------------------------------------------------===//

#include "passes/Passes.h"

#include "mlir/IR/Builders.h"
#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/DenseSet.h"

namespace mlir::aim {
#define GEN_PASS_DEF_AUTODIFFPASS
#include "passes/Passes.h.inc"
} // namespace mlir::aim

using namespace mlir;
using namespace mlir::aim;

namespace {

/// Tags every op the VJP rules create with the scope of the forward op being
/// differentiated, so that "trunk.blocks.3.attn.grad" finds block 3's backward.
class ScopeTagger : public OpBuilder::Listener {
public:
  void setScope(Operation *forwardOp) {
    auto scope =
        forwardOp->getAttrOfType<StringAttr>(AimDialect::kScopeAttrName);
    std::string text = scope ? scope.getValue().str() + ".grad" : "grad";
    scopeAttr = StringAttr::get(forwardOp->getContext(), text);
    location = NameLoc::get(scopeAttr, forwardOp->getLoc());
  }
  void notifyOperationInserted(Operation *op, OpBuilder::InsertPoint) override {
    op->setAttr(AimDialect::kScopeAttrName, scopeAttr);
    op->setLoc(location);
  }

private:
  StringAttr scopeAttr;
  Location location = UnknownLoc();
};

bool isFloatTensor(Value v) {
  auto type = dyn_cast<RankedTensorType>(v.getType());
  return type && isa<FloatType>(type.getElementType());
}

/// Values that depend on a parameter: only they need gradients.
llvm::DenseSet<Value> findActiveValues(func::FuncOp function) {
  llvm::DenseSet<Value> active;
  for (BlockArgument arg : function.getArguments())
    if (function.getArgAttr(arg.getArgNumber(), AimDialect::kParamAttrName))
      active.insert(arg);
  for (Operation &op : function.getBody().front()) {
    bool dependsOnParam = llvm::any_of(
        op.getOperands(), [&](Value v) { return active.contains(v); });
    if (dependsOnParam)
      for (Value result : op.getResults())
        if (isFloatTensor(result))
          active.insert(result);
  }
  return active;
}

class Differentiator {
public:
  explicit Differentiator(func::FuncOp function)
      : function(function), builder(function.getContext()) {}

  /// Appends the backward pass before the return and returns the gradients.
  LogicalResult run();

private:
  void accumulate(Value value, Value grad) {
    auto [it, inserted] = grads.try_emplace(value, grad);
    if (!inserted)
      it->second = AddOp::create(builder, grad.getLoc(), grad.getType(),
                                 it->second, grad);
  }
  LogicalResult differentiate(Operation *op);

  func::FuncOp function;
  OpBuilder builder;
  ScopeTagger tagger;
  llvm::DenseSet<Value> active;
  llvm::DenseMap<Value, Value> grads;
};

LogicalResult Differentiator::differentiate(Operation *op) {
  SmallVector<Value> resultGrads;
  bool anyGrad = false;
  for (Value result : op->getResults()) {
    resultGrads.push_back(grads.lookup(result));
    anyGrad |= bool(resultGrads.back());
  }
  SmallVector<bool> want;
  for (Value operand : op->getOperands())
    want.push_back(active.contains(operand));
  if (!anyGrad || llvm::none_of(want, [](bool w) { return w; }))
    return success();

  auto differentiable = dyn_cast<DifferentiableOpInterface>(op);
  if (!differentiable)
    return op->emitOpError()
           << "lies between a parameter and the loss but has no "
              "vector-Jacobian product: implement DifferentiableOpInterface";
  tagger.setScope(op);
  SmallVector<Value> operandGrads;
  if (failed(differentiable.buildVjp(builder, resultGrads, want, operandGrads)))
    return failure();
  if (operandGrads.size() != op->getNumOperands())
    return op->emitOpError()
           << "VJP returned " << operandGrads.size()
           << " operand gradients for " << op->getNumOperands() << " operands";
  for (auto [operand, grad] : llvm::zip(op->getOperands(), operandGrads))
    if (grad)
      accumulate(operand, grad);
  return success();
}

LogicalResult Differentiator::run() {
  Block &body = function.getBody().front();
  auto ret = cast<func::ReturnOp>(body.getTerminator());
  Value loss = ret.getOperand(0);
  auto lossType = dyn_cast<RankedTensorType>(loss.getType());
  if (!lossType || lossType.getRank() != 0 ||
      !isa<FloatType>(lossType.getElementType()))
    return function.emitOpError()
           << "must return a scalar float loss first to be differentiated";

  active = findActiveValues(function);
  builder.setInsertionPoint(ret);
  // d loss / d loss = 1.
  Value one = arith::ConstantOp::create(
      builder, loss.getLoc(),
      DenseElementsAttr::get(
          lossType, builder.getFloatAttr(lossType.getElementType(), 1.0)));
  one.getDefiningOp()->setAttr(AimDialect::kScopeAttrName,
                               builder.getStringAttr("loss.grad"));
  grads[loss] = one;
  builder.setListener(&tagger);

  SmallVector<Operation *> forwardOps;
  for (Operation &op : body.without_terminator())
    forwardOps.push_back(&op);
  for (Operation *op : llvm::reverse(forwardOps))
    if (failed(differentiate(op)))
      return failure();

  // Return the loss and one gradient per parameter, in argument order.
  builder.setListener(nullptr);
  SmallVector<Value> results = {loss};
  SmallVector<Attribute> resultNames = {builder.getStringAttr("loss")};
  for (BlockArgument arg : function.getArguments()) {
    auto name = function.getArgAttrOfType<StringAttr>(
        arg.getArgNumber(), AimDialect::kParamAttrName);
    if (!name)
      continue;
    Value grad = grads.lookup(arg);
    if (!grad) { // the loss does not depend on this parameter
      auto type = cast<RankedTensorType>(arg.getType());
      grad = arith::ConstantOp::create(
          builder, arg.getLoc(),
          DenseElementsAttr::get(
              type, builder.getFloatAttr(type.getElementType(), 0.0)));
    }
    results.push_back(grad);
    resultNames.push_back(builder.getStringAttr(name.getValue() + ".grad"));
  }
  func::ReturnOp::create(builder, ret.getLoc(), results);
  ret.erase();
  function.setType(builder.getFunctionType(function.getArgumentTypes(),
                                           ValueRange(results).getTypes()));
  for (auto [i, name] : llvm::enumerate(resultNames))
    function.setResultAttr(i, AimDialect::kOutputAttrName, name);
  return success();
}

struct AutodiffPass : public mlir::aim::impl::AutodiffPassBase<AutodiffPass> {
  using AutodiffPassBase::AutodiffPassBase;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    auto forward = module.lookupSymbol<func::FuncOp>(entry);
    if (!forward) {
      module.emitError() << "aim-autodiff: no function @" << entry
                         << " to differentiate (set entry=<name>)";
      return signalPassFailure();
    }
    if (module.lookupSymbol(kLossAndGradsName)) {
      forward.emitError() << "aim-autodiff: the module already has @"
                          << kLossAndGradsName;
      return signalPassFailure();
    }
    // 1. A copy of the forward function, placed right after it.
    func::FuncOp lossAndGrads = forward.clone();
    lossAndGrads.setSymName(kLossAndGradsName);
    module.getBody()->getOperations().insertAfter(forward->getIterator(),
                                                  lossAndGrads);
    // 2. Its backward pass, appended in place.
    if (failed(Differentiator(lossAndGrads).run()))
      return signalPassFailure();
  }
};

} // namespace
