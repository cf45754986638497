//===- MemoryPlan.cpp - static arena assignment from liveness -------------===//
//
// planArena() is the analysis (also used by the cost report); PlanMemoryPass
// records its result on the IR.
//
//===----------------------------------------------------------------------===//

#include "passes/MemoryPlan.h"

#include "passes/Passes.h"

#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/DenseSet.h"

namespace mlir::aim {
#define GEN_PASS_DEF_PLANMEMORYPASS
#include "passes/Passes.h.inc"
} // namespace mlir::aim

namespace mlir::aim {

namespace {
/// Views share the storage of their operand.
bool isView(Operation *op) { return isa<ReshapeOp, SliceOp>(op); }

int64_t bytesOf(Value v) {
  auto type = cast<RankedTensorType>(v.getType());
  int64_t bits = type.getElementType().getIntOrFloatBitWidth();
  return type.getNumElements() * ((bits + 7) / 8);
}

int64_t alignUp(int64_t x) {
  return (x + kArenaAlignment - 1) / kArenaAlignment * kArenaAlignment;
}
} // namespace

ArenaPlan planArena(func::FuncOp function) {
  ArenaPlan plan;
  Block &body = function.getBody().front();
  llvm::DenseMap<Value, size_t> bufferOf; // value (or view) -> buffer index
  llvm::DenseSet<Value> returned;
  for (Value v : body.getTerminator()->getOperands())
    returned.insert(v);

  size_t index = 0;
  for (Operation &op : body) {
    for (Value operand : op.getOperands()) {
      auto it = bufferOf.find(operand);
      if (it != bufferOf.end())
        plan.buffers[it->second].lastUse = index;
    }
    for (Value result : op.getResults()) {
      if (isView(&op)) {
        auto source = bufferOf.find(op.getOperand(0));
        if (source != bufferOf.end())
          bufferOf[result] = source->second; // alias: same buffer
        continue;
      }
      if (returned.contains(result) || isa<arith::ConstantOp>(op))
        continue; // persistent: owned by the caller, or folded into the code
      bufferOf[result] = plan.buffers.size();
      plan.buffers.push_back({result, bytesOf(result), index, index, -1});
    }
    ++index;
  }
  // A returned view keeps its source alive to the end.
  for (Value v : returned) {
    auto it = bufferOf.find(v);
    if (it != bufferOf.end())
      plan.buffers[it->second].lastUse = index;
  }

  // Largest first; each at the lowest aligned offset free during its life.
  std::vector<size_t> order(plan.buffers.size());
  for (size_t i = 0; i < order.size(); ++i)
    order[i] = i;
  llvm::stable_sort(order, [&](size_t a, size_t b) {
    return plan.buffers[a].bytes > plan.buffers[b].bytes;
  });
  std::vector<size_t> placed;
  for (size_t i : order) {
    ArenaBuffer &buffer = plan.buffers[i];
    std::vector<std::pair<int64_t, int64_t>> busy; // [begin, end) in bytes
    for (size_t j : placed) {
      const ArenaBuffer &other = plan.buffers[j];
      if (other.firstUse <= buffer.lastUse && buffer.firstUse <= other.lastUse)
        busy.push_back({other.offset, other.offset + other.bytes});
    }
    llvm::sort(busy);
    int64_t offset = 0;
    for (auto [begin, end] : busy) {
      if (offset + buffer.bytes <= begin)
        break;
      offset = std::max(offset, alignUp(end));
    }
    buffer.offset = offset;
    plan.arenaBytes = std::max(plan.arenaBytes, offset + buffer.bytes);
    placed.push_back(i);
  }
  plan.arenaBytes = alignUp(plan.arenaBytes);
  return plan;
}

std::string checkArenaPlan(const ArenaPlan &plan) {
  for (size_t i = 0; i < plan.buffers.size(); ++i) {
    const ArenaBuffer &a = plan.buffers[i];
    if (a.offset < 0 || a.offset % kArenaAlignment != 0 ||
        a.offset + a.bytes > plan.arenaBytes)
      return "buffer " + std::to_string(i) +
             " is unplaced, misaligned or "
             "outside the arena";
    for (size_t j = i + 1; j < plan.buffers.size(); ++j) {
      const ArenaBuffer &b = plan.buffers[j];
      bool together = a.firstUse <= b.lastUse && b.firstUse <= a.lastUse;
      bool overlap =
          a.offset < b.offset + b.bytes && b.offset < a.offset + a.bytes;
      if (together && overlap)
        return "buffers " + std::to_string(i) + " and " + std::to_string(j) +
               " are alive together and overlap";
    }
  }
  return "";
}

namespace {
struct PlanMemoryPass
    : public mlir::aim::impl::PlanMemoryPassBase<PlanMemoryPass> {
  void runOnOperation() override {
    ModuleOp module = getOperation();
    Builder b(module.getContext());
    for (StringRef name : {kLossAndGradsName, kTrainStepName}) {
      auto function = module.lookupSymbol<func::FuncOp>(name);
      if (!function)
        continue;
      ArenaPlan plan = planArena(function);
      llvm::DenseMap<Value, int64_t> offsets;
      for (const ArenaBuffer &buffer : plan.buffers)
        offsets[buffer.value] = buffer.offset;
      for (Operation &op : function.getBody().front()) {
        if (op.getNumResults() == 0 || isa<func::ReturnOp>(op))
          continue;
        SmallVector<int64_t> resultOffsets;
        for (Value r : op.getResults()) {
          auto it = offsets.find(r);
          resultOffsets.push_back(it == offsets.end() ? -1 : it->second);
        }
        op.setAttr("aim.arena_offsets", b.getDenseI64ArrayAttr(resultOffsets));
      }
      function->setAttr("aim.arena_bytes",
                        b.getI64IntegerAttr(plan.arenaBytes));
    }
  }
};
} // namespace

} // namespace mlir::aim
