//===- AimOps.cpp - verifiers of the aim ops ------------------------------===//
//
// Every verifier names the operand and the dimension at fault and says what was
// expected, so that a person who edits IR by hand can fix it from the message.
//
//===----------------------------------------------------------------------===//

#include "dialects/aim/AimOps.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/OpImplementation.h"
#include "llvm/ADT/STLExtras.h"

using namespace mlir;
using namespace mlir::aim;

#include "dialects/aim/AimOpsEnums.cpp.inc"

namespace {
RankedTensorType tensorType(Value v) {
  return cast<RankedTensorType>(v.getType());
}

/// Prints a shape as "[8, 49, 192]" for diagnostics.
std::string shapeString(ArrayRef<int64_t> shape) {
  std::string s = "[";
  llvm::raw_string_ostream os(s);
  llvm::interleaveComma(shape, os);
  os << "]";
  return s;
}

LogicalResult expectSameElementType(Operation *op, Value a, StringRef aName,
                                    Value b, StringRef bName) {
  Type ea = cast<ShapedType>(a.getType()).getElementType(),
       eb = cast<ShapedType>(b.getType()).getElementType();
  if (ea != eb)
    return op->emitOpError()
           << aName << " has element type " << ea << " but " << bName << " has "
           << eb << "; insert an aim.cast to make them agree";
  return success();
}

/// A GEMM's result: the operands' element type, or float32 accumulated from
/// 16-bit operands (bf16 or f16: the products are exact in float32, the sums
/// are float32's), as aim-bf16-gemm-operands makes them.
LogicalResult expectGemmResultType(Operation *op, Value operand,
                                   StringRef operandName, Value result) {
  Type in = cast<ShapedType>(operand.getType()).getElementType(),
       out = cast<ShapedType>(result.getType()).getElementType();
  if (in == out || ((in.isBF16() || in.isF16()) && out.isF32()))
    return success();
  return op->emitOpError() << "result has element type " << out << " but "
                           << operandName << " has " << in
                           << "; a GEMM's result has its operands' element "
                           << "type, or f32 for bf16 or f16 operands";
}

LogicalResult expectShape(Operation *op, Value v, StringRef name,
                          ArrayRef<int64_t> expected) {
  ArrayRef<int64_t> actual = cast<ShapedType>(v.getType()).getShape();
  if (actual != expected)
    return op->emitOpError()
           << name << " must have shape " << shapeString(expected)
           << " but has " << shapeString(actual);
  return success();
}

LogicalResult expectDimInRange(Operation *op, int64_t dim, RankedTensorType in) {
  if (dim >= in.getRank())
    return op->emitOpError() << "dim " << dim
                             << " is out of range for input of rank "
                             << in.getRank();
  return success();
}
} // namespace

LogicalResult PatchifyOp::verify() {
  auto in = tensorType(getImages());
  if (in.getRank() != 4)
    return emitOpError()
           << "images must be [B, C, H, W] (rank 4) but have rank "
           << in.getRank();
  int64_t b = in.getDimSize(0), c = in.getDimSize(1), h = in.getDimSize(2),
          w = in.getDimSize(3), p = getPatchSize();
  if (h % p != 0 || w % p != 0)
    return emitOpError() << "image size " << h << "x" << w
                         << " is not divisible by patch_size " << p;
  if (failed(expectSameElementType(*this, getImages(), "images", getResult(),
                                   "result")))
    return failure();
  return expectShape(*this, getResult(), "result",
                     {b, (h / p) * (w / p), c * p * p});
}

LogicalResult ReshapeOp::verify() {
  auto in = tensorType(getInput()), out = tensorType(getResult());
  if (in.getNumElements() != out.getNumElements())
    return emitOpError() << "input " << shapeString(in.getShape()) << " has "
                         << in.getNumElements() << " elements but result "
                         << shapeString(out.getShape()) << " has "
                         << out.getNumElements();
  return expectSameElementType(*this, getInput(), "input", getResult(),
                               "result");
}

LogicalResult SliceOp::verify() {
  auto in = tensorType(getInput());
  int64_t dim = getDim();
  if (failed(expectDimInRange(*this, dim, in)))
    return failure();
  int64_t extent = in.getDimSize(dim);
  if (static_cast<int64_t>(getOffset() + getSize()) > extent)
    return emitOpError() << "range [" << getOffset() << ", "
                         << getOffset() + getSize() << ") exceeds dimension "
                         << dim << " of size " << extent;
  SmallVector<int64_t> expected(in.getShape());
  expected[dim] = getSize();
  if (failed(expectSameElementType(*this, getInput(), "input", getResult(),
                                   "result")))
    return failure();
  return expectShape(*this, getResult(), "result", expected);
}

LogicalResult CastOp::verify() {
  return expectShape(*this, getResult(), "result",
                     tensorType(getInput()).getShape());
}

LogicalResult LinearOp::verify() {
  auto in = tensorType(getInput()), w = tensorType(getWeight());
  if (in.getRank() < 1)
    return emitOpError() << "input must have at least one dimension";
  if (w.getRank() != 2)
    return emitOpError() << "weight must be [out, in] (rank 2) but has rank "
                         << w.getRank();
  int64_t inFeatures = in.getShape().back();
  if (w.getDimSize(1) != inFeatures)
    return emitOpError() << "weight " << shapeString(w.getShape()) << " takes "
                         << w.getDimSize(1)
                         << " input features but the input's last dimension is "
                         << inFeatures;
  int64_t outFeatures = w.getDimSize(0);
  if (Value bias = getBias()) {
    // The bias is added to the (accumulated) result.
    if (failed(expectShape(*this, bias, "bias", {outFeatures})) ||
        failed(
            expectSameElementType(*this, getResult(), "result", bias, "bias")))
      return failure();
  }
  if (failed(expectSameElementType(*this, getInput(), "input", getWeight(),
                                   "weight")) ||
      failed(expectGemmResultType(*this, getInput(), "input", getResult())))
    return failure();
  SmallVector<int64_t> expected(in.getShape());
  expected.back() = outFeatures;
  return expectShape(*this, getResult(), "result", expected);
}

LogicalResult LayerNormOp::verify() {
  auto in = tensorType(getInput());
  if (in.getRank() < 1)
    return emitOpError() << "input must have at least one dimension";
  if (getEpsilon().convertToDouble() <= 0.0)
    return emitOpError() << "epsilon must be positive, got "
                         << getEpsilon().convertToDouble();
  int64_t d = in.getShape().back();
  if (failed(expectShape(*this, getWeight(), "weight", {d})) ||
      failed(expectShape(*this, getBias(), "bias", {d})) ||
      failed(expectSameElementType(*this, getInput(), "input", getWeight(),
                                   "weight")) ||
      failed(expectSameElementType(*this, getInput(), "input", getBias(),
                                   "bias")) ||
      failed(expectSameElementType(*this, getInput(), "input", getResult(),
                                   "result")))
    return failure();
  return expectShape(*this, getResult(), "result", in.getShape());
}

LogicalResult AddOp::verify() {
  ArrayRef<int64_t> lhs = tensorType(getLhs()).getShape();
  ArrayRef<int64_t> rhs = tensorType(getRhs()).getShape();
  if (rhs.size() > lhs.size() || lhs.take_back(rhs.size()) != rhs)
    return emitOpError() << "rhs shape " << shapeString(rhs)
                         << " must equal the trailing dimensions of lhs shape "
                         << shapeString(lhs);
  if (failed(expectSameElementType(*this, getLhs(), "lhs", getRhs(), "rhs")) ||
      failed(expectGemmResultType(*this, getLhs(), "lhs", getResult())))
    return failure();
  return expectShape(*this, getResult(), "result", lhs);
}

LogicalResult GeluOp::verify() {
  if (getInput().getType() != getResult().getType())
    return emitOpError() << "result type " << getResult().getType()
                         << " must equal the input type "
                         << getInput().getType();
  return success();
}

LogicalResult PosEmbed2dOp::verify() {
  auto out = tensorType(getResult());
  if (out.getRank() != 2)
    return emitOpError()
           << "result must be [tokens, width] (rank 2) but has rank "
           << out.getRank();
  int64_t tokens = getGridHeight() * getGridWidth();
  if (out.getDimSize(0) != tokens)
    return emitOpError() << "result has " << out.getDimSize(0)
                         << " rows but the grid " << getGridHeight() << "x"
                         << getGridWidth() << " has " << tokens << " tokens";
  if (out.getDimSize(1) % 4 != 0)
    return emitOpError() << "width " << out.getDimSize(1)
                         << " must be divisible by 4 (sin and cos halves for "
                            "rows and columns)";
  return success();
}

namespace {
/// The checks shared by aim.attention and aim.attention_grad. Keys and values
/// (and `keySide`) are [B, N, heads * dh]; queries (and `querySide`) are the
/// same, or [R, heads * dh] live rows with `liveQueries`; the row statistics
/// are [B, heads, N], or [R, heads]; the prefix operand is present exactly
/// for prefix_causal.
LogicalResult
verifyAttentionOperands(Operation *op, Value query, Value key,
                        ArrayRef<std::pair<Value, StringRef>> querySide,
                        ArrayRef<std::pair<Value, StringRef>> keySide,
                        Value rowLogSumExp, Value prefix, int64_t heads,
                        MaskKind mask, double scale, bool liveQueries) {
  // Tensors, or buffers for the attention kernels.
  auto k = cast<ShapedType>(key.getType()), q = cast<ShapedType>(query.getType());
  if (k.getRank() != 3)
    return op->emitOpError()
           << "key must be [B, N, heads * dh] (rank 3) but has rank "
           << k.getRank();
  int64_t batch = k.getDimSize(0), tokens = k.getDimSize(1),
          width = k.getDimSize(2);
  if (liveQueries) {
    if (q.getRank() != 2 || q.getDimSize(1) != width)
      return op->emitOpError() << "with live_queries, query must be [rows, "
                               << width << "] but is "
                               << shapeString(q.getShape());
    if (mask != MaskKind::prefix_causal)
      return op->emitOpError() << "live_queries needs mask prefix_causal (the "
                                  "live rows come from the prefix lengths)";
  } else if (failed(expectShape(op, query, "query", k.getShape()))) {
    return failure();
  }
  for (auto [value, name] : querySide)
    if (failed(expectShape(op, value, name, q.getShape())) ||
        failed(expectSameElementType(op, query, "query", value, name)))
      return failure();
  for (auto [value, name] : keySide)
    if (failed(expectShape(op, value, name, k.getShape())) ||
        failed(expectSameElementType(op, key, "key", value, name)))
      return failure();
  if (failed(expectSameElementType(op, query, "query", key, "key")))
    return failure();
  if (width % heads != 0)
    return op->emitOpError()
           << "width " << width << " is not divisible by heads " << heads;
  SmallVector<int64_t> statsShape = {batch, heads, tokens};
  if (liveQueries)
    statsShape = {q.getDimSize(0), heads};
  if (failed(expectShape(op, rowLogSumExp, "row_logsumexp", statsShape)))
    return failure();
  if (scale <= 0.0)
    return op->emitOpError() << "scale must be positive, got " << scale;
  bool needsPrefix = mask == MaskKind::prefix_causal;
  if (needsPrefix && !prefix)
    return op->emitOpError()
           << "mask prefix_causal needs the per-sample prefix lengths: write "
              "`mask = prefix_causal(%K)` with %K : tensor<"
           << batch << "xi32>";
  if (!needsPrefix && prefix)
    return op->emitOpError() << "mask " << stringifyMaskKind(mask)
                             << " takes no prefix lengths; use mask = "
                                "prefix_causal(%K) or drop the operand";
  if (prefix)
    return expectShape(op, prefix, "prefix", {batch});
  return success();
}
} // namespace

/// aim.attention and its buffer form aim.attention_kernel (same operands).
template <typename OpTy>
LogicalResult verifyAttention(OpTy op, bool liveQueries) {
  return verifyAttentionOperands(
      op, op.getQuery(), op.getKey(), {{op.getResult(), "result"}},
      {{op.getValue(), "value"}}, op.getRowLogsumexp(), op.getPrefix(),
      op.getHeads(), op.getMask(), op.getScale().convertToDouble(),
      liveQueries);
}

/// aim.attention_grad and its buffer form aim.attention_grad_kernel.
template <typename OpTy>
LogicalResult verifyAttentionGrad(OpTy op, bool liveQueries) {
  return verifyAttentionOperands(
      op, op.getQuery(), op.getKey(),
      {{op.getGrad(), "grad"}, {op.getOutput(), "output"},
       {op.getQueryGrad(), "query_grad"}},
      {{op.getValue(), "value"}, {op.getKeyGrad(), "key_grad"},
       {op.getValueGrad(), "value_grad"}},
      op.getRowLogsumexp(), op.getPrefix(), op.getHeads(), op.getMask(),
      op.getScale().convertToDouble(), liveQueries);
}

LogicalResult AttentionOp::verify() {
  return verifyAttention(*this, getLiveQueries());
}

LogicalResult AttentionKernelOp::verify() {
  return verifyAttention(*this, /*liveQueries=*/false);
}

LogicalResult NormalizedPixelLossOp::verify() {
  auto pred = tensorType(getPrediction());
  if (pred.getRank() != 3)
    return emitOpError()
           << "prediction must be [B, N, P] (rank 3) but has rank "
           << pred.getRank();
  if (failed(expectShape(*this, getTarget(), "target", pred.getShape())) ||
      failed(expectShape(*this, getPrefix(), "prefix", {pred.getDimSize(0)})) ||
      failed(expectSameElementType(*this, getPrediction(), "prediction",
                                   getTarget(), "target")))
    return failure();
  if (pred.getDimSize(1) < 2)
    return emitOpError() << "needs N >= 2 patches (position n - 1 predicts n), "
                            "got N = "
                         << pred.getDimSize(1);
  if (pred.getDimSize(2) < 2)
    return emitOpError() << "needs P >= 2 values per patch (the variance uses "
                            "Bessel's correction), got P = "
                         << pred.getDimSize(2);
  if (getEpsilon().convertToDouble() <= 0.0)
    return emitOpError() << "epsilon must be positive, got "
                         << getEpsilon().convertToDouble();
  return success();
}

//===----------------------------------------------------------------------===//
// Backward ops
//===----------------------------------------------------------------------===//

LogicalResult MatmulOp::verify() {
  auto lhs = tensorType(getLhs()), rhs = tensorType(getRhs());
  if (lhs.getRank() != 2 || rhs.getRank() != 2)
    return emitOpError() << "operands must be matrices (rank 2), got ranks "
                         << lhs.getRank() << " and " << rhs.getRank();
  int64_t m = getTransposeLhs() ? lhs.getDimSize(1) : lhs.getDimSize(0);
  int64_t kl = getTransposeLhs() ? lhs.getDimSize(0) : lhs.getDimSize(1);
  int64_t kr = getTransposeRhs() ? rhs.getDimSize(1) : rhs.getDimSize(0);
  int64_t n = getTransposeRhs() ? rhs.getDimSize(0) : rhs.getDimSize(1);
  if (kl != kr)
    return emitOpError() << "contracted dimensions differ: lhs gives " << kl
                         << " and rhs gives " << kr;
  if (failed(expectSameElementType(*this, getLhs(), "lhs", getRhs(), "rhs")) ||
      failed(expectGemmResultType(*this, getLhs(), "lhs", getResult())))
    return failure();
  return expectShape(*this, getResult(), "result", {m, n});
}

LogicalResult SumLeadingOp::verify() {
  ArrayRef<int64_t> in = tensorType(getInput()).getShape();
  ArrayRef<int64_t> out = tensorType(getResult()).getShape();
  if (out.size() > in.size() || in.take_back(out.size()) != out)
    return emitOpError()
           << "result shape " << shapeString(out)
           << " must equal the trailing dimensions of input shape "
           << shapeString(in);
  return expectSameElementType(*this, getInput(), "input", getResult(),
                               "result");
}

LogicalResult PadOp::verify() {
  auto in = tensorType(getInput());
  int64_t dim = getDim();
  if (failed(expectDimInRange(*this, dim, in)))
    return failure();
  SmallVector<int64_t> expected(in.getShape());
  expected[dim] += getBefore() + getAfter();
  if (failed(expectSameElementType(*this, getInput(), "input", getResult(),
                                   "result")))
    return failure();
  return expectShape(*this, getResult(), "result", expected);
}

LogicalResult LayerNormGradOp::verify() {
  auto in = tensorType(getInput());
  if (in.getRank() < 1)
    return emitOpError() << "input must have at least one dimension";
  int64_t d = in.getShape().back();
  if (failed(expectShape(*this, getGrad(), "grad", in.getShape())) ||
      failed(expectShape(*this, getWeight(), "weight", {d})) ||
      failed(expectShape(*this, getInputGrad(), "input_grad", in.getShape())) ||
      failed(expectShape(*this, getWeightGrad(), "weight_grad", {d})) ||
      failed(expectShape(*this, getBiasGrad(), "bias_grad", {d})))
    return failure();
  if (getEpsilon().convertToDouble() <= 0.0)
    return emitOpError() << "epsilon must be positive, got "
                         << getEpsilon().convertToDouble();
  return success();
}

LogicalResult GeluGradOp::verify() {
  if (getGrad().getType() != getInput().getType() ||
      getResult().getType() != getInput().getType())
    return emitOpError() << "grad, input and result must have one type, got "
                         << getGrad().getType() << ", " << getInput().getType()
                         << " and " << getResult().getType();
  return success();
}

LogicalResult AttentionGradOp::verify() {
  return verifyAttentionGrad(*this, getLiveQueries());
}

LogicalResult AttentionGradKernelOp::verify() {
  return verifyAttentionGrad(*this, /*liveQueries=*/false);
}

LogicalResult NormalizedPixelLossGradOp::verify() {
  auto pred = tensorType(getPrediction());
  if (pred.getRank() != 3)
    return emitOpError()
           << "prediction must be [B, N, P] (rank 3) but has rank "
           << pred.getRank();
  if (failed(expectShape(*this, getTarget(), "target", pred.getShape())) ||
      failed(expectShape(*this, getResult(), "result", pred.getShape())) ||
      failed(expectShape(*this, getPrefix(), "prefix", {pred.getDimSize(0)})))
    return failure();
  return success();
}

LogicalResult GatherLiveRowsOp::verify() {
  auto in = tensorType(getInput()), out = tensorType(getResult());
  if (in.getRank() != 3 && in.getRank() != 2)
    return emitOpError() << "input must be [B, N, D] or [N, D] but has rank "
                         << in.getRank();
  if (out.getRank() != 2 || out.getDimSize(1) != in.getShape().back())
    return emitOpError() << "result must be [capacity, " << in.getShape().back()
                         << "] but is " << shapeString(out.getShape());
  if (in.getRank() == 3 &&
      failed(expectShape(*this, getPrefix(), "prefix", {in.getDimSize(0)})))
    return failure();
  return expectSameElementType(*this, getInput(), "input", getResult(),
                               "result");
}

LogicalResult ScatterLiveRowsOp::verify() {
  auto in = tensorType(getInput()), out = tensorType(getResult());
  if (in.getRank() != 2)
    return emitOpError() << "input must be [capacity, D] but has rank "
                         << in.getRank();
  if (out.getRank() != 3 || out.getDimSize(2) != in.getDimSize(1))
    return emitOpError() << "result must be [B, N, " << in.getDimSize(1)
                         << "] but is " << shapeString(out.getShape());
  if (failed(expectShape(*this, getPrefix(), "prefix", {out.getDimSize(0)})))
    return failure();
  return expectSameElementType(*this, getInput(), "input", getResult(),
                               "result");
}

LogicalResult GlobalNormOp::verify() {
  if (getInputs().empty())
    return emitOpError() << "needs at least one tensor";
  return success();
}

LogicalResult AdamWOp::verify() {
  for (auto [name, value] :
       {std::pair<StringRef, double>{"beta1", getBeta1().convertToDouble()},
        {"beta2", getBeta2().convertToDouble()}})
    if (value < 0.0 || value >= 1.0)
      return emitOpError() << name << " must be in [0, 1), got " << value;
  if (getEpsilon().convertToDouble() <= 0.0)
    return emitOpError() << "epsilon must be positive";
  if (getWeightDecay().convertToDouble() < 0.0)
    return emitOpError() << "weight_decay must not be negative";
  return success();
}

LogicalResult FusionOp::verify() {
  Block &body = getBody().front();
  if (body.getNumArguments() != getInputs().size())
    return emitOpError() << "region takes " << body.getNumArguments()
                         << " arguments but the fusion has "
                         << getInputs().size() << " inputs";
  for (auto [i, arg, input] : llvm::enumerate(body.getArguments(), getInputs()))
    if (arg.getType() != input.getType())
      return emitOpError() << "region argument #" << i << " has type "
                           << arg.getType() << " but input #" << i << " has "
                           << input.getType();
  auto yield = cast<YieldOp>(body.getTerminator());
  if (yield.getValues().getTypes() != getResultTypes())
    return emitOpError() << "yields " << yield.getValues().size()
                         << " values whose types differ from the results";
  return success();
}

#define GET_OP_CLASSES
#include "dialects/aim/AimOps.cpp.inc"

LogicalResult WaitCollectivesOp::verify() {
  if (getInputs().getTypes() != getResults().getTypes())
    return emitOpError() << "returns its inputs: the types must match";
  return success();
}
