//===- Shard.cpp - @forward as the program of one rank of a dp x tp grid --===//
//
// aim-shard walks @forward once, in order, knowing for every value how the
// rank's tensor relates to the whole one (its Layout): split on the batch
// over dp, split on one dimension over tp, or a partial sum over tp. Each
// op's rule retypes its results to the rank's shapes and inserts the
// collectives its operands need. The rules cover AIM's ops; anything else is
// an error naming the op, never a silent replication.
//
//===----------------------------------------------------------------------===//

#include "passes/Passes.h"

#include "dialects/aim/AimSharding.h"

#include "mlir/IR/Builders.h"
#include "llvm/ADT/TypeSwitch.h"

#include <regex>

namespace mlir::aim {
#define GEN_PASS_DEF_SHARDPASS
#include "passes/Passes.h.inc"
} // namespace mlir::aim

using namespace mlir;
using namespace mlir::aim;

namespace {

/// How a rank's tensor relates to the whole one.
struct Layout {
  bool batched = false; // dim 0 is the batch, split over dp
  int64_t tpDim = -1;   // the dimension split over tp, or -1
  int64_t tpGroups = 1; // tpDim seen as this many blocks, each split
  bool partial = false; // each tp rank holds a summand of the whole
};

/// The default Megatron split of a trunk-block weight, if it has one.
std::optional<Layout> megatronSplit(StringRef param) {
  static const std::regex block(R"(trunk\.blocks\.\d+\.(.*)\.weight)");
  std::cmatch match;
  std::string name = param.str();
  if (!std::regex_match(name.c_str(), match, block))
    return std::nullopt;
  std::string layer = match[1];
  Layout l;
  if (layer == "attn.qkv")
    l.tpDim = 0, l.tpGroups = 3; // rows: q, k, v, each of h heads
  else if (layer == "mlp.fc1")
    l.tpDim = 0;
  else if (layer == "attn.proj" || layer == "mlp.fc2")
    l.tpDim = 1;
  else
    return std::nullopt;
  return l;
}

struct ShardPass : public mlir::aim::impl::ShardPassBase<ShardPass> {
  using ShardPassBase::ShardPassBase;

  void runOnOperation() override;

private:
  LogicalResult shardArguments(func::FuncOp forward);
  LogicalResult shardOp(Operation *op);
  LogicalResult shardLoss(NormalizedPixelLossOp loss);

  Layout &layoutOf(Value v) { return layouts[v]; }
  /// `type` cut to a rank's part under `layout`.
  RankedTensorType localType(Type type, const Layout &layout) const;
  /// Gives `result` its layout and the rank's type.
  void setLayout(Value result, Layout layout) {
    result.setType(localType(result.getType(), layout));
    layouts[result] = layout;
  }
  /// Operand `index` of `op` as a whole tensor on every tp rank: a partial
  /// sum is completed with shard.all_reduce; a split one is an error.
  LogicalResult makeWhole(Operation *op, unsigned index);
  /// `x` (whole) through aim.enter_partial before `user`, once per value.
  Value enterPartial(Operation *user, Value x);

  shard::AllReduceOp allReduce(OpBuilder &b, Location loc, Value v,
                               int16_t axis) {
    return shard::AllReduceOp::create(b, loc, v, kGridName,
                                      ArrayRef<int16_t>{axis},
                                      shard::ReductionKind::Sum);
  }

  llvm::DenseMap<Value, Layout> layouts;
  llvm::DenseMap<Value, Value> wholeOf, partialEntryOf;
};

RankedTensorType ShardPass::localType(Type type,
                                      const Layout &layout) const {
  auto ranked = cast<RankedTensorType>(type);
  SmallVector<int64_t> shape(ranked.getShape());
  if (layout.batched)
    shape[0] /= dataParallel;
  if (layout.tpDim >= 0)
    shape[layout.tpDim] /= tensorParallel;
  return ranked.clone(shape);
}

LogicalResult ShardPass::makeWhole(Operation *op, unsigned index) {
  Value v = op->getOperand(index);
  Layout layout = layoutOf(v);
  if (layout.tpDim >= 0)
    return op->emitOpError()
           << "needs operand " << index
           << " whole, but it is split over tp (dimension " << layout.tpDim
           << "); aim-shard does not gather split values: change the "
              "aim.sharding of the parameters that split it";
  if (!layout.partial)
    return success();
  Value &whole = wholeOf[v];
  if (!whole) {
    OpBuilder b(op);
    whole = allReduce(b, op->getLoc(), v, kTensorParallelAxis);
    if (Attribute scope = op->getAttr(AimDialect::kScopeAttrName))
      whole.getDefiningOp()->setAttr(AimDialect::kScopeAttrName, scope);
    layout.partial = false;
    layouts[whole] = layout;
  }
  op->setOperand(index, whole);
  return success();
}

Value ShardPass::enterPartial(Operation *user, Value x) {
  Value &entered = partialEntryOf[x];
  if (!entered) {
    OpBuilder b(user);
    entered = EnterPartialOp::create(
        b, x.getLoc(), x.getType(), x,
        FlatSymbolRefAttr::get(b.getContext(), kGridName),
        b.getDenseI16ArrayAttr({kTensorParallelAxis}));
    if (Attribute scope = user->getAttr(AimDialect::kScopeAttrName))
      entered.getDefiningOp()->setAttr(AimDialect::kScopeAttrName, scope);
    layouts[entered] = layoutOf(x);
  }
  return entered;
}

LogicalResult ShardPass::shardArguments(func::FuncOp forward) {
  OpBuilder b(forward.getContext());
  for (BlockArgument arg : forward.getArguments()) {
    unsigned i = arg.getArgNumber();
    auto type = dyn_cast<RankedTensorType>(arg.getType());
    if (!type)
      return forward.emitError() << "argument " << i << " is not a tensor";
    Layout layout;
    ::aim::TensorSharding cut; // what the rank holds of the whole argument
    if (forward.getArgAttr(i, AimDialect::kInputAttrName)) {
      // Data: split on the batch.
      layout.batched = true;
      if (type.getRank() == 0 || type.getDimSize(0) % dataParallel != 0)
        return forward.emitError()
               << "the batch of input " << i << " (" << type
               << ") does not split into " << int64_t(dataParallel)
               << " data-parallel ranks: make it a multiple of dp";
      if (dataParallel > 1)
        cut.dpDim = 0;
    } else if (auto name = forward.getArgAttrOfType<StringAttr>(
                   i, AimDialect::kParamAttrName)) {
      auto given = forward.getArgAttrOfType<DictionaryAttr>(
          i, AimDialect::kShardingAttrName);
      if (given) {
        cut = readSharding(given);
        if (cut.dpDim >= 0 || (cut.tpDim < 0 && given.size() > 0))
          return forward.emitError()
                 << "parameter " << name << ": aim.sharding " << given
                 << " is not {tp = DIM} or {tp = DIM, tp_groups = G}";
      } else if (defaultShardings && tensorParallel > 1) {
        if (std::optional<Layout> split = megatronSplit(name.getValue()))
          cut = {split->tpDim, split->tpGroups, -1};
      }
      std::vector<int64_t> shape(type.getShape());
      if (cut.tpDim >= 0 &&
          !::aim::checkSharding(shape, cut, dataParallel, tensorParallel)
               .empty())
        return forward.emitError()
               << "parameter " << name << " (" << type
               << ") cannot split dimension " << cut.tpDim << " into "
               << cut.tpGroups << " block(s) of " << int64_t(tensorParallel)
               << " tp ranks";
      layout.tpDim = cut.tpDim;
      layout.tpGroups = cut.tpGroups;
    } else {
      return forward.emitError()
             << "argument " << i << " is neither data (aim.input) nor a "
             << "parameter (aim.param)";
    }
    if (cut.whole())
      forward.removeArgAttr(i, AimDialect::kShardingAttrName);
    else
      forward.setArgAttr(i, AimDialect::kShardingAttrName,
                         shardingAttr(b, cut));
    setLayout(arg, layout);
  }
  return success();
}

/// The loss of this rank's images becomes its share of the mean over the
/// global batch, and the shares are summed: the loss of the whole batch.
LogicalResult ShardPass::shardLoss(NormalizedPixelLossOp loss) {
  if (failed(makeWhole(loss, 0)) || failed(makeWhole(loss, 1)))
    return failure();
  setLayout(loss.getResult(), Layout());
  if (!sumsOverDataParallel(dataParallel, tensorParallel))
    return success();
  OpBuilder b(loss->getContext());
  b.setInsertionPointAfter(loss);
  Location loc = loss.getLoc();
  Type scalar = loss.getType();
  int64_t patches = loss.getPrediction().getType().getDimSize(1);
  Value count = TargetCountOp::create(b, loc, scalar, loss.getPrefix(),
                                      b.getI64IntegerAttr(patches));
  Value total = allReduce(b, loc, count, kDataParallelAxis);
  auto share = ReweightOp::create(b, loc, scalar, loss, count, total);
  Value global = allReduce(b, loc, share, kDataParallelAxis);
  loss.getResult().replaceAllUsesExcept(global, share);
  for (Operation *added :
       {count.getDefiningOp(), total.getDefiningOp(), share.getOperation(),
        global.getDefiningOp()})
    added->setAttr(AimDialect::kScopeAttrName, b.getStringAttr("loss"));
  return success();
}

LogicalResult ShardPass::shardOp(Operation *op) {
  auto rank = [](Value v) {
    return cast<RankedTensorType>(v.getType()).getRank();
  };
  return llvm::TypeSwitch<Operation *, LogicalResult>(op)
      .Case([&](PatchifyOp o) -> LogicalResult {
        if (failed(makeWhole(o, 0)))
          return failure();
        setLayout(o.getResult(), {layoutOf(o.getImages()).batched});
        return success();
      })
      .Case([&](PosEmbed2dOp o) { return success(); })
      .Case([&](ReshapeOp o) -> LogicalResult {
        if (failed(makeWhole(o, 0)))
          return failure();
        Layout in = layoutOf(o.getInput());
        if (in.batched &&
            o.getType().getDimSize(0) !=
                o.getInput().getType().getDimSize(0) * dataParallel)
          return o.emitOpError()
                 << "reshapes across the batch, which dp splits";
        setLayout(o.getResult(), {in.batched});
        return success();
      })
      .Case([&](SliceOp o) -> LogicalResult {
        Layout in = layoutOf(o.getInput());
        if (in.tpDim == static_cast<int64_t>(o.getDim())) {
          // Only a whole block of a grouped split: q, k or v of qkv.
          int64_t block = o.getInput().getType().getDimSize(o.getDim()) *
                          tensorParallel / in.tpGroups;
          if (static_cast<int64_t>(o.getSize()) != block ||
              o.getOffset() % block != 0)
            return o.emitOpError()
                   << "slices [" << o.getOffset() << ", "
                   << o.getOffset() + o.getSize()
                   << ") of a dimension split over tp in blocks of " << block
                   << ": only whole blocks can be sliced";
          o.setOffset(o.getOffset() / tensorParallel);
          o.setSize(o.getSize() / tensorParallel);
          in.tpGroups = 1;
        }
        setLayout(o.getResult(), in);
        return success();
      })
      .Case<CastOp, GeluOp>([&](Operation *o) -> LogicalResult {
        if (layoutOf(o->getOperand(0)).partial && failed(makeWhole(o, 0)))
          return failure();
        setLayout(o->getResult(0), layoutOf(o->getOperand(0)));
        return success();
      })
      .Case([&](AddOp o) -> LogicalResult {
        Layout lhs = layoutOf(o.getLhs()), rhs = layoutOf(o.getRhs());
        // A sum of two partial sums is one; a whole value added to a
        // partial sum would be counted tp times.
        if (lhs.partial != rhs.partial) {
          if (failed(makeWhole(o, lhs.partial ? 0 : 1)))
            return failure();
          lhs = layoutOf(o.getLhs()), rhs = layoutOf(o.getRhs());
        }
        // Split dimensions must agree, counted from the last (rhs may
        // broadcast over leading dimensions).
        int64_t lhsFromEnd = lhs.tpDim < 0 ? -1 : rank(o.getLhs()) - lhs.tpDim;
        int64_t rhsFromEnd = rhs.tpDim < 0 ? -1 : rank(o.getRhs()) - rhs.tpDim;
        if (lhsFromEnd != rhsFromEnd || lhs.tpGroups != rhs.tpGroups)
          return o.emitOpError()
                 << "adds tensors split differently over tp";
        Layout out = lhs;
        out.batched = lhs.batched || rhs.batched;
        setLayout(o.getResult(), out);
        return success();
      })
      .Case([&](LayerNormOp o) -> LogicalResult {
        for (unsigned i = 0; i < 3; ++i)
          if (failed(makeWhole(o, i)))
            return failure();
        setLayout(o.getResult(), {layoutOf(o.getInput()).batched});
        return success();
      })
      .Case([&](LinearOp o) -> LogicalResult {
        Layout w = layoutOf(o.getWeight());
        Layout x = layoutOf(o.getInput());
        Layout out;
        out.batched = x.batched;
        if (w.partial || w.tpDim < 0) { // replicated weight
          for (unsigned i = 0; i < o->getNumOperands(); ++i)
            if (failed(makeWhole(o, i)))
              return failure();
        } else if (w.tpDim == 0) { // column-parallel
          if (failed(makeWhole(o, 0)))
            return failure();
          if (o.getBias()) {
            Layout bias = layoutOf(o.getBias());
            if (bias.tpDim != 0 || bias.tpGroups != w.tpGroups)
              return o.emitOpError()
                     << "has a column-parallel weight but a bias not split "
                        "the same way: give it aim.sharding {tp = 0"
                     << (w.tpGroups > 1 ? ", tp_groups = ..." : "") << "}";
          }
          if (tensorParallel > 1)
            o.getInputMutable().assign(enterPartial(o, o.getInput()));
          out.tpDim = rank(o.getResult()) - 1;
          out.tpGroups = w.tpGroups;
        } else { // row-parallel: each rank's input features
          if (x.tpDim != rank(o.getInput()) - 1 || x.tpGroups != w.tpGroups)
            return o.emitOpError()
                   << "has a row-parallel weight, so its input must be split "
                      "over tp on the last dimension the same way";
          if (o.getBias())
            return o.emitOpError()
                   << "has a row-parallel weight and a bias, which every tp "
                      "rank would add: not supported";
          out.partial = tensorParallel > 1;
        }
        setLayout(o.getResult(), out);
        return success();
      })
      .Case([&](AttentionOp o) -> LogicalResult {
        for (unsigned i = 0; i < 3; ++i)
          if (layoutOf(o->getOperand(i)).partial && failed(makeWhole(o, i)))
            return failure();
        Layout q = layoutOf(o.getQuery());
        for (Value v : {o.getKey(), o.getValue()}) {
          Layout l = layoutOf(v);
          if (l.tpDim != q.tpDim || l.tpGroups != q.tpGroups)
            return o.emitOpError()
                   << "has query, key and value split differently over tp";
        }
        Layout out = q, stats{q.batched};
        if (q.tpDim >= 0) {
          if (q.tpDim != rank(o.getQuery()) - 1 || q.tpGroups != 1 ||
              o.getHeads() % tensorParallel != 0)
            return o.emitOpError()
                   << "can split over tp only by heads (" << o.getHeads()
                   << " heads, tp = " << int64_t(tensorParallel) << ")";
          o.setHeads(o.getHeads() / tensorParallel);
          stats.tpDim = 1; // [B, h, N]
        }
        setLayout(o.getResult(), out);
        setLayout(o.getRowLogsumexp(), stats);
        return success();
      })
      .Case([&](NormalizedPixelLossOp o) -> LogicalResult { return shardLoss(o); })
      .Case([&](func::ReturnOp o) -> LogicalResult {
        for (unsigned i = 0; i < o->getNumOperands(); ++i)
          if (failed(makeWhole(o, i)))
            return failure();
        return success();
      })
      .Default([&](Operation *o) -> LogicalResult {
        return o->emitOpError()
               << "is not one aim-shard knows how to split (run aim-shard "
                  "first, on the frontend's @forward)";
      });
}

void ShardPass::runOnOperation() {
  ModuleOp module = getOperation();
  if (dataParallel < 1 || tensorParallel < 1 || (zero != 0 && zero != 1)) {
    module.emitError() << "aim-shard: dp and tp are positive rank counts and "
                          "zero is 0 or 1 (got dp = "
                       << int64_t(dataParallel) << ", tp = " << int64_t(tensorParallel)
                       << ", zero = " << int64_t(zero) << ")";
    return signalPassFailure();
  }
  if (module.lookupSymbol(kGridName)) {
    module.emitError() << "the module already has @" << kGridName
                       << ": it is sharded already";
    return signalPassFailure();
  }
  auto forward = module.lookupSymbol<func::FuncOp>("forward");
  if (!forward || forward.isExternal()) {
    module.emitError() << "aim-shard needs @forward with a body";
    return signalPassFailure();
  }
  OpBuilder b(module.getContext());
  b.setInsertionPointToStart(module.getBody());
  shard::GridOp::create(b, module.getLoc(), kGridName,
                        ArrayRef<int64_t>{dataParallel, tensorParallel});
  if (zero == 1)
    module->setAttr(AimDialect::kZeroAttrName, b.getI64IntegerAttr(1));

  if (failed(shardArguments(forward)))
    return signalPassFailure();
  // Ops are inserted before the one being split: walk a snapshot.
  SmallVector<Operation *> ops;
  for (Operation &op : forward.getBody().front())
    ops.push_back(&op);
  for (Operation *op : ops)
    if (failed(shardOp(op)))
      return signalPassFailure();
  forward.setFunctionType(b.getFunctionType(
      forward.getBody().front().getArgumentTypes(),
      forward.getBody().front().getTerminator()->getOperandTypes()));
}

} // namespace
