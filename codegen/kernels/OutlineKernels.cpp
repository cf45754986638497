//===- OutlineKernels.cpp - one function per distinct kernel --------------===//
//
// Generated code is a sequence of kernel calls: each entry point keeps its
// data flow (views, calls, constants) and calls one private function per
// kernel. Two kernels are the same when their functions print the same once
// named alike and stripped of discardable attributes -- the op names, types
// and inherent attributes are all there is to a kernel's meaning.
//
//===----------------------------------------------------------------------===//

#include "codegen/kernels/OutlineKernels.h"

#include "dialects/aim/AimDialect.h"
#include "common/CollectiveCall.h"
#include "dialects/aim/AimOps.h"

#include "mlir/Dialect/Shard/IR/ShardDialect.h"
#include "mlir/Dialect/Shard/IR/ShardOps.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/IR/SymbolTable.h"
#include "llvm/ADT/SetVector.h"
#include "llvm/ADT/StringMap.h"

using namespace mlir;

namespace mlir::aim {

namespace {

/// Whether `op` (a direct child of an entry point) becomes a kernel. A
/// shard collective is one too: a kernel that calls the runtime
/// (CollectiveCalls.h).
bool isKernel(Operation *op) {
  if (isa<FusionOp>(op))
    return true;
  if (op->getDialect() && isa<shard::ShardDialect>(op->getDialect()))
    return true;
  if (!op->getDialect() || !isa<AimDialect>(op->getDialect()))
    return false;
  return !isa<ReshapeOp, SliceOp, EnterPartialOp>(op);
}

/// The readable part of a kernel's name: the fusion kind or the op name.
std::string kernelStem(Operation *op) {
  if (auto fusion = dyn_cast<FusionOp>(op))
    return "fused_" + fusion.getKind().str();
  return op->getName().stripDialect().str();
}

/// The views (aim.reshape, aim.slice) `v` is taken through, outermost
/// first, when at least one is a slice; none otherwise.
SmallVector<Operation *> slicedViewChain(Value v) {
  SmallVector<Operation *> chain;
  bool sliced = false;
  while (Operation *def = v.getDefiningOp()) {
    if (!isa<ReshapeOp, SliceOp>(def))
      break;
    sliced |= isa<SliceOp>(def);
    chain.push_back(def);
    v = def->getOperand(0);
  }
  if (!sliced)
    return {};
  return chain;
}

/// What a kernel is called with in place of `op`'s operands: an operand
/// sliced out of another value (attention's q, k and v out of qkv) is
/// passed as that value, the slice taken inside the kernel, so that the
/// kernel reads it through strides -- passed as a slice, bufferization
/// copies it into a buffer of its own first (aim-600m: two copies of q, k
/// and v a block, 9 ms a step at batch 32 on an H200). Each value once.
SmallVector<Value> kernelOperands(Operation *op) {
  llvm::SetVector<Value> operands;
  for (Value v : op->getOperands()) {
    SmallVector<Operation *> chain = slicedViewChain(v);
    operands.insert(chain.empty() ? v : chain.back()->getOperand(0));
  }
  return operands.takeVector();
}

/// A private function computing `op` from `operands` (kernelOperands).
func::FuncOp buildKernel(OpBuilder &b, Operation *op, ValueRange operands) {
  Location loc = op->getLoc();
  auto type =
      b.getFunctionType(ValueRange(operands).getTypes(), op->getResultTypes());
  auto kernel = func::FuncOp::create(b, loc, "kernel", type);
  kernel.setPrivate();
  Block *body = kernel.addEntryBlock();
  OpBuilder inner = OpBuilder::atBlockEnd(body);
  // Each of `op`'s operands inside: an argument, or its views taken again.
  IRMapping outer;
  outer.map(operands, body->getArguments());
  SmallVector<Value> opOperands;
  for (Value v : op->getOperands()) {
    if (!outer.contains(v))
      for (Operation *view : llvm::reverse(slicedViewChain(v)))
        if (!outer.contains(view->getResult(0)))
          inner.clone(*view, outer);
    opOperands.push_back(outer.lookup(v));
  }
  SmallVector<Value> results;
  if (auto fusion = dyn_cast<FusionOp>(op)) {
    IRMapping map;
    Block &region = fusion.getBody().front();
    map.map(region.getArguments(), opOperands);
    for (Operation &nested : region.without_terminator())
      inner.clone(nested, map);
    for (Value v : cast<YieldOp>(region.getTerminator()).getValues())
      results.push_back(map.lookup(v));
  } else {
    IRMapping map;
    map.map(op->getOperands(), opOperands);
    llvm::append_range(results, inner.clone(*op, map)->getResults());
  }
  func::ReturnOp::create(inner, loc, results);
  kernel.walk([](Operation *nested) {
    if (!isa<func::FuncOp>(nested))
      for (NamedAttribute attr :
           llvm::to_vector(nested->getDiscardableAttrDictionary()))
        nested->removeDiscardableAttr(attr.getName());
  });
  // A collective started ahead is another kernel than a blocking one.
  if (op->hasAttr(AimDialect::kAsyncAttrName))
    kernel.walk([&](Operation *nested) {
      if (nested->getName() == op->getName())
        nested->setAttr(AimDialect::kAsyncAttrName, b.getUnitAttr());
    });
  return kernel;
}

/// Each aim.wait_collectives becomes a call of the runtime's
/// aimcCollectivesWait(), its results its inputs: the call keeps its place
/// among the kernel calls.
void waitCollectivesByCalls(ModuleOp module, ArrayRef<func::FuncOp> entries) {
  SmallVector<WaitCollectivesOp> waits;
  for (func::FuncOp entry : entries)
    entry.walk([&](WaitCollectivesOp wait) { waits.push_back(wait); });
  if (waits.empty())
    return;
  OpBuilder b(module.getContext());
  auto declaration =
      module.lookupSymbol<func::FuncOp>(::aim::kCollectivesWaitSymbol);
  if (!declaration) {
    b.setInsertionPointToStart(module.getBody());
    declaration = func::FuncOp::create(b, module.getLoc(),
                                       ::aim::kCollectivesWaitSymbol,
                                       b.getFunctionType({}, {}));
    declaration.setPrivate();
  }
  for (WaitCollectivesOp wait : waits) {
    b.setInsertionPoint(wait);
    func::CallOp::create(b, wait.getLoc(), declaration, ValueRange());
    wait.replaceAllUsesWith(wait.getInputs());
    wait.erase();
  }
}

std::string printed(func::FuncOp kernel) {
  std::string text;
  llvm::raw_string_ostream os(text);
  kernel.print(os, OpPrintingFlags().printGenericOpForm());
  return text;
}

} // namespace

KernelCount outlineKernels(ModuleOp module) {
  SmallVector<func::FuncOp> entries;
  for (auto f : module.getOps<func::FuncOp>())
    if (!f.isExternal() && f.isPublic())
      entries.push_back(f);

  SymbolTable symbols(module);
  OpBuilder b(module.getContext());
  llvm::StringMap<func::FuncOp> byText;
  KernelCount count;
  waitCollectivesByCalls(module, entries);
  for (func::FuncOp entry : entries) {
    for (Operation &op : llvm::make_early_inc_range(entry.getOps())) {
      if (!isKernel(&op))
        continue;
      b.setInsertionPointToEnd(module.getBody());
      SmallVector<Value> operands = kernelOperands(&op);
      func::FuncOp kernel = buildKernel(b, &op, operands);
      func::FuncOp &existing = byText[printed(kernel)];
      if (existing) {
        kernel.erase();
      } else {
        kernel.setName(kernelStem(&op));
        symbols.insert(kernel); // renames to stay unique: layer_norm_1, ...
        existing = kernel;
        ++count.distinct;
      }
      b.setInsertionPoint(&op);
      auto call = func::CallOp::create(b, op.getLoc(), existing, operands);
      op.replaceAllUsesWith(call.getResults());
      op.erase();
      ++count.launches;
    }
  }
  return count;
}

namespace {
struct OutlineKernelsPass
    : PassWrapper<OutlineKernelsPass, OperationPass<ModuleOp>> {
  MLIR_DEFINE_EXPLICIT_INTERNAL_INLINE_TYPE_ID(OutlineKernelsPass)
  StringRef getArgument() const override { return "aim-outline-kernels"; }
  StringRef getDescription() const override {
    return "Move each kernel of the entry points into a private function, "
           "one per distinct kernel (host and GPU code generation)";
  }
  void runOnOperation() override { outlineKernels(getOperation()); }
};
} // namespace

std::unique_ptr<Pass> createOutlineKernelsPass() {
  return std::make_unique<OutlineKernelsPass>();
}

void registerOutlineKernelsPass() {
  PassRegistration<OutlineKernelsPass>();
}

} // namespace mlir::aim
