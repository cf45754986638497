//===- Interpreter.cpp - the reference interpreter of aim IR --------------===//
#include "interpreter/Interpreter.h"

#include "interpreter/Kernels.h"

#include "dialects/aim/AimOps.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Shard/IR/ShardOps.h"

#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/StringSet.h"
#include "llvm/ADT/TypeSwitch.h"
#include "llvm/Support/MathExtras.h"

#include <functional>
#include <limits>

using namespace mlir;
using namespace mlir::aim;
using llvm::createStringError;
using llvm::inconvertibleErrorCode;

namespace aim::interp {

namespace {

/// One SSA value: a float tensor (in T) or an integer tensor.
template <typename T> struct Slot {
  Tensor<T> floats;
  std::vector<int64_t> ints;
  std::vector<int64_t> intShape;
  bool isInt = false;
};

std::vector<int64_t> shapeOf(Type type) {
  auto ranked = cast<RankedTensorType>(type);
  return std::vector<int64_t>(ranked.getShape().begin(),
                              ranked.getShape().end());
}

RoundTo roundingFor(Type elementType) {
  if (elementType.isF16())
    return RoundTo::F16;
  if (elementType.isBF16())
    return RoundTo::BF16;
  if (elementType.isF32())
    return RoundTo::F32;
  return RoundTo::F64;
}

Mask maskOf(MaskKind kind) {
  switch (kind) {
  case MaskKind::bidirectional:
    return Mask::Bidirectional;
  case MaskKind::causal:
    return Mask::Causal;
  case MaskKind::prefix_causal:
    return Mask::PrefixCausal;
  }
  return Mask::Bidirectional;
}

/// Describes argument `i` for messages: its aim.param / aim.input name.
std::string argumentName(func::FuncOp function, unsigned i) {
  for (StringRef attr :
       {AimDialect::kParamAttrName, AimDialect::kInputAttrName})
    if (auto name = function.getArgAttrOfType<StringAttr>(i, attr))
      return "'" + name.getValue().str() + "'";
  return "#" + std::to_string(i);
}

/// Evaluates `map(qBegin, qEnd)[prefix]` and returns the largest result.
int64_t evaluateTileBound(AffineMap map, int64_t qBegin, int64_t qEnd,
                          int64_t prefix) {
  std::function<int64_t(AffineExpr)> eval = [&](AffineExpr e) -> int64_t {
    if (auto c = dyn_cast<AffineConstantExpr>(e))
      return c.getValue();
    if (auto d = dyn_cast<AffineDimExpr>(e))
      return d.getPosition() == 0 ? qBegin : qEnd;
    if (isa<AffineSymbolExpr>(e))
      return prefix;
    auto bin = cast<AffineBinaryOpExpr>(e);
    int64_t l = eval(bin.getLHS()), r = eval(bin.getRHS());
    switch (e.getKind()) {
    case AffineExprKind::Add:
      return l + r;
    case AffineExprKind::Mul:
      return l * r;
    case AffineExprKind::FloorDiv:
      return llvm::divideFloorSigned(l, r);
    case AffineExprKind::CeilDiv:
      return llvm::divideCeilSigned(l, r);
    case AffineExprKind::Mod:
      return llvm::mod(l, r);
    default:
      return 0;
    }
  };
  int64_t bound = std::numeric_limits<int64_t>::min();
  for (AffineExpr result : map.getResults())
    bound = std::max(bound, eval(result));
  return bound;
}

/// The tiled kernels' plan for an attention op: its recorded tile rule.
template <typename OpTy> TilePlan tilePlanOf(OpTy op, const Options &options) {
  TilePlan plan;
  plan.queryTile = options.attentionQueryTile;
  plan.keyTile = options.attentionKeyTile;
  if (auto map = op.getTileEmptyFromAttr())
    plan.emptyFrom = [m = map.getValue()](int64_t qb, int64_t qe, int64_t k) {
      return evaluateTileBound(m, qb, qe, k);
    };
  if (auto map = op.getTileFullUntilAttr())
    plan.fullUntil = [m = map.getValue()](int64_t qb, int64_t qe, int64_t k) {
      return evaluateTileBound(m, qb, qe, k);
    };
  return plan;
}

template <typename T> class Evaluator {
public:
  Evaluator(func::FuncOp function, const Options &options)
      : function(function), options(options) {}

  /// Runs the function on values already converted to slots.
  llvm::Expected<std::vector<Slot<T>>> run(std::vector<Slot<T>> arguments);

private:
  llvm::Error opError(Operation *op, const Twine &message) {
    std::string location;
    llvm::raw_string_ostream os(location);
    op->getLoc().print(os);
    return createStringError(inconvertibleErrorCode(), "%s: %s at %s",
                             op->getName().getStringRef().str().c_str(),
                             message.str().c_str(), location.c_str());
  }
  const Tensor<T> &floats(Value v) { return values[v].floats; }
  const std::vector<int64_t> &ints(Value v) { return values[v].ints; }
  /// The single element of a 0-d float or integer tensor.
  T scalar(Value v) { return values[v].floats.data[0]; }
  int64_t intScalar(Value v) { return values[v].ints[0]; }
  void setFloats(Value v, Tensor<T> t) {
    Slot<T> slot;
    slot.floats = std::move(t);
    values[v] = std::move(slot);
  }
  Tensor<T> scalarTensor(T value) {
    Tensor<T> t(std::vector<int64_t>{});
    t.data[0] = value;
    return t;
  }
  /// Prefix lengths of an op with an optional prefix operand, checked.
  llvm::Error prefixOf(Operation *op, Value prefix, int64_t tokens,
                       std::vector<int64_t> &out) {
    if (!prefix)
      return llvm::Error::success();
    out = ints(prefix);
    if (Status s = checkPrefixLengths(out, tokens); !s)
      return opError(op, s.message());
    return llvm::Error::success();
  }

  llvm::Error evaluate(Operation *op);
  llvm::Error evaluateCollective(Operation *op);
  llvm::Error evaluateConstant(arith::ConstantOp op);
  llvm::Error evaluateCall(func::CallOp op);
  llvm::Error evaluateFusion(FusionOp op);

  bool tiled() const { return options.attentionQueryTile > 0; }
  void addTileCounts(const TileCounts &c) {
    if (AttentionTileCounts *total = options.tileCounts) {
      total->empty += c.empty;
      total->full += c.full;
      total->partial += c.partial;
    }
  }

  func::FuncOp function;
  const Options &options;
  llvm::DenseMap<Value, Slot<T>> values;
};

/// The shard collectives of a per-rank program, through options.collectives.
template <typename T>
llvm::Error Evaluator<T>::evaluateCollective(Operation *op) {
  Collectives *grid = options.collectives;
  if (!grid)
    return opError(op, "a collective needs the other ranks: run the per-rank "
                       "program on a simulated grid (interp::runOnGrid)");
  // Every rank's tensor of the group, in group order, as tensors like `x`.
  auto exchange = [&](ArrayRef<int16_t> axes,
                      const Tensor<T> &x) -> llvm::Expected<std::vector<Tensor<T>>> {
    std::vector<double> mine(x.data.begin(), x.data.end());
    auto parts = grid->exchange(axes, std::move(mine));
    if (!parts)
      return parts.takeError();
    std::vector<Tensor<T>> tensors;
    for (const std::vector<double> &part : *parts) {
      if (part.size() != x.data.size())
        return opError(op, "the ranks of a group hold tensors of different "
                           "sizes");
      Tensor<T> t;
      t.shape = x.shape;
      t.data.assign(part.begin(), part.end());
      tensors.push_back(std::move(t));
    }
    return tensors;
  };
  // The elementwise sum of the parts, added in group order on every rank so
  // that every rank gets the same bits.
  auto sum = [](const std::vector<Tensor<T>> &parts) {
    Tensor<T> total = parts.front();
    for (size_t r = 1; r < parts.size(); ++r)
      for (size_t i = 0; i < total.data.size(); ++i)
        total.data[i] += parts[r].data[i];
    return total;
  };
  // This rank's block of `x` along `dim` when the group splits it evenly.
  auto ownBlock = [&](ArrayRef<int16_t> axes, const Tensor<T> &x,
                      int64_t dim) {
    auto [index, size] = grid->groupPosition(axes);
    int64_t block = x.shape[dim] / size;
    return slice(x, dim, index * block, block);
  };

  if (auto reduce = dyn_cast<shard::AllReduceOp>(op)) {
    if (reduce.getReduction() != shard::ReductionKind::Sum)
      return opError(op, "only sums are supported");
    auto parts = exchange(reduce.getGridAxes(), floats(reduce.getInput()));
    if (!parts)
      return parts.takeError();
    setFloats(reduce.getResult(), sum(*parts));
    return llvm::Error::success();
  }
  if (auto slice = dyn_cast<shard::AllSliceOp>(op)) {
    setFloats(slice.getResult(),
              ownBlock(slice.getGridAxes(), floats(slice.getInput()),
                       slice.getSliceAxis().getSExtValue()));
    return llvm::Error::success();
  }
  if (auto gather = dyn_cast<shard::AllGatherOp>(op)) {
    auto parts = exchange(gather.getGridAxes(), floats(gather.getInput()));
    if (!parts)
      return parts.takeError();
    int64_t dim = gather.getGatherAxis().getSExtValue();
    std::vector<int64_t> shape = parts->front().shape;
    shape[dim] *= parts->size();
    Tensor<T> whole(shape);
    int64_t outer = 1, inner = 1, block = parts->front().shape[dim];
    for (int64_t d = 0; d < dim; ++d)
      outer *= shape[d];
    for (size_t d = dim + 1; d < shape.size(); ++d)
      inner *= shape[d];
    for (size_t r = 0; r < parts->size(); ++r)
      for (int64_t o = 0; o < outer; ++o)
        std::copy_n(&(*parts)[r].data[o * block * inner], block * inner,
                    &whole.data[(o * shape[dim] + r * block) * inner]);
    setFloats(gather.getResult(), std::move(whole));
    return llvm::Error::success();
  }
  if (auto scatter = dyn_cast<shard::ReduceScatterOp>(op)) {
    if (scatter.getReduction() != shard::ReductionKind::Sum)
      return opError(op, "only sums are supported");
    auto parts = exchange(scatter.getGridAxes(), floats(scatter.getInput()));
    if (!parts)
      return parts.takeError();
    setFloats(scatter.getResult(),
              ownBlock(scatter.getGridAxes(), sum(*parts),
                       scatter.getScatterAxis().getSExtValue()));
    return llvm::Error::success();
  }
  return opError(op, "the interpreter does not know this op");
}

template <typename T>
llvm::Error Evaluator<T>::evaluateConstant(arith::ConstantOp op) {
  auto dense = dyn_cast<DenseElementsAttr>(op.getValue());
  if (!dense)
    return opError(op, "only dense tensor constants are supported");
  Slot<T> slot;
  std::vector<int64_t> shape = shapeOf(op.getType());
  if (isa<IntegerType>(dense.getElementType())) {
    slot.isInt = true;
    slot.intShape = shape;
    for (const APInt &v : dense.getValues<APInt>())
      slot.ints.push_back(v.getSExtValue());
  } else {
    slot.floats.shape = shape;
    for (const APFloat &v : dense.getValues<APFloat>())
      slot.floats.data.push_back(T(v.convertToDouble()));
  }
  values[op.getResult()] = std::move(slot);
  return llvm::Error::success();
}

template <typename T> llvm::Error Evaluator<T>::evaluateCall(func::CallOp op) {
  auto callee = SymbolTable::lookupNearestSymbolFrom<func::FuncOp>(
      op, op.getCalleeAttr());
  if (!callee || callee.isExternal())
    return opError(op, "calls @" + op.getCallee() +
                           ", which has no body in this module");
  std::vector<Slot<T>> arguments;
  for (Value operand : op.getOperands())
    arguments.push_back(values[operand]);
  llvm::Expected<std::vector<Slot<T>>> results =
      Evaluator<T>(callee, options).run(std::move(arguments));
  if (!results)
    return results.takeError();
  for (auto [result, slot] : llvm::zip(op.getResults(), *results))
    values[result] = std::move(slot);
  return llvm::Error::success();
}

/// A fusion computes exactly what its ops compute, one after the other.
template <typename T> llvm::Error Evaluator<T>::evaluateFusion(FusionOp op) {
  Block &body = op.getBody().front();
  // Copy before inserting: an insertion may rehash and move the source.
  for (auto [arg, input] : llvm::zip(body.getArguments(), op.getInputs())) {
    Slot<T> slot = values[input];
    values[arg] = std::move(slot);
  }
  for (Operation &inner : body.without_terminator())
    if (llvm::Error err = evaluate(&inner))
      return err;
  auto yield = cast<YieldOp>(body.getTerminator());
  for (auto [result, value] : llvm::zip(op.getResults(), yield.getValues())) {
    Slot<T> slot = values[value];
    values[result] = std::move(slot);
  }
  for (Operation &inner : body.without_terminator())
    for (Value v : inner.getResults())
      values.erase(v);
  for (BlockArgument arg : body.getArguments())
    values.erase(arg);
  return llvm::Error::success();
}

template <typename T> llvm::Error Evaluator<T>::evaluate(Operation *op) {
  if (auto constant = dyn_cast<arith::ConstantOp>(op))
    return evaluateConstant(constant);
  if (auto call = dyn_cast<func::CallOp>(op))
    return evaluateCall(call);
  if (auto fusion = dyn_cast<FusionOp>(op))
    return evaluateFusion(fusion);
  if (isa<shard::ShardDialect>(op->getDialect()))
    return evaluateCollective(op);

  llvm::Error error = llvm::Error::success();
  bool handled =
      llvm::TypeSwitch<Operation *, bool>(op)
          .Case([&](PatchifyOp o) {
            setFloats(o, patchify(floats(o.getImages()), o.getPatchSize(),
                                  o.getOrder() == PatchOrder::channel_last));
            return true;
          })
          .Case([&](ReshapeOp o) {
            Tensor<T> t = floats(o.getInput());
            t.shape = shapeOf(o.getType());
            setFloats(o, std::move(t));
            return true;
          })
          .Case([&](SliceOp o) {
            setFloats(o, slice(floats(o.getInput()), o.getDim(), o.getOffset(),
                               o.getSize()));
            return true;
          })
          .Case([&](CastOp o) {
            setFloats(o, cast(floats(o.getInput()),
                              roundingFor(o.getType().getElementType())));
            return true;
          })
          .Case([&](LinearOp o) {
            const Tensor<T> *bias =
                o.getBias() ? &floats(o.getBias()) : nullptr;
            setFloats(
                o, linear(floats(o.getInput()), floats(o.getWeight()), bias));
            return true;
          })
          .Case([&](LayerNormOp o) {
            setFloats(o, layerNorm(floats(o.getInput()), floats(o.getWeight()),
                                   floats(o.getBias()),
                                   o.getEpsilon().convertToDouble()));
            return true;
          })
          .Case([&](AddOp o) {
            setFloats(o, add(floats(o.getLhs()), floats(o.getRhs())));
            return true;
          })
          .Case([&](GeluOp o) {
            setFloats(o, gelu(floats(o.getInput()),
                              o.getApproximation() == GeluApproximation::tanh));
            return true;
          })
          .Case([&](PosEmbed2dOp o) {
            setFloats(o, posEmbed2d<T>(o.getGridHeight(), o.getGridWidth(),
                                       o.getType().getDimSize(1)));
            return true;
          })
          .Case([&](AttentionOp o) {
            std::vector<int64_t> prefix;
            error = prefixOf(op, o.getPrefix(),
                             o.getKey().getType().getDimSize(1), prefix);
            if (error)
              return true;
            AttentionResult<T> r;
            if (o.getLiveQueries()) {
              // One row per live query: no tiles to classify.
              r = attentionLiveQueries(floats(o.getQuery()), floats(o.getKey()),
                                       floats(o.getValue()), o.getHeads(),
                                       prefix, o.getScale().convertToDouble());
            } else if (tiled()) {
              TileCounts counts;
              r = attentionTiled(floats(o.getQuery()), floats(o.getKey()),
                                 floats(o.getValue()), o.getHeads(),
                                 maskOf(o.getMask()), prefix,
                                 o.getScale().convertToDouble(),
                                 tilePlanOf(o, options), &counts);
              addTileCounts(counts);
            } else {
              r = attention(floats(o.getQuery()), floats(o.getKey()),
                            floats(o.getValue()), o.getHeads(),
                            maskOf(o.getMask()), prefix,
                            o.getScale().convertToDouble());
            }
            setFloats(o.getResult(), std::move(r.output));
            setFloats(o.getRowLogsumexp(), std::move(r.rowLogSumExp));
            return true;
          })
          .Case([&](NormalizedPixelLossOp o) {
            StatusOr<T> loss = normalizedPixelLoss(
                floats(o.getPrediction()), floats(o.getTarget()),
                ints(o.getPrefix()), o.getEpsilon().convertToDouble());
            if (!loss)
              error = opError(op, loss.status().message());
            else
              setFloats(o, scalarTensor(*loss));
            return true;
          })
          // Backward ops.
          .Case([&](MatmulOp o) {
            setFloats(o, matmul(floats(o.getLhs()), floats(o.getRhs()),
                                o.getTransposeLhs(), o.getTransposeRhs()));
            return true;
          })
          .Case([&](SumLeadingOp o) {
            setFloats(o,
                      sumLeading(floats(o.getInput()), shapeOf(o.getType())));
            return true;
          })
          .Case([&](PadOp o) {
            setFloats(o, pad(floats(o.getInput()), o.getDim(), o.getBefore(),
                             o.getAfter()));
            return true;
          })
          .Case([&](LayerNormGradOp o) {
            LayerNormGrads<T> g = layerNormGrad(
                floats(o.getGrad()), floats(o.getInput()),
                floats(o.getWeight()), o.getEpsilon().convertToDouble());
            setFloats(o.getInputGrad(), std::move(g.input));
            setFloats(o.getWeightGrad(), std::move(g.weight));
            setFloats(o.getBiasGrad(), std::move(g.bias));
            return true;
          })
          .Case([&](GeluGradOp o) {
            setFloats(
                o, geluGrad(floats(o.getGrad()), floats(o.getInput()),
                            o.getApproximation() == GeluApproximation::tanh));
            return true;
          })
          .Case([&](AttentionGradOp o) {
            std::vector<int64_t> prefix;
            error = prefixOf(op, o.getPrefix(),
                             o.getKey().getType().getDimSize(1), prefix);
            if (error)
              return true;
            if (o.getLiveQueries()) {
              AttentionGrads<T> g = attentionGradLiveQueries(
                  floats(o.getGrad()), floats(o.getQuery()),
                  floats(o.getKey()), floats(o.getValue()),
                  floats(o.getOutput()), floats(o.getRowLogsumexp()),
                  o.getHeads(), prefix, o.getScale().convertToDouble());
              setFloats(o.getQueryGrad(), std::move(g.query));
              setFloats(o.getKeyGrad(), std::move(g.key));
              setFloats(o.getValueGrad(), std::move(g.value));
              return true;
            }
            TileCounts counts;
            AttentionGrads<T> g = attentionGrad(
                floats(o.getGrad()), floats(o.getQuery()), floats(o.getKey()),
                floats(o.getValue()), floats(o.getOutput()),
                floats(o.getRowLogsumexp()), o.getHeads(), maskOf(o.getMask()),
                prefix, o.getScale().convertToDouble(),
                tiled() ? tilePlanOf(o, options) : TilePlan(), &counts);
            if (tiled())
              addTileCounts(counts);
            setFloats(o.getQueryGrad(), std::move(g.query));
            setFloats(o.getKeyGrad(), std::move(g.key));
            setFloats(o.getValueGrad(), std::move(g.value));
            return true;
          })
          .Case([&](NormalizedPixelLossGradOp o) {
            StatusOr<Tensor<T>> d = normalizedPixelLossGrad(
                scalar(o.getGrad()), floats(o.getPrediction()),
                floats(o.getTarget()), ints(o.getPrefix()),
                o.getEpsilon().convertToDouble());
            if (!d)
              error = opError(op, d.status().message());
            else
              setFloats(o, std::move(*d));
            return true;
          })
          // Token liveness.
          .Case([&](GatherLiveRowsOp o) {
            StatusOr<Tensor<T>> rows =
                gatherLiveRows(floats(o.getInput()), ints(o.getPrefix()),
                               o.getType().getDimSize(0));
            if (!rows)
              error = opError(op, rows.status().message());
            else
              setFloats(o, std::move(*rows));
            return true;
          })
          .Case([&](ScatterLiveRowsOp o) {
            StatusOr<Tensor<T>> x =
                scatterLiveRows(floats(o.getInput()), ints(o.getPrefix()),
                                o.getType().getDimSize(1));
            if (!x)
              error = opError(op, x.status().message());
            else
              setFloats(o, std::move(*x));
            return true;
          })
          // Distribution.
          .Case([&](EnterPartialOp o) {
            Tensor<T> x = floats(o.getInput());
            setFloats(o, std::move(x));
            return true;
          })
          .Case([&](WaitCollectivesOp o) {
            // The interpreter's collectives finish when they are evaluated.
            for (auto [in, out] : llvm::zip(o.getInputs(), o.getResults())) {
              Tensor<T> x = floats(in);
              setFloats(out, std::move(x));
            }
            return true;
          })
          .Case([&](TargetCountOp o) {
            std::vector<int64_t> prefix;
            error = prefixOf(op, o.getPrefix(), o.getPatches(), prefix);
            int64_t count = 0;
            for (int64_t k : prefix)
              count += o.getPatches() - std::max<int64_t>(k, 1);
            setFloats(o, scalarTensor(T(count)));
            return true;
          })
          .Case([&](ReweightOp o) {
            setFloats(o, scalarTensor(scalar(o.getInput()) *
                                      scalar(o.getWeight()) /
                                      scalar(o.getTotal())));
            return true;
          })
          .Case([&](SumSquaresOp o) {
            std::vector<const Tensor<T> *> inputs;
            for (Value v : o.getInputs())
              inputs.push_back(&floats(v));
            setFloats(o, scalarTensor(sumSquares(inputs)));
            return true;
          })
          .Case([&](SqrtOp o) {
            setFloats(o, scalarTensor(std::sqrt(scalar(o.getInput()))));
            return true;
          })
          // Optimiser ops.
          .Case([&](GlobalNormOp o) {
            std::vector<const Tensor<T> *> inputs;
            for (Value v : o.getInputs())
              inputs.push_back(&floats(v));
            setFloats(o, scalarTensor(globalNorm(inputs)));
            return true;
          })
          .Case([&](ClipCoefficientOp o) {
            T norm = scalar(o.getNorm());
            T coef = T(o.getMaxNorm().convertToDouble()) /
                     (norm + T(o.getEpsilon().convertToDouble()));
            setFloats(o, scalarTensor(std::min(T(1), coef)));
            return true;
          })
          .Case([&](AdamWOp o) {
            AdamWHyper hyper{o.getBeta1().convertToDouble(),
                             o.getBeta2().convertToDouble(),
                             o.getEpsilon().convertToDouble(),
                             o.getWeightDecay().convertToDouble()};
            if (intScalar(o.getStep()) < 0) {
              error = opError(op, "the step index must not be negative, got " +
                                      std::to_string(intScalar(o.getStep())));
              return true;
            }
            AdamWState<T> r =
                adamw(floats(o.getParam()), floats(o.getGrad()),
                      floats(o.getExpAvg()), floats(o.getExpAvgSq()),
                      scalar(o.getLr()), intScalar(o.getStep()),
                      scalar(o.getClipCoefficient()), hyper);
            setFloats(o.getNewParam(), std::move(r.param));
            setFloats(o.getNewExpAvg(), std::move(r.expAvg));
            setFloats(o.getNewExpAvgSq(), std::move(r.expAvgSq));
            return true;
          })
          .Default([](Operation *) { return false; });
  if (!handled)
    return opError(op, "the interpreter does not know this op");
  return error;
}

template <typename T>
llvm::Expected<std::vector<Slot<T>>>
Evaluator<T>::run(std::vector<Slot<T>> arguments) {
  Block &body = function.getBody().front();
  if (arguments.size() != body.getNumArguments())
    return createStringError(inconvertibleErrorCode(),
                             "@%s takes %u arguments but %zu were given",
                             function.getSymName().str().c_str(),
                             body.getNumArguments(), arguments.size());
  for (auto [arg, slot] : llvm::zip(body.getArguments(), arguments))
    values[arg] = std::move(slot);

  // Free each value after its last use: a whole training step of a real batch
  // would otherwise hold every activation at once.
  llvm::DenseMap<Value, Operation *> lastUser;
  for (Operation &op : body)
    for (Value operand : op.getOperands())
      lastUser[operand] = &op;

  for (Operation &op : body) {
    if (auto ret = dyn_cast<func::ReturnOp>(op)) {
      std::vector<Slot<T>> results;
      for (Value v : ret.getOperands())
        results.push_back(values[v]);
      return results;
    }
    if (llvm::Error err = evaluate(&op))
      return std::move(err);
    for (Value operand : op.getOperands())
      if (lastUser[operand] == &op)
        values.erase(operand);
  }
  return createStringError(inconvertibleErrorCode(), "@%s has no func.return",
                           function.getSymName().str().c_str());
}

/// Host tensors into slots, checking them against the signature.
template <typename T>
llvm::Expected<std::vector<Slot<T>>>
toSlots(func::FuncOp function, const std::vector<HostTensor> &arguments) {
  if (arguments.size() != function.getNumArguments())
    return createStringError(inconvertibleErrorCode(),
                             "@%s takes %u arguments but %zu were given",
                             function.getSymName().str().c_str(),
                             function.getNumArguments(), arguments.size());
  std::vector<Slot<T>> slots;
  for (auto [i, given] : llvm::enumerate(arguments)) {
    Type type = function.getArgumentTypes()[i];
    std::vector<int64_t> expected = shapeOf(type);
    if (given.shape != expected)
      return createStringError(
          inconvertibleErrorCode(),
          "argument %s of @%s must have shape %s but has %s",
          argumentName(function, i).c_str(),
          function.getSymName().str().c_str(), shapeToString(expected).c_str(),
          shapeToString(given.shape).c_str());
    bool wantsInt =
        isa<IntegerType>(cast<RankedTensorType>(type).getElementType());
    bool isInt = given.dtype == DType::I32 || given.dtype == DType::I64;
    if (wantsInt != isInt)
      return createStringError(
          inconvertibleErrorCode(), "argument %s of @%s must be %s but is %s",
          argumentName(function, i).c_str(),
          function.getSymName().str().c_str(),
          wantsInt ? "an integer tensor" : "a float tensor",
          dtypeName(given.dtype));
    Slot<T> slot;
    if (isInt) {
      slot.isInt = true;
      slot.ints = given.toInt64s();
      slot.intShape = given.shape;
    } else {
      slot.floats.shape = given.shape;
      std::vector<double> doubles = given.toDoubles();
      slot.floats.data.assign(doubles.begin(), doubles.end());
    }
    slots.push_back(std::move(slot));
  }
  return slots;
}

/// Slots back into host tensors: floats as F64 or F32, integers as I64.
template <typename T>
std::vector<HostTensor> toHostTensors(const std::vector<Slot<T>> &slots) {
  std::vector<HostTensor> out;
  DType floatType = sizeof(T) == 8 ? DType::F64 : DType::F32;
  for (const Slot<T> &slot : slots) {
    if (slot.isInt) {
      out.push_back(HostTensor::fromDoubles(
          DType::I64, slot.intShape,
          std::vector<double>(slot.ints.begin(), slot.ints.end())));
    } else {
      out.push_back(
          HostTensor::fromDoubles(floatType, slot.floats.shape,
                                  std::vector<double>(slot.floats.data.begin(),
                                                      slot.floats.data.end())));
    }
  }
  return out;
}

template <typename T>
llvm::Expected<std::vector<HostTensor>>
runIn(func::FuncOp function, const std::vector<HostTensor> &arguments,
      const Options &options) {
  llvm::Expected<std::vector<Slot<T>>> slots = toSlots<T>(function, arguments);
  if (!slots)
    return slots.takeError();
  llvm::Expected<std::vector<Slot<T>>> results =
      Evaluator<T>(function, options).run(std::move(*slots));
  if (!results)
    return results.takeError();
  return toHostTensors(*results);
}

} // namespace

llvm::Expected<std::vector<HostTensor>>
runFunction(func::FuncOp function, const std::vector<HostTensor> &arguments,
            const Options &options) {
  if (!function.getBody().hasOneBlock())
    return createStringError(inconvertibleErrorCode(),
                             "@%s must have exactly one block",
                             function.getSymName().str().c_str());
  if (options.precision == Precision::F64)
    return runIn<double>(function, arguments, options);
  return runIn<float>(function, arguments, options);
}

llvm::Expected<std::vector<HostTensor>>
bindArguments(func::FuncOp function, const NamedTensors &params,
              const std::map<std::string, HostTensor> &inputs,
              const NamedTensors &state) {
  std::map<std::string, const HostTensor *> byName, stateByName;
  for (const auto &[name, tensor] : params)
    byName[name] = &tensor;
  for (const auto &[name, tensor] : state)
    stateByName[name] = &tensor;
  std::vector<HostTensor> bound;
  std::vector<std::string> errors;
  llvm::StringSet<> used;
  for (unsigned i = 0, e = function.getNumArguments(); i < e; ++i) {
    std::vector<int64_t> expected = shapeOf(function.getArgumentTypes()[i]);
    const HostTensor *tensor = nullptr;
    std::string what;
    if (auto name = function.getArgAttrOfType<StringAttr>(
            i, AimDialect::kParamAttrName)) {
      what = "parameter '" + name.getValue().str() + "'";
      auto it = byName.find(name.getValue().str());
      if (it == byName.end()) {
        errors.push_back("missing " + what + " with shape " +
                         shapeToString(expected) + " in the parameter file");
        continue;
      }
      used.insert(name.getValue());
      tensor = it->second;
    } else if (auto name = function.getArgAttrOfType<StringAttr>(
                   i, AimDialect::kInputAttrName)) {
      what = "input '" + name.getValue().str() + "'";
      auto it = inputs.find(name.getValue().str());
      if (it == inputs.end()) {
        errors.push_back("missing " + what + " with shape " +
                         shapeToString(expected));
        continue;
      }
      tensor = &it->second;
    } else if (auto name = function.getArgAttrOfType<StringAttr>(
                   i, AimDialect::kStateAttrName)) {
      what = "optimiser state '" + name.getValue().str() + "'";
      auto it = stateByName.find(name.getValue().str());
      if (it == stateByName.end()) {
        errors.push_back("missing " + what + " with shape " +
                         shapeToString(expected));
        continue;
      }
      tensor = it->second;
    } else {
      errors.push_back("argument #" + std::to_string(i) + " of @" +
                       function.getSymName().str() +
                       " has none of {aim.param}, {aim.state}, {aim.input}: "
                       "the interpreter cannot tell what to bind to it");
      continue;
    }
    if (tensor->shape != expected) {
      errors.push_back(what + " must have shape " + shapeToString(expected) +
                       " but has " + shapeToString(tensor->shape));
      continue;
    }
    bound.push_back(*tensor);
  }
  for (const auto &[name, tensor] : params)
    if (!used.contains(name))
      errors.push_back("the parameter file has '" + name +
                       "', which this model does not have (wrong model?)");
  if (!errors.empty()) {
    std::string all;
    for (const std::string &e : errors)
      all += (all.empty() ? "" : "\n") + e;
    return createStringError(inconvertibleErrorCode(), "%s", all.c_str());
  }
  return bound;
}

} // namespace aim::interp
