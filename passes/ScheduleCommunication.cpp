//===- ScheduleCommunication.cpp - gradient reductions during the backward ===//
//
// aim-schedule: a per-rank @train_step computes every gradient and then sums
// them over dp. Started as soon as each bucket of gradients is ready, the
// sums overlap the rest of the backward (the runtime's communication thread
// runs them); the optimiser waits for them at one aim.wait_collectives.
//
//===----------------------------------------------------------------------===//

#include "passes/Passes.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/IRMapping.h"

namespace mlir::aim {
#define GEN_PASS_DEF_SCHEDULECOMMUNICATIONPASS
#include "passes/Passes.h.inc"
} // namespace mlir::aim

using namespace mlir;
using namespace mlir::aim;

namespace {

/// Replaces `call` by the body of its callee.
LogicalResult inlineCall(func::CallOp call) {
  auto callee =
      SymbolTable::lookupNearestSymbolFrom<func::FuncOp>(call,
                                                         call.getCalleeAttr());
  if (!callee || callee.isExternal() || !callee.getBody().hasOneBlock())
    return call.emitOpError() << "calls a function aim-schedule cannot inline";
  IRMapping map;
  Block &body = callee.getBody().front();
  map.map(body.getArguments(), call.getOperands());
  OpBuilder b(call);
  for (Operation &op : body.without_terminator())
    b.clone(op, map);
  for (auto [result, returned] :
       llvm::zip(call.getResults(), body.getTerminator()->getOperands()))
    result.replaceAllUsesWith(map.lookup(returned));
  call.erase();
  return success();
}

int64_t bytesOf(Value v) {
  auto type = cast<RankedTensorType>(v.getType());
  return type.getNumElements() *
         std::max<int64_t>(1, type.getElementTypeBitWidth() / 8);
}

struct ScheduleCommunicationPass
    : public mlir::aim::impl::ScheduleCommunicationPassBase<
          ScheduleCommunicationPass> {
  using ScheduleCommunicationPassBase::ScheduleCommunicationPassBase;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    auto step = module.lookupSymbol<func::FuncOp>(kTrainStepName);
    if (!step || bucketBytes <= 0)
      return;
    SmallVector<Operation *> reductions;
    step.walk([&](Operation *op) {
      if (op->hasAttr(kGradientReductionAttrName))
        reductions.push_back(op);
    });
    if (reductions.empty())
      return; // one dp rank: nothing to overlap
    SmallVector<func::CallOp> calls(step.getOps<func::CallOp>());
    for (func::CallOp call : calls)
      if (failed(inlineCall(call)))
        return signalPassFailure();

    // Program order, to know when a gradient is ready.
    llvm::DenseMap<Operation *, unsigned> position;
    for (auto [i, op] : llvm::enumerate(step.getBody().front()))
      position[&op] = i;
    auto readyAt = [&](Operation *reduce) {
      return position.lookup(reduce->getOperand(0).getDefiningOp());
    };
    llvm::stable_sort(reductions, [&](Operation *a, Operation *b) {
      return readyAt(a) < readyAt(b);
    });

    // Buckets in ready order; each starts after its last gradient.
    OpBuilder b(module.getContext());
    int64_t bucket = 0, bytes = 0;
    SmallVector<Operation *> open;
    Operation *lastIssued = nullptr; // buckets start in order
    auto start = [&]() {
      Operation *last = open.back()->getOperand(0).getDefiningOp();
      if (lastIssued && last->isBeforeInBlock(lastIssued))
        last = lastIssued;
      for (Operation *reduce : open) {
        reduce->moveAfter(last);
        last = reduce;
        reduce->setAttr(AimDialect::kAsyncAttrName, b.getUnitAttr());
        reduce->setAttr(AimDialect::kBucketAttrName, b.getI64IntegerAttr(bucket));
      }
      lastIssued = last;
      ++bucket;
      open.clear();
      bytes = 0;
    };
    for (Operation *reduce : reductions) {
      int64_t size = bytesOf(reduce->getOperand(0));
      if (!open.empty() && bytes + size > bucketBytes)
        start();
      open.push_back(reduce);
      bytes += size;
    }
    start();

    // One wait before the first use of any reduced gradient.
    SmallVector<Value> reduced;
    Operation *firstUse = nullptr;
    for (Operation *reduce : reductions) {
      reduced.push_back(reduce->getResult(0));
      for (Operation *user : reduce->getResult(0).getUsers())
        if (!firstUse || user->isBeforeInBlock(firstUse))
          firstUse = user;
    }
    b.setInsertionPoint(firstUse);
    auto wait =
        WaitCollectivesOp::create(b, firstUse->getLoc(), ValueRange(reduced));
    wait->setAttr(AimDialect::kScopeAttrName, b.getStringAttr("optimizer"));
    for (auto [value, waited] : llvm::zip(reduced, wait.getResults()))
      value.replaceAllUsesExcept(waited, wait);
  }
};

} // namespace
