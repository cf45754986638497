//===- PromoteAccumulators.cpp - reduction sums kept in registers ---------===//
#include "codegen/kernels/PromoteAccumulators.h"

#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/IR/PatternMatch.h"

namespace mlir::aim {

namespace {

struct Accumulator {
  memref::LoadOp load;
  memref::StoreOp store;
};

/// A load and a later store of the same element, both directly in the
/// loop's body, at loop-invariant indices, of a buffer the loop uses nowhere
/// else.
std::optional<Accumulator> findAccumulator(scf::ForOp loop) {
  Block *body = loop.getBody();
  for (auto load : body->getOps<memref::LoadOp>()) {
    Value buffer = load.getMemref();
    if (!loop.isDefinedOutsideOfLoop(buffer) ||
        !llvm::all_of(load.getIndices(),
                      [&](Value i) { return loop.isDefinedOutsideOfLoop(i); }))
      continue;
    memref::StoreOp store;
    bool onlyThese = true;
    for (Operation *user : buffer.getUsers()) {
      if (user == load.getOperation() || !loop->isAncestor(user))
        continue;
      auto s = dyn_cast<memref::StoreOp>(user);
      if (!store && s && s->getBlock() == body &&
          llvm::equal(s.getIndices(), load.getIndices()) &&
          load->isBeforeInBlock(s)) {
        store = s;
        continue;
      }
      onlyThese = false;
      break;
    }
    if (onlyThese && store)
      return Accumulator{load, store};
  }
  return std::nullopt;
}

/// load before the loop, the value carried as an iteration argument, store
/// after it.
scf::ForOp promote(scf::ForOp loop, Accumulator acc, RewriterBase &rewriter) {
  Location loc = acc.load.getLoc();
  Value buffer = acc.load.getMemref();
  SmallVector<Value> indices(acc.load.getIndices());
  rewriter.setInsertionPoint(loop);
  Value initial = memref::LoadOp::create(rewriter, loc, buffer, indices);
  Value stored = acc.store.getValueToStore();
  auto replaced = loop.replaceWithAdditionalYields(
      rewriter, ValueRange{initial}, /*replaceInitOperandUsesInLoop=*/false,
      [&](OpBuilder &, Location, ArrayRef<BlockArgument>) {
        return SmallVector<Value>{stored};
      });
  auto promoted = cast<scf::ForOp>(replaced->getOperation());
  rewriter.replaceOp(acc.load, promoted.getRegionIterArgs().back());
  rewriter.eraseOp(acc.store);
  rewriter.setInsertionPointAfter(promoted);
  memref::StoreOp::create(rewriter, loc, promoted.getResults().back(), buffer,
                          indices);
  return promoted;
}

} // namespace

int promoteLoopAccumulators(ModuleOp module) {
  SmallVector<scf::ForOp> loops;
  module.walk([&](scf::ForOp loop) { loops.push_back(loop); }); // inner first
  IRRewriter rewriter(module.getContext());
  int promoted = 0;
  for (scf::ForOp loop : loops) {
    while (std::optional<Accumulator> acc = findAccumulator(loop)) {
      loop = promote(loop, *acc, rewriter);
      ++promoted;
    }
  }
  return promoted;
}

} // namespace mlir::aim
