//===- Bf16GemmOperands.cpp - GEMM operands rounded once, where computed --===//
//
// aim-bf16-gemm-operands: tensor cores multiply bfloat16 operands into
// float32 sums. Rounding each GEMM's operands in the GEMM's own kernel reads
// every float32 operand back once per GEMM that uses it: a saved activation
// once in the forward and again in the backward, a weight twice a step. Here
// each value is rounded once, by an aim.cast right after the op computing
// it, and every GEMM reading the value reads that copy; aim-fuse then puts
// the cast into its producer's kernel.
//
//===----------------------------------------------------------------------===//

#include "passes/Passes.h"

#include "mlir/IR/Builders.h"
#include "llvm/ADT/DenseMap.h"

#include <functional>

namespace mlir::aim {
#define GEN_PASS_DEF_BF16GEMMOPERANDSPASS
#include "passes/Passes.h.inc"
} // namespace mlir::aim

using namespace mlir;
using namespace mlir::aim;

namespace {

bool isF32Tensor(Value v) {
  auto type = dyn_cast<RankedTensorType>(v.getType());
  return type && type.getElementType().isF32();
}

/// The GEMM operands of `op` (input and weight, lhs and rhs) when they are
/// float32 and may be rounded; none otherwise.
SmallVector<OpOperand *, 2> roundableOperands(Operation *op) {
  SmallVector<OpOperand *, 2> operands;
  if (auto linear = dyn_cast<LinearOp>(op)) {
    operands = {&linear.getInputMutable(), &linear.getWeightMutable()};
  } else if (auto matmul = dyn_cast<MatmulOp>(op)) {
    operands = {&matmul.getLhsMutable(), &matmul.getRhsMutable()};
  } else {
    return {};
  }
  if (!isF32Tensor(op->getResult(0)) ||
      !llvm::all_of(operands,
                    [](OpOperand *o) { return isF32Tensor(o->get()); }))
    return {};
  return operands;
}

/// Rounds the GEMM operands of `function`, one cast per value.
void roundGemmOperands(func::FuncOp function) {
  llvm::DenseMap<Value, Value> roundedOf;
  llvm::DenseMap<Block *, Operation *> lastArgumentCopy;
  SmallVector<ReshapeOp> bypassedViews;
  std::function<Value(Value, Operation *)> rounded =
      [&](Value v, Operation *gemm) -> Value {
    if (Value r = roundedOf.lookup(v))
      return r;
    OpBuilder b(function.getContext());
    Operation *def = v.getDefiningOp();
    // Through views: the backward's GEMMs read saved activations reshaped
    // to matrices; the reshape of the value's one copy is theirs.
    if (auto reshape = dyn_cast_or_null<ReshapeOp>(def)) {
      Value source = rounded(reshape.getInput(), gemm);
      b.setInsertionPointAfter(reshape);
      auto type = cast<RankedTensorType>(v.getType());
      Value view = ReshapeOp::create(
          b, v.getLoc(),
          RankedTensorType::get(type.getShape(), b.getBF16Type()), source);
      if (Attribute scope = reshape->getAttr(AimDialect::kScopeAttrName))
        view.getDefiningOp()->setAttr(AimDialect::kScopeAttrName, scope);
      bypassedViews.push_back(reshape);
      roundedOf[v] = view;
      return view;
    }
    // Arguments' copies at the block's start, in the order of first use.
    if (def)
      b.setInsertionPointAfter(def);
    else if (Operation *last = lastArgumentCopy[v.getParentBlock()])
      b.setInsertionPointAfter(last);
    else
      b.setInsertionPointToStart(v.getParentBlock());
    auto type = cast<RankedTensorType>(v.getType());
    auto cast = CastOp::create(
        b, v.getLoc(), RankedTensorType::get(type.getShape(), b.getBF16Type()),
        v);
    // Named after the model scope that computes the value, or for an
    // argument the first GEMM reading it (the kernel that copies a weight).
    Operation *named = def ? def : gemm;
    if (Attribute scope = named->getAttr(AimDialect::kScopeAttrName))
      cast->setAttr(AimDialect::kScopeAttrName, scope);
    if (!def)
      lastArgumentCopy[v.getParentBlock()] = cast;
    roundedOf[v] = cast.getResult();
    return cast.getResult();
  };
  SmallVector<Operation *> gemms;
  function.walk([&](Operation *op) {
    if (!roundableOperands(op).empty())
      gemms.push_back(op);
  });
  for (Operation *gemm : gemms)
    for (OpOperand *operand : roundableOperands(gemm))
      operand->set(rounded(operand->get(), gemm));
  // A float32 view only GEMMs read is dead now (it would keep its float32
  // source alive, and aim-fuse would write that for it).
  for (ReshapeOp view : llvm::reverse(bypassedViews))
    if (view->use_empty())
      view->erase();
}

struct Bf16GemmOperandsPass
    : public mlir::aim::impl::Bf16GemmOperandsPassBase<Bf16GemmOperandsPass> {
  void runOnOperation() override {
    for (auto function : getOperation().getOps<func::FuncOp>())
      if (!function.isExternal())
        roundGemmOperands(function);
  }
};

} // namespace
