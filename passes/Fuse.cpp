//===- Fuse.cpp - kernels as aim.fusion regions, by cost -----------------===//
//
// Greedy producer-consumer fusion. Which merges are *possible* is a property
// of the kernel templates (canMerge); which are *made* is the cost model's
// call (mergeBenefit) on the target description.
//
//===----------------------------------------------------------------------===//

#include "passes/CostModel.h"
#include "passes/Passes.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/IRMapping.h"
#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/EquivalenceClasses.h"
#include "llvm/ADT/SetVector.h"

namespace mlir::aim {
#define GEN_PASS_DEF_FUSEPASS
#include "passes/Passes.h.inc"
} // namespace mlir::aim

using namespace mlir;
using namespace mlir::aim;

namespace {

/// The kernel template an op anchors.
enum class Kind { Gemm, Attention, Norm, Loss, Optimizer, Elementwise, Alone,
                  Free };

Kind kindOf(Operation *op) {
  if (isa<LinearOp, MatmulOp>(op))
    return Kind::Gemm;
  if (isa<AttentionOp, AttentionGradOp>(op))
    return Kind::Attention;
  if (isa<LayerNormOp, LayerNormGradOp>(op))
    return Kind::Norm;
  if (isa<NormalizedPixelLossOp, NormalizedPixelLossGradOp>(op))
    return Kind::Loss;
  if (isa<AdamWOp>(op))
    return Kind::Optimizer;
  // Collectives are calls into the runtime, and the scalar arithmetic
  // around them too small to be worth a template: never fused.
  if (isa<shard::ShardDialect>(op->getDialect()) ||
      isa<TargetCountOp, ReweightOp, SumSquaresOp, SqrtOp>(op))
    return Kind::Alone;
  // Views: a kernel reads a reshaped or sliced operand through its strides.
  // aim.enter_partial is the identity once differentiated.
  if (isa<ReshapeOp, SliceOp, EnterPartialOp, WaitCollectivesOp,
          arith::ConstantOp, func::CallOp, func::ReturnOp>(op))
    return Kind::Free;
  return Kind::Elementwise; // add, gelu(_grad), cast, slice, pad, rows, ...
}

const char *kindName(Kind k) {
  switch (k) {
  case Kind::Gemm:
    return "gemm";
  case Kind::Attention:
    return "attention";
  case Kind::Norm:
    return "layer_norm";
  case Kind::Loss:
    return "loss";
  case Kind::Optimizer:
    return "optimizer";
  default:
    return "elementwise";
  }
}

/// Ops a GEMM epilogue applies to each output element.
bool isEpilogueOp(Operation *op) { return isa<AddOp, GeluOp, CastOp>(op); }

/// An aim.cast to a narrower float type (a GEMM operand's bfloat16 copy,
/// aim-bf16-gemm-operands).
bool isNarrowingCast(Operation *op) {
  auto castOp = dyn_cast<CastOp>(op);
  auto width = [](Value v) {
    return cast<RankedTensorType>(v.getType()).getElementTypeBitWidth();
  };
  return castOp && width(castOp.getResult()) < width(castOp.getInput());
}

class Fuser {
public:
  Fuser(func::FuncOp function, const TargetDescription &target)
      : function(function), target(target) {}

  /// Returns the number of kernels before and after.
  std::pair<int, int> run();

private:
  struct Group {
    Kind kind;
    SmallVector<Operation *> ops; // in program order
    Operation *anchor;            // the op whose template the kernel is
  };

  Group &groupOf(Operation *op) { return groups[leaderOf.lookup(op)]; }
  bool sameGroup(Operation *a, Operation *b) {
    return leaderOf.lookup(a) == leaderOf.lookup(b);
  }
  /// Values of `g` used by ops outside it.
  bool usedOutside(const Group &g, Value v) {
    return llvm::any_of(v.getUsers(), [&](Operation *user) {
      return !llvm::is_contained(g.ops, user);
    });
  }
  /// Whether the merged group can sit where its last op is: every outside
  /// user of its values comes after that op.
  bool legal(const Group &a, const Group &b);
  /// Seconds saved by merging producer group `p` into consumer group `c`
  /// across `v` (negative: slower), or nullopt when no template does it.
  std::optional<double> mergeBenefit(Group &p, Group &c, Value v);
  void merge(Operation *producer, Operation *consumer);
  void materialize(Group &g);

  func::FuncOp function;
  const TargetDescription &target;
  llvm::DenseMap<Operation *, Operation *> leaderOf;
  llvm::DenseMap<Operation *, Group> groups; // by leader
  llvm::DenseMap<Operation *, unsigned> position;
};

bool Fuser::legal(const Group &a, const Group &b) {
  unsigned last = 0;
  for (const Group *g : {&a, &b})
    for (Operation *op : g->ops)
      last = std::max(last, position.lookup(op));
  for (const Group *g : {&a, &b})
    for (Operation *op : g->ops)
      for (Value v : op->getResults())
        for (Operation *user : v.getUsers()) {
          bool inside = llvm::is_contained(a.ops, user) ||
                        llvm::is_contained(b.ops, user);
          if (!inside && position.lookup(user) < last)
            return false;
        }
  return true;
}

std::optional<double> Fuser::mergeBenefit(Group &p, Group &c, Value v) {
  // v is null when merging updates that share no value (the optimiser).
  double bytes = v ? static_cast<double>(
                         cast<RankedTensorType>(v.getType()).getNumElements()) *
                         target.activationBytes
                   : 0;
  double launch = target.kernelLaunchSeconds;
  double roundTrip = 2 * bytes / target.memoryBandwidth; // write + read of v
  Operation *consumer = c.anchor;
  bool vLeaves =
      v && llvm::any_of(v.getUsers(), [&](Operation *u) {
        return !llvm::is_contained(c.ops, u) && !llvm::is_contained(p.ops, u);
      });

  // A narrowing copy in the kernel computing its operand, whatever that
  // kernel's template: written as the value is, not read back by a kernel of
  // its own -- also when the value has other uses (a saved activation).
  if (c.ops.size() == 1 && isNarrowingCast(consumer) && p.kind != Kind::Alone)
    return bytes / target.memoryBandwidth + launch;
  // GEMM epilogue: the consumer's elementwise work on the GEMM output.
  if (p.kind == Kind::Gemm && c.kind == Kind::Elementwise &&
      c.ops.size() == 1 && isEpilogueOp(consumer) && !vLeaves)
    return roundTrip + launch;
  // Loop fusion of elementwise and data-movement ops.
  if (p.kind == Kind::Elementwise && c.kind == Kind::Elementwise && !vLeaves)
    return roundTrip + launch;
  // A layer norm with the residual add that feeds it: the kernel writes the
  // sum (the residual stream needs it) and the norm; one read of v saved.
  if (p.kind == Kind::Elementwise && p.ops.size() == 1 &&
      isa<AddOp>(p.anchor) && c.kind == Kind::Norm && c.ops.size() == 1)
    return bytes / target.memoryBandwidth + launch;
  // Layer norm as the prologue of the GEMM it feeds: no round trip of the
  // normalised rows, but the normalisation is redone for every column tile.
  if (p.kind == Kind::Norm && p.ops.size() == 1 && isa<LayerNormOp>(p.anchor) &&
      c.kind == Kind::Gemm && c.anchor == consumer && isa<LinearOp>(consumer) &&
      cast<LinearOp>(consumer).getInput() == v && !vLeaves) {
    int64_t columns = cast<RankedTensorType>(consumer->getResult(0).getType())
                          .getShape()
                          .back();
    int64_t tiles =
        (columns + target.gemmTileColumns - 1) / target.gemmTileColumns;
    double recompute =
        opWork(p.anchor).vectorFlops * (tiles - 1) / target.vectorFlops;
    return roundTrip + launch - recompute;
  }
  // One multi-tensor kernel for every AdamW update.
  if (p.kind == Kind::Optimizer && c.kind == Kind::Optimizer)
    return launch;
  return std::nullopt;
}

void Fuser::merge(Operation *producer, Operation *consumer) {
  Operation *keep = leaderOf.lookup(consumer),
            *drop = leaderOf.lookup(producer);
  Group &into = groups[keep], &from = groups[drop];
  for (Operation *op : from.ops) {
    into.ops.push_back(op);
    leaderOf[op] = keep;
  }
  llvm::sort(into.ops, [&](Operation *a, Operation *b) {
    return position.lookup(a) < position.lookup(b);
  });
  // The heavier template anchors the kernel.
  if (from.kind != Kind::Elementwise && into.kind == Kind::Elementwise) {
    into.kind = from.kind;
    into.anchor = from.anchor;
  }
  groups.erase(drop);
}

void Fuser::materialize(Group &g) {
  Operation *last = g.ops.back();
  llvm::SetVector<Value> inputs, outputs;
  for (Operation *op : g.ops) {
    for (Value v : op->getOperands()) {
      Operation *def = v.getDefiningOp();
      if (!def || !llvm::is_contained(g.ops, def))
        inputs.insert(v);
    }
    for (Value r : op->getResults())
      if (usedOutside(g, r))
        outputs.insert(r);
  }
  OpBuilder b(last->getContext());
  b.setInsertionPointAfter(last);
  auto fusion = FusionOp::create(b, g.anchor->getLoc(),
                                 ValueRange(outputs.getArrayRef()).getTypes(),
                                 inputs.getArrayRef(), kindName(g.kind));
  // The kernel is named after its anchor; the optimiser kernel spans every
  // parameter, so it is named after none of them.
  if (g.kind == Kind::Optimizer)
    fusion->setAttr(AimDialect::kScopeAttrName, b.getStringAttr("optimizer"));
  else if (auto scope = g.anchor->getAttr(AimDialect::kScopeAttrName))
    fusion->setAttr(AimDialect::kScopeAttrName, scope);
  Block *body = b.createBlock(&fusion.getBody());
  IRMapping mapping;
  for (Value v : inputs)
    mapping.map(v, body->addArgument(v.getType(), v.getLoc()));
  for (Operation *op : g.ops)
    b.clone(*op, mapping);
  SmallVector<Value> yielded;
  for (Value v : outputs)
    yielded.push_back(mapping.lookup(v));
  YieldOp::create(b, g.anchor->getLoc(), yielded);
  for (auto [old, result] : llvm::zip(outputs, fusion.getResults()))
    Value(old).replaceUsesWithIf(result, [&](OpOperand &use) {
      return !llvm::is_contained(g.ops, use.getOwner());
    });
  for (Operation *op : llvm::reverse(g.ops))
    op->erase();
}

std::pair<int, int> Fuser::run() {
  Block &body = function.getBody().front();
  unsigned index = 0;
  int before = 0;
  for (Operation &op : body) {
    position[&op] = index++;
    Kind kind = kindOf(&op);
    if (kind == Kind::Free)
      continue;
    leaderOf[&op] = &op;
    groups[&op] = Group{kind, {&op}, &op};
    ++before;
  }
  // Producer-consumer merges, consumers in program order.
  for (Operation &op : body) {
    if (!leaderOf.count(&op))
      continue;
    for (Value v : op.getOperands()) {
      Operation *producer = v.getDefiningOp();
      if (!producer || !leaderOf.count(producer) || sameGroup(producer, &op))
        continue;
      Group &p = groupOf(producer), &c = groupOf(&op);
      std::optional<double> benefit = mergeBenefit(p, c, v);
      if (benefit && *benefit > 0 && legal(p, c))
        merge(producer, &op);
    }
  }
  // Every AdamW update into one kernel.
  Operation *firstUpdate = nullptr;
  for (Operation &op : body) {
    if (!isa<AdamWOp>(op))
      continue;
    if (!firstUpdate) {
      firstUpdate = &op;
      continue;
    }
    Group &p = groupOf(firstUpdate), &c = groupOf(&op);
    std::optional<double> benefit = mergeBenefit(p, c, Value());
    if (!sameGroup(firstUpdate, &op) && benefit && *benefit > 0 && legal(p, c))
      merge(firstUpdate, &op);
  }
  SmallVector<Operation *> leaders;
  for (auto &[leader, group] : groups)
    if (group.ops.size() > 1)
      leaders.push_back(leader);
  llvm::sort(leaders, [&](Operation *a, Operation *b) {
    return position.lookup(groups[a].ops.back()) <
           position.lookup(groups[b].ops.back());
  });
  for (Operation *leader : leaders)
    materialize(groups[leader]);
  return {before, static_cast<int>(groups.size())};
}

struct FusePass : public mlir::aim::impl::FusePassBase<FusePass> {
  using FusePassBase::FusePassBase;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    llvm::Expected<TargetDescription> desc = loadTargetDescription(target);
    if (!desc) {
      module.emitError() << "aim-fuse: " << llvm::toString(desc.takeError());
      return signalPassFailure();
    }
    for (StringRef name : {kLossAndGradsName, kTrainStepName})
      if (auto function = module.lookupSymbol<func::FuncOp>(name))
        Fuser(function, *desc).run();
  }
};

} // namespace
