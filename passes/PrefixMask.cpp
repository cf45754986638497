//===- PrefixMask.cpp - work only for what the prefix-causal loss sees ----===//
//
// 1. Token liveness: the per-token ops that feed only the loss are cloned to
//    run on the compacted live rows. 2. Attention tile rules.
//
//===----------------------------------------------------------------------===//

#include "passes/Passes.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/IRMapping.h"
#include "llvm/ADT/DenseSet.h"
#include "llvm/ADT/SetVector.h"

namespace mlir::aim {
#define GEN_PASS_DEF_PREFIXMASKPASS
#include "passes/Passes.h.inc"
} // namespace mlir::aim

using namespace mlir;
using namespace mlir::aim;

namespace {

RankedTensorType tensorType(Value v) {
  return cast<RankedTensorType>(v.getType());
}

/// Records the prefix-causal (or causal) tile rule on an attention op. With
/// dims (q_begin, q_end) and symbol K (0 for causal):
///   empty iff k_begin >= max(K, q_end)      (no k < K, no k <= q)
///   full  iff k_end   <= max(K, q_begin + 1) (every k < K or k <= q_begin)
template <typename OpTy> void recordTileRule(OpTy op) {
  if (op.getMask() == MaskKind::bidirectional)
    return; // every tile is full; nothing to record
  MLIRContext *ctx = op.getContext();
  AffineExpr qBegin = getAffineDimExpr(0, ctx), qEnd = getAffineDimExpr(1, ctx);
  AffineExpr prefix = op.getMask() == MaskKind::prefix_causal
                          ? getAffineSymbolExpr(0, ctx)
                          : getAffineConstantExpr(0, ctx);
  op.setTileEmptyFromAttr(
      AffineMapAttr::get(AffineMap::get(2, 1, {prefix, qEnd}, ctx)));
  op.setTileFullUntilAttr(
      AffineMapAttr::get(AffineMap::get(2, 1, {prefix, qBegin + 1}, ctx)));
}

/// An op that works on each token independently, so that it can run on any
/// subset of the rows: [B, N, X] in and out, with only per-feature operands
/// (weights, biases) besides.
bool isPerToken(Operation *op) {
  if (op->getNumResults() != 1 ||
      !isa<LinearOp, LayerNormOp, GeluOp, CastOp, AddOp>(op))
    return false;
  return tensorType(op->getResult(0)).getRank() == 3 &&
         tensorType(op->getOperand(0)).getRank() == 3;
}

class LivenessRewriter {
public:
  LivenessRewriter(func::FuncOp function, NormalizedPixelLossOp loss,
                   int64_t capacity)
      : function(function), loss(loss), capacity(capacity),
        batch(tensorType(loss.getPrediction()).getDimSize(0)),
        tokens(tensorType(loss.getPrediction()).getDimSize(1)) {}

  /// Returns how many ops now run on live rows only.
  size_t run();

private:
  /// The compacted form of `value`, an input of a compacted op.
  Value compacted(OpBuilder &b, Value value) {
    if (Value known = mapping.lookupOrNull(value))
      return known;
    auto type = tensorType(value);
    bool tokenShaped = (type.getRank() == 3 && type.getDimSize(0) == batch &&
                        type.getDimSize(1) == tokens) ||
                       (type.getRank() == 2 && type.getDimSize(0) == tokens);
    if (!tokenShaped)
      return value; // a weight, a bias: the same for every row
    auto rowsType = RankedTensorType::get({capacity, type.getShape().back()},
                                          type.getElementType());
    auto gather = GatherLiveRowsOp::create(b, value.getLoc(), rowsType, value,
                                           loss.getPrefix());
    gather->setAttr(AimDialect::kScopeAttrName,
                    b.getStringAttr("prefix_mask.gather"));
    mapping.map(value, gather.getResult());
    return gather;
  }

  Value compactedQueries(OpBuilder &b, Value query);
  void compactAttention(AttentionOp attention);

  func::FuncOp function;
  NormalizedPixelLossOp loss;
  int64_t capacity, batch, tokens;
  IRMapping mapping;
};

/// The live rows of the attention queries. When the queries are a slice of a
/// bias-free projection (q of a fused qkv), the projection itself is split:
/// the query part runs on the live rows of its input, the rest (k, v) on
/// every row, so no dead query is ever projected.
Value LivenessRewriter::compactedQueries(OpBuilder &b, Value query) {
  auto slice = query.getDefiningOp<SliceOp>();
  auto projection =
      slice ? slice.getInput().getDefiningOp<LinearOp>() : nullptr;
  int64_t lastDim = tensorType(query).getRank() - 1;
  if (!projection || projection.getBias() ||
      static_cast<int64_t>(slice.getDim()) != lastDim)
    return compacted(b, query);
  // The other users of the projection must be slices covering one range
  // next to the query's, so that the projection can be cut in two.
  int64_t qBegin = slice.getOffset(), qEnd = qBegin + slice.getSize();
  int64_t width = tensorType(projection.getResult()).getShape().back();
  SmallVector<SliceOp> others;
  int64_t restBegin = width, restEnd = 0;
  for (Operation *user : projection->getUsers()) {
    auto other = dyn_cast<SliceOp>(user);
    if (!other || static_cast<int64_t>(other.getDim()) != lastDim)
      return compacted(b, query);
    if (other == slice)
      continue;
    int64_t begin = other.getOffset(), end = begin + other.getSize();
    if (begin < qEnd && end > qBegin)
      return compacted(b, query); // overlaps the queries
    restBegin = std::min(restBegin, begin);
    restEnd = std::max(restEnd, end);
    others.push_back(other);
  }
  if (!(restBegin >= qEnd || restEnd <= qBegin))
    return compacted(b, query);
  Location loc = projection.getLoc();
  Value weight = projection.getWeight();
  auto weightType = tensorType(weight);
  auto weightRows = [&](int64_t begin, int64_t end) {
    SmallVector<int64_t> shape(weightType.getShape());
    shape[0] = end - begin;
    return SliceOp::create(
        b, loc, RankedTensorType::get(shape, weightType.getElementType()),
        weight, 0, begin, end - begin);
  };
  b.setInsertionPointAfter(projection);
  // Queries: the projection of the live rows with the query rows of W.
  Value liveInput = compacted(b, projection.getInput());
  auto qWeight = weightRows(qBegin, qEnd);
  Value liveQueries =
      LinearOp::create(b, loc,
                       RankedTensorType::get({capacity, qEnd - qBegin},
                                             weightType.getElementType()),
                       liveInput, qWeight, Value());
  SmallVector<Operation *> created = {qWeight, liveQueries.getDefiningOp()};
  // Keys and values: the projection of every row with the remaining rows of W.
  if (!others.empty()) {
    auto restWeight = weightRows(restBegin, restEnd);
    SmallVector<int64_t> shape(tensorType(projection.getResult()).getShape());
    shape.back() = restEnd - restBegin;
    Value rest = LinearOp::create(
        b, loc, RankedTensorType::get(shape, weightType.getElementType()),
        projection.getInput(), restWeight, Value());
    created.append({restWeight, rest.getDefiningOp()});
    for (SliceOp other : others) {
      other.getInputMutable().assign(rest);
      other.setOffset(other.getOffset() - restBegin);
    }
  }
  if (auto scope = projection->getAttr(AimDialect::kScopeAttrName))
    for (Operation *op : created)
      op->setAttr(AimDialect::kScopeAttrName, scope);
  return liveQueries;
}

/// Rewrites an attention whose output only feeds live-row work to compute
/// only the live query rows (aim.attention with live_queries).
void LivenessRewriter::compactAttention(AttentionOp attention) {
  OpBuilder b(attention);
  Value queries = compactedQueries(b, attention.getQuery());
  b.setInsertionPoint(attention);
  auto resultType = tensorType(attention.getResult());
  auto compact = AttentionOp::create(
      b, attention.getLoc(),
      TypeRange{RankedTensorType::get({capacity, resultType.getShape().back()},
                                      resultType.getElementType()),
                RankedTensorType::get(
                    {capacity, static_cast<int64_t>(attention.getHeads())},
                    b.getF32Type())},
      queries, attention.getKey(), attention.getValue(), attention.getPrefix(),
      attention.getHeadsAttr(), attention.getMaskAttr(),
      attention.getScaleAttr(), attention.getTileEmptyFromAttr(),
      attention.getTileFullUntilAttr(), b.getUnitAttr());
  compact->setDiscardableAttrs(attention->getDiscardableAttrDictionary());
  mapping.map(attention.getResult(), compact.getResult());
}

size_t LivenessRewriter::run() {
  // 1. The per-token ops whose results reach nothing but the loss's
  //    prediction, found backwards so that every user is decided first.
  llvm::SetVector<Operation *> region;
  Block &body = function.getBody().front();
  for (Operation &op : llvm::reverse(body)) {
    if (!isPerToken(&op))
      continue;
    bool feedsOnlyRegion = llvm::all_of(op.getUsers(), [&](Operation *user) {
      return region.contains(user) ||
             (user == loss.getOperation() &&
              loss.getPrediction() == op.getResult(0) &&
              loss.getTarget() != op.getResult(0));
    });
    if (feedsOnlyRegion && !op.use_empty())
      region.insert(&op);
  }
  if (region.empty())
    return 0;

  // 2. An attention whose output only feeds this region computes only the
  //    live query rows.
  SmallVector<AttentionOp> attentions;
  for (Operation *op : region)
    for (Value operand : op->getOperands())
      if (auto attention = operand.getDefiningOp<AttentionOp>())
        if (operand == attention.getResult() &&
            attention.getMask() == MaskKind::prefix_causal &&
            !attention.getLiveQueries() &&
            attention.getRowLogsumexp().use_empty() &&
            llvm::all_of(attention.getResult().getUsers(),
                         [&](Operation *u) { return region.contains(u); }) &&
            !llvm::is_contained(attentions, attention))
          attentions.push_back(attention);
  for (AttentionOp attention : attentions)
    compactAttention(attention);

  // 3. Clones on [capacity, X] rows, each in place of its original.
  OpBuilder b(function.getContext());
  SmallVector<Operation *> ordered(region.rbegin(), region.rend());
  for (Operation *op : ordered) {
    b.setInsertionPoint(op);
    // Only the token operands are compacted: the input of every per-token
    // op, and the right-hand side of an add (a residual, or a position
    // embedding shared by the batch). Weights stay whole, whatever their shape.
    for (auto [index, operand] : llvm::enumerate(op->getOperands()))
      if (index == 0 || isa<AddOp>(op))
        compacted(b, operand);
    Operation *clone = b.clone(*op, mapping);
    auto type = tensorType(op->getResult(0));
    clone->getResult(0).setType(RankedTensorType::get(
        {capacity, type.getShape().back()}, type.getElementType()));
  }

  // 4. The prediction back in [B, N, P] for the loss; dead rows are zero and
  //    the loss never reads them.
  Value prediction = loss.getPrediction();
  b.setInsertionPoint(loss);
  auto scatter =
      ScatterLiveRowsOp::create(b, loss.getLoc(), prediction.getType(),
                                mapping.lookup(prediction), loss.getPrefix());
  scatter->setAttr(AimDialect::kScopeAttrName,
                   b.getStringAttr("prefix_mask.scatter"));
  loss.getPredictionMutable().assign(scatter);
  for (Operation *op : region) // users first: each is unused when erased
    op->erase();
  for (AttentionOp attention : attentions) {
    Operation *projection = attention.getQuery().getDefiningOp();
    attention->erase();
    // The query slice of a split projection, and the projection, if unused.
    if (projection && projection->use_empty()) {
      Operation *input = projection->getOperand(0).getDefiningOp();
      projection->erase();
      if (input && isa<LinearOp>(input) && input->use_empty())
        input->erase();
    }
  }
  return region.size();
}

struct PrefixMaskPass
    : public mlir::aim::impl::PrefixMaskPassBase<PrefixMaskPass> {
  using PrefixMaskPassBase::PrefixMaskPassBase;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    if (mode != "antithetic" && mode != "iid") {
      module.emitError() << "aim-prefix-mask: mode must be antithetic or iid, "
                            "got '"
                         << mode << "'";
      return signalPassFailure();
    }
    auto function = module.lookupSymbol<func::FuncOp>(entry);
    if (!function) {
      module.emitError() << "aim-prefix-mask: no function @" << entry;
      return signalPassFailure();
    }
    function.walk([](AttentionOp op) { recordTileRule(op); });

    SmallVector<NormalizedPixelLossOp> losses;
    function.walk([&](NormalizedPixelLossOp op) { losses.push_back(op); });
    for (NormalizedPixelLossOp loss : losses) {
      auto type = tensorType(loss.getPrediction());
      int64_t batch = type.getDimSize(0), tokens = type.getDimSize(1);
      if (mode == "antithetic" && batch % 2 != 0) {
        loss.emitOpError() << "antithetic prefix pairs need an even batch, "
                              "got "
                           << batch << "; use mode=iid";
        return signalPassFailure();
      }
      int64_t capacity =
          mode == "antithetic" ? batch * tokens / 2 : batch * (tokens - 1);
      LivenessRewriter(function, loss, capacity).run();
    }
    function->setAttr("aim.prefix_mode",
                      StringAttr::get(&getContext(), mode.getValue()));
  }
};

} // namespace
