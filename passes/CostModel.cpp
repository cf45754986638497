//===- CostModel.cpp - FLOPs, bytes and roofline time of a step -----------===//
#include "passes/CostModel.h"

#include "passes/Passes.h"

#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/DenseSet.h"
#include "llvm/ADT/TypeSwitch.h"

namespace mlir::aim {

namespace {
double elements(Value v) {
  return static_cast<double>(
      cast<RankedTensorType>(v.getType()).getNumElements());
}
double elements(Type t) {
  return static_cast<double>(cast<RankedTensorType>(t).getNumElements());
}

/// Ops that are views or constants: no kernel, no traffic. A slice is a view
/// too: its consumer reads the sliced operand through strides.
bool isFree(Operation *op) {
  return isa<ReshapeOp, SliceOp, arith::ConstantOp, func::ReturnOp,
             func::CallOp>(op);
}

/// Ops whose tensors are fp32 master weights and optimiser state.
bool isOptimizerOp(Operation *op) {
  return isa<AdamWOp, GlobalNormOp, ClipCoefficientOp>(op);
}

/// The (query, key) pairs an attention op visits, per batch and head: all
/// N^2 without a tile rule, else the visible ones averaged over K uniform on
/// [1, N-1]; with live_queries only the rows that reach the loss.
template <typename OpTy> double visitedPairs(OpTy op) {
  int64_t n = cast<RankedTensorType>(op.getKey().getType()).getDimSize(1);
  if (n < 2)
    return 1.0;
  if (!op.getTileEmptyFromAttr() && !op.getLiveQueries())
    return double(n) * n;
  if (op.getMask() == MaskKind::causal)
    return double(n) * (n + 1) / 2.0;
  double total = 0;
  for (int64_t k = 1; k < n; ++k) {
    int64_t firstQuery = op.getLiveQueries() ? k - 1 : 0;
    int64_t lastQuery = op.getLiveQueries() ? n - 2 : n - 1;
    for (int64_t q = firstQuery; q <= lastQuery; ++q)
      total += std::max(k, q + 1);
  }
  return total / (n - 1);
}

/// FLOPs of QK^T and PV over the visited pairs, 2 per multiply-add each.
template <typename OpTy> double attentionFlops(OpTy op) {
  auto k = cast<RankedTensorType>(op.getKey().getType());
  return 4.0 * k.getDimSize(0) * k.getDimSize(2) * visitedPairs(op);
}
} // namespace

OpWork opWork(Operation *op) {
  OpWork w;
  llvm::TypeSwitch<Operation *>(op)
      .Case([&](LinearOp o) {
        double out = elements(o.getResult());
        double in =
            cast<RankedTensorType>(o.getInput().getType()).getShape().back();
        w.tensorFlops = 2 * out * in;
        if (o.getBias())
          w.vectorFlops = out;
      })
      .Case([&](MatmulOp o) {
        auto lhs = cast<RankedTensorType>(o.getLhs().getType());
        double k = o.getTransposeLhs() ? lhs.getDimSize(0) : lhs.getDimSize(1);
        w.tensorFlops = 2 * elements(o.getResult()) * k;
      })
      .Case([&](AttentionOp o) {
        w.tensorFlops = attentionFlops(o);
        auto k = cast<RankedTensorType>(o.getKey().getType());
        w.vectorFlops = 5.0 * k.getDimSize(0) * o.getHeads() * visitedPairs(o);
      })
      .Case([&](AttentionGradOp o) {
        // Recompute QK^T, then dV, dP, dQ, dK: five products of the forward's.
        w.tensorFlops = 2.5 * attentionFlops(o);
      })
      .Case([&](LayerNormOp o) { w.vectorFlops = 8 * elements(o.getResult()); })
      .Case([&](LayerNormGradOp o) {
        w.vectorFlops = 12 * elements(o.getInputGrad());
      })
      .Case([&](GeluOp o) { w.vectorFlops = 10 * elements(o.getResult()); })
      .Case([&](GeluGradOp o) { w.vectorFlops = 14 * elements(o.getResult()); })
      .Case([&](NormalizedPixelLossOp o) {
        w.vectorFlops = 8 * elements(o.getPrediction());
      })
      .Case([&](NormalizedPixelLossGradOp o) {
        w.vectorFlops = 8 * elements(o.getResult());
      })
      .Case([&](AdamWOp o) { w.vectorFlops = 12 * elements(o.getParam()); })
      .Case([&](GlobalNormOp o) {
        for (Value v : o.getInputs())
          w.vectorFlops += 2 * elements(v);
      })
      .Case<AddOp, SumLeadingOp, CastOp, PosEmbed2dOp, ClipCoefficientOp>(
          [&](Operation *o) {
            for (Value v : o->getOperands())
              w.vectorFlops = std::max(w.vectorFlops, elements(v));
            w.vectorFlops = std::max(w.vectorFlops, elements(o->getResult(0)));
          })
      .Default([](Operation *) {}); // data movement: patchify, slice, pad, rows
  return w;
}

double kernelBytes(Operation *op, const TargetDescription &target) {
  auto bytesOf = [&](Value v, Operation *user) {
    auto type = cast<RankedTensorType>(v.getType());
    double size = isa<IntegerType>(type.getElementType()) ? 4
                  : isOptimizerOp(user) ? target.optimizerBytes
                                        : target.activationBytes;
    return size * type.getNumElements();
  };
  if (auto fusion = dyn_cast<FusionOp>(op)) {
    // Reads of values from outside the region (each once) and writes of the
    // results; everything in between stays on chip.
    double bytes = 0;
    llvm::DenseSet<Value> seen;
    Block &body = fusion.getBody().front();
    for (Operation &inner : body)
      for (Value v : inner.getOperands())
        if (v.getParentBlock() == &body && isa<BlockArgument>(v) &&
            seen.insert(v).second)
          bytes += bytesOf(v, &inner);
    auto yield = cast<YieldOp>(body.getTerminator());
    for (Value v : yield.getOperands())
      bytes += bytesOf(v, v.getDefiningOp() ? v.getDefiningOp() : op);
    return bytes;
  }
  double bytes = 0;
  for (Value v : op->getOperands())
    bytes += bytesOf(v, op);
  for (Value v : op->getResults())
    bytes += bytesOf(v, op);
  return bytes;
}

KernelCost kernelCost(Operation *op, const TargetDescription &target) {
  KernelCost k;
  OpWork work;
  if (auto fusion = dyn_cast<FusionOp>(op)) {
    k.kind = ("fusion:" + fusion.getKind()).str();
    fusion.getBody().walk([&](Operation *inner) {
      if (inner == fusion || isa<YieldOp>(inner))
        return;
      OpWork w = opWork(inner);
      work.tensorFlops += w.tensorFlops;
      work.vectorFlops += w.vectorFlops;
      ++k.ops;
    });
  } else {
    k.kind = op->getName().getStringRef().str();
    work = opWork(op);
    k.ops = 1;
  }
  if (auto scope = op->getAttrOfType<StringAttr>(AimDialect::kScopeAttrName))
    k.name = scope.getValue().str();
  k.flops = work.tensorFlops + work.vectorFlops;
  k.bytes = kernelBytes(op, target);
  double compute = work.tensorFlops / target.tensorFlops +
                   work.vectorFlops / target.vectorFlops;
  double memory = k.bytes / target.memoryBandwidth;
  k.computeBound = compute > memory;
  k.seconds = std::max(compute, memory) + target.kernelLaunchSeconds;
  return k;
}

namespace {
/// The ops of `function` in execution order, calls replaced by their callee's.
void expandCalls(func::FuncOp function, SmallVectorImpl<Operation *> &ops) {
  for (Operation &op : function.getBody().front()) {
    if (auto call = dyn_cast<func::CallOp>(op)) {
      auto callee = SymbolTable::lookupNearestSymbolFrom<func::FuncOp>(
          call, call.getCalleeAttr());
      if (callee && !callee.isExternal())
        expandCalls(callee, ops);
      continue;
    }
    ops.push_back(&op);
  }
}

/// The peak of live activations along `ops` (parameters excluded), for
/// values of the functions the ops come from.
double peakActivations(ArrayRef<Operation *> ops,
                       const TargetDescription &target) {
  llvm::DenseMap<Value, size_t> lastUse;
  for (auto [i, op] : llvm::enumerate(ops))
    for (Value v : op->getOperands())
      lastUse[v] = i;
  double live = 0, peak = 0;
  llvm::DenseMap<Value, double> liveBytes;
  for (auto [i, op] : llvm::enumerate(ops)) {
    if (!isa<ReshapeOp, SliceOp, arith::ConstantOp>(op)) // views own none
      for (Value r : op->getResults()) {
        double bytes = elements(r.getType()) * target.activationBytes;
        liveBytes[r] = bytes;
        live += bytes;
      }
    peak = std::max(peak, live);
    for (Value v : op->getOperands()) {
      auto it = liveBytes.find(v);
      if (it != liveBytes.end() && lastUse[v] == i) {
        live -= it->second;
        liveBytes.erase(it);
      }
    }
  }
  return peak;
}
} // namespace

StepCost estimateStepCost(ModuleOp module, const TargetDescription &target) {
  StepCost cost;
  func::FuncOp entry;
  for (StringRef name :
       {kTrainStepName.data(), kLossAndGradsName.data(), "forward"})
    if ((entry = module.lookupSymbol<func::FuncOp>(name)))
      break;
  if (!entry)
    return cost;
  cost.entry = entry.getSymName().str();
  SmallVector<Operation *> ops;
  expandCalls(entry, ops);
  for (Operation *op : ops) {
    if (isFree(op) || op->getParentOfType<FusionOp>())
      continue;
    KernelCost k = kernelCost(op, target);
    cost.flops += k.flops;
    cost.bytes += k.bytes;
    cost.seconds += k.seconds;
    cost.kernels.push_back(std::move(k));
  }
  // Persistent: every {aim.param} argument with its gradient and two moments.
  double params = 0;
  for (unsigned i = 0; i < entry.getNumArguments(); ++i)
    if (entry.getArgAttr(i, AimDialect::kParamAttrName))
      params += elements(entry.getArgumentTypes()[i]);
  cost.persistentBytes = 4 * params * target.optimizerBytes;
  cost.peakActivationBytes = peakActivations(ops, target);
  return cost;
}

} // namespace mlir::aim
