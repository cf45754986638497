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
  Type ea = tensorType(a).getElementType(), eb = tensorType(b).getElementType();
  if (ea != eb)
    return op->emitOpError()
           << aName << " has element type " << ea << " but " << bName << " has "
           << eb << "; insert an aim.cast to make them agree";
  return success();
}

LogicalResult expectShape(Operation *op, Value v, StringRef name,
                          ArrayRef<int64_t> expected) {
  ArrayRef<int64_t> actual = tensorType(v).getShape();
  if (actual != expected)
    return op->emitOpError()
           << name << " must have shape " << shapeString(expected)
           << " but has " << shapeString(actual);
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
  if (dim >= in.getRank())
    return emitOpError() << "dim " << dim
                         << " is out of range for input of rank "
                         << in.getRank();
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
    if (failed(expectShape(*this, bias, "bias", {outFeatures})) ||
        failed(expectSameElementType(*this, getInput(), "input", bias, "bias")))
      return failure();
  }
  if (failed(expectSameElementType(*this, getInput(), "input", getWeight(),
                                   "weight")) ||
      failed(expectSameElementType(*this, getInput(), "input", getResult(),
                                   "result")))
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
      failed(
          expectSameElementType(*this, getLhs(), "lhs", getResult(), "result")))
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

LogicalResult AttentionOp::verify() {
  auto q = tensorType(getQuery());
  if (q.getRank() != 3)
    return emitOpError()
           << "query must be [B, N, heads * dh] (rank 3) but has rank "
           << q.getRank();
  if (failed(expectShape(*this, getKey(), "key", q.getShape())) ||
      failed(expectShape(*this, getValue(), "value", q.getShape())) ||
      failed(expectShape(*this, getResult(), "result", q.getShape())) ||
      failed(
          expectSameElementType(*this, getQuery(), "query", getKey(), "key")) ||
      failed(expectSameElementType(*this, getQuery(), "query", getValue(),
                                   "value")) ||
      failed(expectSameElementType(*this, getQuery(), "query", getResult(),
                                   "result")))
    return failure();
  int64_t width = q.getDimSize(2);
  if (width % getHeads() != 0)
    return emitOpError() << "width " << width << " is not divisible by heads "
                         << getHeads();
  if (getScale().convertToDouble() <= 0.0)
    return emitOpError() << "scale must be positive, got "
                         << getScale().convertToDouble();
  bool needsPrefix = getMask() == MaskKind::prefix_causal;
  if (needsPrefix && !getPrefix())
    return emitOpError()
           << "mask prefix_causal needs the per-sample prefix lengths: write "
              "`mask = prefix_causal(%K)` with %K : tensor<"
           << q.getDimSize(0) << "xi32>";
  if (!needsPrefix && getPrefix())
    return emitOpError() << "mask " << stringifyMaskKind(getMask())
                         << " takes no prefix lengths; use mask = "
                            "prefix_causal(%K) or drop the operand";
  if (Value prefix = getPrefix())
    return expectShape(*this, prefix, "prefix", {q.getDimSize(0)});
  return success();
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

#define GET_OP_CLASSES
#include "dialects/aim/AimOps.cpp.inc"
