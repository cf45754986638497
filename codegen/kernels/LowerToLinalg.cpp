//===- LowerToLinalg.cpp - aim ops as linalg on tensors -------------------===//
//
// Each pattern writes one aim op as linalg.generic (or tensor ops for pure
// data movement), computing exactly what the interpreter's kernel computes,
// in the same order of summation, so that generated code can be checked
// against it. Every aim op has a pattern. aim.fusion regions normally reach
// this as outlined kernel functions (OutlineKernels.h); one still in place
// is inlined: its ops are lowered one by one, not as one loop nest.
//
//===----------------------------------------------------------------------===//

#include "codegen/kernels/LowerToLinalg.h"

#include "codegen/kernels/TiledAttention.h"
#include "dialects/aim/AimOps.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/PatternMatch.h"

#include "mlir/Transforms/GreedyPatternRewriteDriver.h"
#include <cmath>

using namespace mlir;
using namespace mlir::aim;

namespace {

RankedTensorType tensorType(Value v) {
  return cast<RankedTensorType>(v.getType());
}

SmallVector<utils::IteratorType> parallel(unsigned n) {
  return SmallVector<utils::IteratorType>(n, utils::IteratorType::parallel);
}

Value floatConstant(OpBuilder &b, Location loc, Type type, double value) {
  return arith::ConstantOp::create(b, loc, b.getFloatAttr(type, value));
}

/// A zero-filled tensor of `type`.
Value zeros(OpBuilder &b, Location loc, RankedTensorType type) {
  Value empty =
      tensor::EmptyOp::create(b, loc, type.getShape(), type.getElementType());
  Value zero = floatConstant(b, loc, type.getElementType(), 0.0);
  return linalg::FillOp::create(b, loc, zero, empty).getResult(0);
}

/// `value` collapsed to [rows, last] (or returned as is when of rank 2).
Value collapseTo2d(OpBuilder &b, Location loc, Value value) {
  auto type = tensorType(value);
  if (type.getRank() == 2)
    return value;
  SmallVector<ReassociationIndices> groups(2);
  for (int64_t d = 0; d + 1 < type.getRank(); ++d)
    groups[0].push_back(d);
  groups[1].push_back(type.getRank() - 1);
  return tensor::CollapseShapeOp::create(b, loc, value, groups);
}

/// `value` [rows, last] expanded back to `type`.
Value expandFrom2d(OpBuilder &b, Location loc, Value value,
                   RankedTensorType type) {
  if (type.getRank() == 2)
    return value;
  SmallVector<ReassociationIndices> groups(2);
  for (int64_t d = 0; d + 1 < type.getRank(); ++d)
    groups[0].push_back(d);
  groups[1].push_back(type.getRank() - 1);
  return tensor::ExpandShapeOp::create(b, loc, type, value, groups);
}

/// The aim.add that is a GEMM result's only use, adding a tensor of the
/// result's own type (a residual, or another gradient share); null if none.
/// The GEMM then starts from that tensor (C = A B + R: cblas_sgemm's and
/// cuBLASLt's beta = 1) and the add costs no kernel of its own.
AddOp residualAdd(Value gemmResult) {
  if (!gemmResult.hasOneUse())
    return {};
  auto add = dyn_cast<AddOp>(*gemmResult.getUsers().begin());
  if (!add || add.getLhs() == add.getRhs() ||
      add.getLhs().getType() != add.getRhs().getType())
    return {};
  return add;
}

/// `add`'s operand other than `gemmResult`.
Value residualOf(AddOp add, Value gemmResult) {
  return add.getLhs() == gemmResult ? add.getRhs() : add.getLhs();
}

struct LowerAdd : OpRewritePattern<AddOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(AddOp op, PatternRewriter &b) const override {
    // Left to the GEMM it ends (LowerLinear, LowerMatmul).
    for (Value operand : {op.getLhs(), op.getRhs()})
      if (isa_and_nonnull<LinearOp, MatmulOp>(operand.getDefiningOp()) &&
          residualAdd(operand) == op)
        return failure();
    auto type = tensorType(op.getResult());
    unsigned rank = type.getRank(), rhsRank = tensorType(op.getRhs()).getRank();
    MLIRContext *ctx = op.getContext();
    AffineMap identity = b.getMultiDimIdentityMap(rank);
    AffineMap trailing = AffineMap::get(
        rank, 0,
        llvm::to_vector(llvm::map_range(
            llvm::seq<unsigned>(rank - rhsRank, rank),
            [&](unsigned d) { return getAffineDimExpr(d, ctx); })),
        ctx);
    Value init = tensor::EmptyOp::create(b, op.getLoc(), type.getShape(),
                                         type.getElementType());
    b.replaceOpWithNewOp<linalg::GenericOp>(
        op, type, ValueRange{op.getLhs(), op.getRhs()}, init,
        ArrayRef<AffineMap>{identity, trailing, identity}, parallel(rank),
        [](OpBuilder &nb, Location loc, ValueRange args) {
          linalg::YieldOp::create(
              nb, loc,
              arith::AddFOp::create(nb, loc, args[0], args[1]).getResult());
        });
    return success();
  }
};

struct LowerGelu : OpRewritePattern<GeluOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(GeluOp op, PatternRewriter &b) const override {
    auto type = tensorType(op.getResult());
    AffineMap identity = b.getMultiDimIdentityMap(type.getRank());
    bool tanhForm = op.getApproximation() == GeluApproximation::tanh;
    Value init = tensor::EmptyOp::create(b, op.getLoc(), type.getShape(),
                                         type.getElementType());
    b.replaceOpWithNewOp<linalg::GenericOp>(
        op, type, ValueRange{op.getInput()}, init,
        ArrayRef<AffineMap>{identity, identity}, parallel(type.getRank()),
        [&](OpBuilder &nb, Location loc, ValueRange args) {
          Type t = args[0].getType();
          Value x = args[0];
          Value half = floatConstant(nb, loc, t, 0.5);
          Value one = floatConstant(nb, loc, t, 1.0);
          Value inner;
          if (tanhForm) { // tanh(sqrt(2/pi) (x + 0.044715 x^3))
            Value x3 = arith::MulFOp::create(
                nb, loc, arith::MulFOp::create(nb, loc, x, x), x);
            Value poly = arith::AddFOp::create(
                nb, loc, x,
                arith::MulFOp::create(nb, loc,
                                      floatConstant(nb, loc, t, 0.044715), x3));
            inner = math::TanhOp::create(
                nb, loc,
                arith::MulFOp::create(
                    nb, loc, floatConstant(nb, loc, t, 0.79788456080286535588),
                    poly));
          } else { // erf(x / sqrt(2))
            inner = math::ErfOp::create(
                nb, loc,
                arith::MulFOp::create(
                    nb, loc, x,
                    floatConstant(nb, loc, t, 0.70710678118654752440)));
          }
          // 0.5 * x * (1 + inner), in the interpreter's order.
          Value y = arith::MulFOp::create(
              nb, loc, arith::MulFOp::create(nb, loc, half, x),
              arith::AddFOp::create(nb, loc, one, inner));
          linalg::YieldOp::create(nb, loc, y);
        });
    return success();
  }
};

struct LowerCast : OpRewritePattern<CastOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(CastOp op, PatternRewriter &b) const override {
    auto in = tensorType(op.getInput()), out = tensorType(op.getResult());
    if (in == out) {
      b.replaceOp(op, op.getInput());
      return success();
    }
    AffineMap identity = b.getMultiDimIdentityMap(out.getRank());
    bool widen = out.getElementType().getIntOrFloatBitWidth() >
                 in.getElementType().getIntOrFloatBitWidth();
    Value init = tensor::EmptyOp::create(b, op.getLoc(), out.getShape(),
                                         out.getElementType());
    auto copy = b.replaceOpWithNewOp<linalg::GenericOp>(
        op, out, ValueRange{op.getInput()}, init,
        ArrayRef<AffineMap>{identity, identity}, parallel(out.getRank()),
        [&](OpBuilder &nb, Location loc, ValueRange args) {
          Type to = out.getElementType();
          Value v =
              widen ? arith::ExtFOp::create(nb, loc, to, args[0]).getResult()
                    : arith::TruncFOp::create(nb, loc, to, args[0]).getResult();
          linalg::YieldOp::create(nb, loc, v);
        });
    // A narrowed copy (a GEMM operand's, aim-bf16-gemm-operands) is written
    // by the kernel computing its operand, beside the operand.
    if (!widen)
      copy->setAttr(kGemmOperandCastAttrName, b.getUnitAttr());
    return success();
  }
};

/// A linalg.generic over `type`'s index space whose body gets the scalar
/// operands and the loop indices.
Value elementwise(
    OpBuilder &b, Location loc, RankedTensorType type, ValueRange inputs,
    ArrayRef<AffineMap> inputMaps,
    function_ref<Value(OpBuilder &, Location, ValueRange, ValueRange)> body) {
  SmallVector<AffineMap> maps(inputMaps.begin(), inputMaps.end());
  maps.push_back(b.getMultiDimIdentityMap(type.getRank()));
  Value init =
      tensor::EmptyOp::create(b, loc, type.getShape(), type.getElementType());
  unsigned rank = type.getRank();
  return linalg::GenericOp::create(
             b, loc, type, inputs, init, maps, parallel(rank),
             [&](OpBuilder &nb, Location l, ValueRange args) {
               SmallVector<Value> indices;
               for (unsigned d = 0; d < rank; ++d)
                 indices.push_back(linalg::IndexOp::create(nb, l, d));
               linalg::YieldOp::create(nb, l,
                                       body(nb, l, args.drop_back(), indices));
             })
      .getResult(0);
}

/// The map of a rank-0 operand (a scalar broadcast over every index).
AffineMap scalarMap(OpBuilder &b, unsigned rank) {
  return AffineMap::get(rank, 0, {}, b.getContext());
}

/// out[m, n] (+)= sum_k lhs * rhs with the given operand maps over the
/// iteration dimensions (m, k, n), the sum in order of k starting from
/// `init`. n is the innermost loop, so that with a row-major rhs(k, n) the
/// loop vectorises without reordering any sum (the interpreter's order).
Value contraction(OpBuilder &b, Location loc, Value lhs, Value rhs, Value init,
                  AffineMap lhsMap, AffineMap rhsMap) {
  MLIRContext *ctx = b.getContext();
  AffineMap outMap = AffineMap::get(
      3, 0, {getAffineDimExpr(0, ctx), getAffineDimExpr(2, ctx)}, ctx);
  return linalg::GenericOp::create(
             b, loc, init.getType(), ValueRange{lhs, rhs}, init,
             ArrayRef<AffineMap>{lhsMap, rhsMap, outMap},
             {utils::IteratorType::parallel, utils::IteratorType::reduction,
              utils::IteratorType::parallel},
             [](OpBuilder &nb, Location l, ValueRange args) {
               Value product = arith::MulFOp::create(nb, l, args[0], args[1]);
               linalg::YieldOp::create(
                   nb, l,
                   arith::AddFOp::create(nb, l, args[2], product).getResult());
             })
      .getResult(0);
}

/// An operand map over (m, k, n) = dims (0, 1, 2).
AffineMap map3(MLIRContext *ctx, unsigned a, unsigned b) {
  return AffineMap::get(
      3, 0, {getAffineDimExpr(a, ctx), getAffineDimExpr(b, ctx)}, ctx);
}

/// `matrix` [r, c] transposed to [c, r] (a copy, so that the contraction's
/// inner loop reads it contiguously).
Value transposed(OpBuilder &b, Location loc, Value matrix) {
  auto type = tensorType(matrix);
  auto outType = RankedTensorType::get({type.getDimSize(1), type.getDimSize(0)},
                                       type.getElementType());
  MLIRContext *ctx = b.getContext();
  AffineMap swap = AffineMap::get(
      2, 0, {getAffineDimExpr(1, ctx), getAffineDimExpr(0, ctx)}, ctx);
  return elementwise(
      b, loc, outType, {matrix}, {swap},
      [](OpBuilder &, Location, ValueRange a, ValueRange) { return a[0]; });
}

/// Marks a contraction C(M, N) += op(A) op(B) (ins A, B as stored; the flags
/// say which are transposed) as one the host compiler may hand to a BLAS.
void markGemm(Value contraction, bool transposeA, bool transposeB) {
  Operation *op = contraction.getDefiningOp();
  op->setAttr(kGemmAttrName,
              DenseI64ArrayAttr::get(op->getContext(),
                                     {transposeA ? 1 : 0, transposeB ? 1 : 0}));
}

/// A GEMM's initial C of `type`: zeros, or the bias (along the last
/// dimension), the residual, or both added -- a new tensor either way, so
/// that the GEMM accumulates into its kernel's output and never into a
/// residual that someone else still reads. Built in the result's own shape:
/// bufferization then hands the kernel's output buffer to the GEMM.
Value initialC(OpBuilder &b, Location loc, RankedTensorType type, Value bias,
               Value residual) {
  MLIRContext *ctx = b.getContext();
  unsigned rank = type.getRank();
  SmallVector<Value> starts;
  SmallVector<AffineMap> maps;
  if (bias) {
    starts.push_back(bias);
    maps.push_back(
        AffineMap::get(rank, 0, {getAffineDimExpr(rank - 1, ctx)}, ctx));
  }
  if (residual) {
    starts.push_back(residual);
    maps.push_back(b.getMultiDimIdentityMap(rank));
  }
  if (starts.empty())
    return zeros(b, loc, type);
  return elementwise(
      b, loc, type, starts, maps,
      [](OpBuilder &nb, Location l, ValueRange a, ValueRange) {
        return a.size() == 1
                   ? a[0]
                   : arith::AddFOp::create(nb, l, a[0], a[1]).getResult();
      });
}

/// `x` with `elementType`, widened exactly (a bfloat16 GEMM operand, rounded
/// before lowering by aim-bf16-gemm-operands, for loops or for a call that
/// reads float32); `x` itself if it has that type.
Value widenedTo(OpBuilder &b, Location loc, Value x, Type elementType) {
  auto type = tensorType(x);
  if (type.getElementType() == elementType)
    return x;
  return elementwise(
      b, loc, RankedTensorType::get(type.getShape(), elementType), {x},
      {b.getMultiDimIdentityMap(type.getRank())},
      [&](OpBuilder &nb, Location l, ValueRange a, ValueRange) {
        return arith::ExtFOp::create(nb, l, elementType, a[0]).getResult();
      });
}

/// A GEMM operand rounded to bfloat16 (a bfloat16 tensor, or for
/// BF16AsF32 the rounded values as float32), marked so that fusion moves its
/// producer into it (kGemmOperandCastAttrName).
Value roundedGemmOperand(OpBuilder &b, Location loc, Value x,
                         GemmOperands operands) {
  auto type = tensorType(x);
  bool asF32 = operands == GemmOperands::BF16AsF32;
  auto outType = RankedTensorType::get(
      type.getShape(), asF32 ? type.getElementType() : b.getBF16Type());
  Value rounded = elementwise(
      b, loc, outType, {x}, {b.getMultiDimIdentityMap(type.getRank())},
      [&](OpBuilder &nb, Location l, ValueRange a, ValueRange) {
        return roundToBf16(nb, l, a[0], asF32);
      });
  rounded.getDefiningOp()->setAttr(kGemmOperandCastAttrName, b.getUnitAttr());
  return rounded;
}

/// A GEMM with its epilogue in the op (for calls that take a bias and a C
/// apart from the result D, as cuBLASLt does): over (m, k, n), inputs lhs,
/// rhs, then the bias (along n) and the residual (m, n) where given; the
/// output starts empty and each element starts from bias + residual (or 0)
/// at k = 0. Marked kGemmEpilogueAttrName = [has bias, has residual].
/// `empty` is the (unwritten) output, a 2-d view of the result's own shape
/// so that bufferization hands the kernel's output buffer to the call.
Value contractionWithEpilogue(OpBuilder &b, Location loc, Value lhs, Value rhs,
                              Value empty, Value bias, Value residual,
                              AffineMap lhsMap, AffineMap rhsMap,
                              GemmOperands operands) {
  MLIRContext *ctx = b.getContext();
  auto type = cast<RankedTensorType>(empty.getType());
  // Operands narrower than the result were rounded before lowering
  // (aim-bf16-gemm-operands): a bfloat16 call reads them as they are, any
  // other is given them widened (exactly); float32 ones are rounded here
  // unless the call reads float32.
  const bool roundedBefore =
      tensorType(lhs).getElementType() != type.getElementType();
  if (roundedBefore && operands != GemmOperands::BF16) {
    lhs = widenedTo(b, loc, lhs, type.getElementType());
    rhs = widenedTo(b, loc, rhs, type.getElementType());
  } else if (!roundedBefore && operands != GemmOperands::F32) {
    lhs = roundedGemmOperand(b, loc, lhs, operands);
    rhs = roundedGemmOperand(b, loc, rhs, operands);
  }
  SmallVector<Value> inputs = {lhs, rhs};
  SmallVector<AffineMap> maps = {lhsMap, rhsMap};
  AffineMap outMap = map3(ctx, 0, 2);
  if (bias) {
    inputs.push_back(bias);
    maps.push_back(AffineMap::get(3, 0, {getAffineDimExpr(2, ctx)}, ctx));
  }
  if (residual) {
    inputs.push_back(residual);
    maps.push_back(outMap);
  }
  maps.push_back(outMap);
  auto op = linalg::GenericOp::create(
      b, loc, type, inputs, empty, maps,
      {utils::IteratorType::parallel, utils::IteratorType::reduction,
       utils::IteratorType::parallel},
      [&](OpBuilder &nb, Location l, ValueRange args) {
        Value start = floatConstant(nb, l, type.getElementType(), 0.0);
        unsigned next = 2;
        if (bias)
          start = args[next++];
        if (residual)
          start = bias ? arith::AddFOp::create(nb, l, start, args[next++])
                             .getResult()
                       : args[next++];
        Value first = arith::CmpIOp::create(
            nb, l, arith::CmpIPredicate::eq, linalg::IndexOp::create(nb, l, 1),
            arith::ConstantIndexOp::create(nb, l, 0));
        Value acc = arith::SelectOp::create(nb, l, first, start, args.back());
        auto widened = [&](Value x) { // bfloat16 operands, float32 sums
          return x.getType() == type.getElementType()
                     ? x
                     : arith::ExtFOp::create(nb, l, type.getElementType(), x)
                           .getResult();
        };
        Value product =
            arith::MulFOp::create(nb, l, widened(args[0]), widened(args[1]));
        linalg::YieldOp::create(
            nb, l, arith::AddFOp::create(nb, l, acc, product).getResult());
      });
  op->setAttr(kGemmEpilogueAttrName,
              DenseI64ArrayAttr::get(ctx, {bias ? 1 : 0, residual ? 1 : 0}));
  if (operands != GemmOperands::F32 || roundedBefore)
    op->setAttr(kGemmOperandsRoundedAttrName, b.getUnitAttr());
  return op.getResult(0);
}

struct LowerLinear : OpRewritePattern<LinearOp> {
  LowerLinear(MLIRContext *ctx, bool blas, bool epilogues,
              GemmOperands operands)
      : OpRewritePattern(ctx), blas(blas), epilogues(epilogues),
        operands(operands) {}
  bool blas, epilogues;
  GemmOperands operands; // with epilogues: A and B rounded here
  LogicalResult matchAndRewrite(LinearOp op,
                                PatternRewriter &b) const override {
    Location loc = op.getLoc();
    MLIRContext *ctx = op.getContext();
    auto outType = tensorType(op.getResult());
    // Built where the add is: the residual may be computed after the GEMM's
    // operands (they all come before the add).
    AddOp add = residualAdd(op.getResult());
    if (add)
      b.setInsertionPoint(add);
    Value x = collapseTo2d(b, loc, op.getInput());
    Value y;
    if (blas && epilogues) {
      // The bias and the residual go to the call (GemmCalls.h).
      Value residual = add ? collapseTo2d(b, loc, residualOf(add, op.getResult()))
                           : Value();
      Value empty = collapseTo2d(
          b, loc,
          tensor::EmptyOp::create(b, loc, outType.getShape(),
                                  outType.getElementType()));
      y = contractionWithEpilogue(b, loc, x, op.getWeight(), empty,
                                  op.getBias(), residual, map3(ctx, 0, 1),
                                  map3(ctx, 2, 1), operands);
      markGemm(y, false, true);
    } else {
      // Every row starts from the bias, the residual, both or zero.
      Value init = collapseTo2d(
          b, loc,
          initialC(b, loc, outType, op.getBias(),
                   add ? residualOf(add, op.getResult()) : Value()));
      // (m, k, n): x(m, k) * w(n, k). For loops, over a transposed copy of
      // w so that the inner loop is contiguous; for a BLAS, w as it is.
      // bfloat16 operands (aim-bf16-gemm-operands) widened for both.
      Type et = outType.getElementType();
      x = widenedTo(b, loc, x, et);
      Value w = widenedTo(b, loc, op.getWeight(), et);
      if (blas) {
        y = contraction(b, loc, x, w, init, map3(ctx, 0, 1), map3(ctx, 2, 1));
        markGemm(y, false, true);
      } else {
        y = contraction(b, loc, x, transposed(b, loc, w), init, map3(ctx, 0, 1),
                        map3(ctx, 1, 2));
      }
    }
    Value result = expandFrom2d(b, loc, y, outType);
    if (add) {
      b.replaceOp(add, result);
      b.eraseOp(op);
    } else {
      b.replaceOp(op, result);
    }
    return success();
  }
};

struct LowerMatmul : OpRewritePattern<MatmulOp> {
  LowerMatmul(MLIRContext *ctx, bool epilogues, GemmOperands operands)
      : OpRewritePattern(ctx), epilogues(epilogues), operands(operands) {}
  bool epilogues; // the residual as the call's C (contractionWithEpilogue)
  GemmOperands operands; // with epilogues: A and B rounded here
  LogicalResult matchAndRewrite(MatmulOp op,
                                PatternRewriter &b) const override {
    MLIRContext *ctx = op.getContext();
    // (m, k, n): lhs(m, k) or lhs(k, m); rhs(k, n) or rhs(n, k).
    AffineMap lhsMap = op.getTransposeLhs() ? map3(ctx, 1, 0) : map3(ctx, 0, 1);
    AffineMap rhsMap = op.getTransposeRhs() ? map3(ctx, 2, 1) : map3(ctx, 1, 2);
    AddOp add = residualAdd(op.getResult());
    if (add) // where the residual is defined, as the GEMM's operands are
      b.setInsertionPoint(add);
    Value residual = add ? residualOf(add, op.getResult()) : Value();
    Type et = tensorType(op.getResult()).getElementType();
    Value y =
        epilogues
            ? contractionWithEpilogue(
                  b, op.getLoc(), op.getLhs(), op.getRhs(),
                  tensor::EmptyOp::create(
                      b, op.getLoc(), tensorType(op.getResult()).getShape(),
                      tensorType(op.getResult()).getElementType()),
                  Value(), residual, lhsMap, rhsMap, operands)
            : contraction(b, op.getLoc(),
                          widenedTo(b, op.getLoc(), op.getLhs(), et),
                          widenedTo(b, op.getLoc(), op.getRhs(), et),
                          initialC(b, op.getLoc(), tensorType(op.getResult()),
                                   Value(), residual),
                          lhsMap, rhsMap);
    markGemm(y, op.getTransposeLhs(), op.getTransposeRhs());
    if (add) {
      b.replaceOp(add, y);
      b.eraseOp(op);
    } else {
      b.replaceOp(op, y);
    }
    return success();
  }
};

struct LowerSumLeading : OpRewritePattern<SumLeadingOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(SumLeadingOp op,
                                PatternRewriter &b) const override {
    MLIRContext *ctx = op.getContext();
    auto in = tensorType(op.getInput()), out = tensorType(op.getResult());
    unsigned rank = in.getRank(), kept = out.getRank();
    SmallVector<AffineExpr> outExprs;
    for (unsigned d = rank - kept; d < rank; ++d)
      outExprs.push_back(getAffineDimExpr(d, ctx));
    SmallVector<utils::IteratorType> iterators(rank - kept,
                                               utils::IteratorType::reduction);
    iterators.append(kept, utils::IteratorType::parallel);
    b.replaceOpWithNewOp<linalg::GenericOp>(
        op, out, ValueRange{op.getInput()}, zeros(b, op.getLoc(), out),
        ArrayRef<AffineMap>{b.getMultiDimIdentityMap(rank),
                            AffineMap::get(rank, 0, outExprs, ctx)},
        iterators, [](OpBuilder &nb, Location l, ValueRange args) {
          linalg::YieldOp::create(
              nb, l,
              arith::AddFOp::create(nb, l, args[1], args[0]).getResult());
        });
    return success();
  }
};

struct LowerLayerNorm : OpRewritePattern<LayerNormOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(LayerNormOp op,
                                PatternRewriter &b) const override {
    Location loc = op.getLoc();
    MLIRContext *ctx = op.getContext();
    auto type = tensorType(op.getResult());
    Type et = type.getElementType();
    Value x = collapseTo2d(b, loc, op.getInput());
    int64_t rows = tensorType(x).getDimSize(0), d = type.getShape().back();
    auto rowType = RankedTensorType::get({rows}, et);
    AffineMap full = b.getMultiDimIdentityMap(2);
    AffineMap row = AffineMap::get(2, 0, {getAffineDimExpr(0, ctx)}, ctx);
    AffineMap column = AffineMap::get(2, 0, {getAffineDimExpr(1, ctx)}, ctx);
    SmallVector<utils::IteratorType> reduceColumns = {
        utils::IteratorType::parallel, utils::IteratorType::reduction};
    Value count = floatConstant(b, loc, et, static_cast<double>(d));
    // mean = (sum_i x_i) / D; var = (sum_i (x_i - mean)^2) / D.
    Value sum =
        linalg::GenericOp::create(
            b, loc, rowType, ValueRange{x}, zeros(b, loc, rowType),
            ArrayRef<AffineMap>{full, row}, reduceColumns,
            [](OpBuilder &nb, Location l, ValueRange a) {
              linalg::YieldOp::create(
                  nb, l, arith::AddFOp::create(nb, l, a[1], a[0]).getResult());
            })
            .getResult(0);
    Value squares =
        linalg::GenericOp::create(
            b, loc, rowType, ValueRange{x, sum}, zeros(b, loc, rowType),
            ArrayRef<AffineMap>{full, row, row}, reduceColumns,
            [&](OpBuilder &nb, Location l, ValueRange a) {
              Value mean = arith::DivFOp::create(nb, l, a[1], count);
              Value diff = arith::SubFOp::create(nb, l, a[0], mean);
              Value sq = arith::MulFOp::create(nb, l, diff, diff);
              linalg::YieldOp::create(
                  nb, l, arith::AddFOp::create(nb, l, a[2], sq).getResult());
            })
            .getResult(0);
    double eps = op.getEpsilon().convertToDouble();
    auto out2d = RankedTensorType::get({rows, d}, et);
    Value empty = tensor::EmptyOp::create(b, loc, out2d.getShape(), et);
    Value y =
        linalg::GenericOp::create(
            b, loc, out2d,
            ValueRange{x, sum, squares, op.getWeight(), op.getBias()}, empty,
            ArrayRef<AffineMap>{full, row, row, column, column, full},
            parallel(2),
            [&](OpBuilder &nb, Location l, ValueRange a) {
              Value mean = arith::DivFOp::create(nb, l, a[1], count);
              Value var = arith::DivFOp::create(nb, l, a[2], count);
              Value inv = arith::DivFOp::create(
                  nb, l, floatConstant(nb, l, et, 1.0),
                  math::SqrtOp::create(
                      nb, l,
                      arith::AddFOp::create(nb, l, var,
                                            floatConstant(nb, l, et, eps))));
              Value centered = arith::SubFOp::create(nb, l, a[0], mean);
              Value scaled = arith::MulFOp::create(
                  nb, l, arith::MulFOp::create(nb, l, centered, inv), a[3]);
              linalg::YieldOp::create(
                  nb, l,
                  arith::AddFOp::create(nb, l, scaled, a[4]).getResult());
            })
            .getResult(0);
    b.replaceOp(op, expandFrom2d(b, loc, y, type));
    return success();
  }
};

struct LowerReshape : OpRewritePattern<ReshapeOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(ReshapeOp op,
                                PatternRewriter &b) const override {
    // Through one dimension: both steps are views of the same buffer.
    auto in = tensorType(op.getInput()), out = tensorType(op.getResult());
    auto flat =
        RankedTensorType::get({in.getNumElements()}, in.getElementType());
    SmallVector<ReassociationIndices> all(1);
    for (int64_t d = 0; d < in.getRank(); ++d)
      all[0].push_back(d);
    Value v = op.getInput();
    if (in.getRank() != 1)
      v = tensor::CollapseShapeOp::create(b, op.getLoc(), flat, v, all);
    if (out.getRank() != 1) {
      SmallVector<ReassociationIndices> back(1);
      for (int64_t d = 0; d < out.getRank(); ++d)
        back[0].push_back(d);
      v = tensor::ExpandShapeOp::create(b, op.getLoc(), out, v, back);
    }
    b.replaceOp(op, v);
    return success();
  }
};

/// A box covering `shape` except along `dim`, where it is
/// [offset, offset + size): the operands of tensor.extract/insert_slice.
struct Box {
  SmallVector<OpFoldResult> offsets, sizes, strides;
};

Box boxAlong(OpBuilder &b, ArrayRef<int64_t> shape, int64_t dim, int64_t offset,
             int64_t size) {
  Box box;
  for (int64_t d = 0; d < static_cast<int64_t>(shape.size()); ++d) {
    box.offsets.push_back(b.getIndexAttr(d == dim ? offset : 0));
    box.sizes.push_back(b.getIndexAttr(d == dim ? size : shape[d]));
    box.strides.push_back(b.getIndexAttr(1));
  }
  return box;
}

struct LowerSlice : OpRewritePattern<SliceOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(SliceOp op, PatternRewriter &b) const override {
    Box box = boxAlong(b, tensorType(op.getInput()).getShape(), op.getDim(),
                       op.getOffset(), op.getSize());
    b.replaceOpWithNewOp<tensor::ExtractSliceOp>(op, tensorType(op.getResult()),
                                                 op.getInput(), box.offsets,
                                                 box.sizes, box.strides);
    return success();
  }
};

struct LowerPad : OpRewritePattern<PadOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(PadOp op, PatternRewriter &b) const override {
    auto in = tensorType(op.getInput());
    Box box = boxAlong(b, in.getShape(), op.getDim(), op.getBefore(),
                       in.getDimSize(op.getDim()));
    b.replaceOpWithNewOp<tensor::InsertSliceOp>(
        op, op.getInput(), zeros(b, op.getLoc(), tensorType(op.getResult())),
        box.offsets, box.sizes, box.strides);
    return success();
  }
};

struct LowerGeluGrad : OpRewritePattern<GeluGradOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(GeluGradOp op,
                                PatternRewriter &b) const override {
    auto type = tensorType(op.getResult());
    AffineMap id = b.getMultiDimIdentityMap(type.getRank());
    bool tanhForm = op.getApproximation() == GeluApproximation::tanh;
    b.replaceOp(
        op,
        elementwise(
            b, op.getLoc(), type, {op.getGrad(), op.getInput()}, {id, id},
            [&](OpBuilder &nb, Location l, ValueRange a, ValueRange) {
              Type t = a[0].getType();
              auto c = [&](double v) { return floatConstant(nb, l, t, v); };
              Value v = a[1], half = c(0.5), one = c(1.0), d;
              auto mul = [&](Value x, Value y) {
                return arith::MulFOp::create(nb, l, x, y).getResult();
              };
              auto add = [&](Value x, Value y) {
                return arith::AddFOp::create(nb, l, x, y).getResult();
              };
              if (tanhForm) {
                Value k = c(0.79788456080286535588);
                Value th = math::TanhOp::create(
                    nb, l, mul(k, add(v, mul(c(0.044715), mul(mul(v, v), v)))));
                Value left = mul(half, add(one, th));
                Value sech2 = arith::SubFOp::create(nb, l, one, mul(th, th));
                Value right = mul(mul(mul(mul(half, v), sech2), k),
                                  add(one, mul(c(3 * 0.044715), mul(v, v))));
                d = add(left, right);
              } else {
                Value cdf = mul(
                    half,
                    add(one, math::ErfOp::create(
                                 nb, l, mul(v, c(0.70710678118654752440)))));
                Value pdf =
                    mul(mul(v, c(0.39894228040143267794)),
                        math::ExpOp::create(nb, l, mul(c(-0.5), mul(v, v))));
                d = add(cdf, pdf);
              }
              return mul(a[0], d);
            }));
    return success();
  }
};

struct LowerPosEmbed : OpRewritePattern<PosEmbed2dOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(PosEmbed2dOp op,
                                PatternRewriter &b) const override {
    auto type = tensorType(op.getResult());
    int64_t width = type.getDimSize(1), quarter = width / 4,
            gridWidth = op.getGridWidth();
    b.replaceOp(
        op, elementwise(
                b, op.getLoc(), type, {}, {},
                [&](OpBuilder &nb, Location l, ValueRange, ValueRange idx) {
                  // Token n = (i, j); channel c: quarter q = c / (E/4),
                  // frequency k = c mod (E/4); quarters are sin(j),
                  // cos(j), sin(i), cos(i).
                  auto index = [&](int64_t v) {
                    return arith::ConstantIndexOp::create(nb, l, v).getResult();
                  };
                  Value n = idx[0], c = idx[1];
                  Value i = arith::DivUIOp::create(nb, l, n, index(gridWidth));
                  Value j = arith::RemUIOp::create(nb, l, n, index(gridWidth));
                  Value q = arith::DivUIOp::create(nb, l, c, index(quarter));
                  Value k = arith::RemUIOp::create(nb, l, c, index(quarter));
                  Value usesRow = arith::CmpIOp::create(
                      nb, l, arith::CmpIPredicate::uge, q, index(2));
                  Value t = arith::SelectOp::create(nb, l, usesRow, i, j);
                  Type f64 = nb.getF64Type();
                  auto toF64 = [&](Value ix) {
                    Value i64 =
                        arith::IndexCastOp::create(nb, l, nb.getI64Type(), ix);
                    return arith::SIToFPOp::create(nb, l, f64, i64).getResult();
                  };
                  // omega = 10000^(-k / (E/4)), in double as the interpreter.
                  Value omega = math::PowFOp::create(
                      nb, l, floatConstant(nb, l, f64, 10000.0),
                      arith::DivFOp::create(
                          nb, l, arith::NegFOp::create(nb, l, toF64(k)),
                          floatConstant(nb, l, f64, double(quarter))));
                  Value angle = arith::MulFOp::create(nb, l, toF64(t), omega);
                  Value isCos = arith::CmpIOp::create(
                      nb, l, arith::CmpIPredicate::eq,
                      arith::RemUIOp::create(nb, l, q, index(2)), index(1));
                  Value v = arith::SelectOp::create(
                      nb, l, isCos, math::CosOp::create(nb, l, angle),
                      math::SinOp::create(nb, l, angle));
                  if (type.getElementType().isF64())
                    return v;
                  return arith::TruncFOp::create(nb, l, type.getElementType(),
                                                 v)
                      .getResult();
                }));
    return success();
  }
};

struct LowerPatchify : OpRewritePattern<PatchifyOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(PatchifyOp op,
                                PatternRewriter &b) const override {
    auto type = tensorType(op.getResult());
    auto in = tensorType(op.getImages());
    int64_t c = in.getDimSize(1), p = op.getPatchSize(),
            gridWidth = in.getDimSize(3) / p;
    bool channelLast = op.getOrder() == PatchOrder::channel_last;
    Value images = op.getImages();
    b.replaceOp(
        op,
        elementwise(
            b, op.getLoc(), type, {}, {},
            [&](OpBuilder &nb, Location l, ValueRange, ValueRange idx) {
              auto index = [&](int64_t v) {
                return arith::ConstantIndexOp::create(nb, l, v).getResult();
              };
              auto div = [&](Value a, int64_t v) {
                return arith::DivUIOp::create(nb, l, a, index(v)).getResult();
              };
              auto rem = [&](Value a, int64_t v) {
                return arith::RemUIOp::create(nb, l, a, index(v)).getResult();
              };
              auto add = [&](Value a, Value v) {
                return arith::AddIOp::create(nb, l, a, v).getResult();
              };
              auto mul = [&](Value a, int64_t v) {
                return arith::MulIOp::create(nb, l, a, index(v)).getResult();
              };
              Value n = idx[1], k = idx[2];
              Value ch, r, col;
              if (channelLast) { // k = (r * p + col) * C + ch
                ch = rem(k, c);
                r = div(div(k, c), p);
                col = rem(div(k, c), p);
              } else { // k = (ch * p + r) * p + col
                ch = div(k, p * p);
                r = rem(div(k, p), p);
                col = rem(k, p);
              }
              Value row = add(mul(div(n, gridWidth), p), r);
              Value column = add(mul(rem(n, gridWidth), p), col);
              return tensor::ExtractOp::create(
                         nb, l, images, ValueRange{idx[0], ch, row, column})
                  .getResult();
            }));
    return success();
  }
};

struct LowerClipCoefficient : OpRewritePattern<ClipCoefficientOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(ClipCoefficientOp op,
                                PatternRewriter &b) const override {
    auto type = tensorType(op.getResult());
    double maxNorm = op.getMaxNorm().convertToDouble(),
           eps = op.getEpsilon().convertToDouble();
    b.replaceOp(
        op,
        elementwise(b, op.getLoc(), type, {op.getNorm()}, {scalarMap(b, 0)},
                    [&](OpBuilder &nb, Location l, ValueRange a, ValueRange) {
                      Type t = a[0].getType();
                      Value coef = arith::DivFOp::create(
                          nb, l, floatConstant(nb, l, t, maxNorm),
                          arith::AddFOp::create(nb, l, a[0],
                                                floatConstant(nb, l, t, eps)));
                      return arith::MinimumFOp::create(
                                 nb, l, floatConstant(nb, l, t, 1.0), coef)
                          .getResult();
                    }));
    return success();
  }
};

/// The sum of squares of every element of `inputs`, tensor by tensor, in
/// order, as a 0-d tensor of `type`.
Value sumOfSquares(OpBuilder &b, Location loc, RankedTensorType type,
                   ValueRange inputs) {
  // Each tensor's sum from zero, then the sum of those: a running total
  // carried through every tensor would round each addition at the total's
  // magnitude (SplitFullReductions.h).
  SmallVector<Value> sums;
  for (Value input : inputs) {
    unsigned rank = tensorType(input).getRank();
    SmallVector<utils::IteratorType> reduce(rank,
                                            utils::IteratorType::reduction);
    sums.push_back(
        linalg::GenericOp::create(
            b, loc, type, ValueRange{input}, zeros(b, loc, type),
            ArrayRef<AffineMap>{b.getMultiDimIdentityMap(rank),
                                scalarMap(b, rank)},
            reduce,
            [](OpBuilder &nb, Location l, ValueRange a) {
              Value sq = arith::MulFOp::create(nb, l, a[0], a[0]);
              linalg::YieldOp::create(
                  nb, l, arith::AddFOp::create(nb, l, a[1], sq).getResult());
            })
            .getResult(0));
  }
  if (sums.size() == 1)
    return sums.front();
  SmallVector<AffineMap> scalars(sums.size(), scalarMap(b, 0));
  return elementwise(b, loc, type, sums, scalars,
                     [](OpBuilder &nb, Location l, ValueRange a, ValueRange) {
                       Value total = a[0];
                       for (Value s : a.drop_front())
                         total = arith::AddFOp::create(nb, l, total, s);
                       return total;
                     });
}

/// sqrt of a 0-d tensor.
Value scalarSqrt(OpBuilder &b, Location loc, Value x) {
  return elementwise(b, loc, tensorType(x), {x}, {scalarMap(b, 0)},
                     [](OpBuilder &nb, Location l, ValueRange a, ValueRange) {
                       return math::SqrtOp::create(nb, l, a[0]).getResult();
                     });
}

struct LowerGlobalNorm : OpRewritePattern<GlobalNormOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(GlobalNormOp op,
                                PatternRewriter &b) const override {
    Location loc = op.getLoc();
    b.replaceOp(op, scalarSqrt(b, loc,
                               sumOfSquares(b, loc, tensorType(op.getResult()),
                                            op.getInputs())));
    return success();
  }
};

struct LowerSumSquares : OpRewritePattern<SumSquaresOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(SumSquaresOp op,
                                PatternRewriter &b) const override {
    b.replaceOp(op, sumOfSquares(b, op.getLoc(), tensorType(op.getResult()),
                                 op.getInputs()));
    return success();
  }
};

struct LowerSqrt : OpRewritePattern<SqrtOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(SqrtOp op, PatternRewriter &b) const override {
    b.replaceOp(op, scalarSqrt(b, op.getLoc(), op.getInput()));
    return success();
  }
};

struct LowerReweight : OpRewritePattern<ReweightOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(ReweightOp op,
                                PatternRewriter &b) const override {
    AffineMap scalar = scalarMap(b, 0);
    b.replaceOp(op, elementwise(b, op.getLoc(), tensorType(op.getResult()),
                                {op.getInput(), op.getWeight(), op.getTotal()},
                                {scalar, scalar, scalar},
                                [](OpBuilder &nb, Location l, ValueRange a,
                                   ValueRange) {
                                  Value weighted =
                                      arith::MulFOp::create(nb, l, a[0], a[1]);
                                  return arith::DivFOp::create(nb, l, weighted,
                                                               a[2])
                                      .getResult();
                                }));
    return success();
  }
};

/// The identity, once differentiated: its gradient rule is all it was for.
struct LowerEnterPartial : OpRewritePattern<EnterPartialOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(EnterPartialOp op,
                                PatternRewriter &b) const override {
    b.replaceOp(op, op.getInput());
    return success();
  }
};

struct LowerAdamW : OpRewritePattern<AdamWOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(AdamWOp op, PatternRewriter &b) const override {
    Location loc = op.getLoc();
    auto type = tensorType(op.getParam());
    unsigned rank = type.getRank();
    AffineMap id = b.getMultiDimIdentityMap(rank), scalar = scalarMap(b, rank);
    double beta1 = op.getBeta1().convertToDouble(),
           beta2 = op.getBeta2().convertToDouble(),
           eps = op.getEpsilon().convertToDouble(),
           decay = op.getWeightDecay().convertToDouble();
    // One loop nest with three results (one kernel on a GPU, each input read
    // once): the moments first, then the parameter from the new moments,
    // each as the interpreter's kernel computes it (bias corrections in
    // double).
    Type t = type.getElementType();
    auto moment = [&](OpBuilder &nb, Location l, Value previous, Value g,
                      double beta, bool squared) {
      if (squared)
        g = arith::MulFOp::create(nb, l, g, g);
      Value b1 = floatConstant(nb, l, t, beta);
      Value keep = arith::MulFOp::create(nb, l, b1, previous);
      Value rest =
          arith::SubFOp::create(nb, l, floatConstant(nb, l, t, 1.0), b1);
      Value add = arith::MulFOp::create(nb, l, rest, g);
      return arith::AddFOp::create(nb, l, keep, add).getResult();
    };
    // The bias corrections 1 - beta^(step + 1), in double as the
    // interpreter computes them: once, not once an element (marked so that
    // fusion keeps them out of the update's loop).
    auto scalarType = RankedTensorType::get({}, t);
    auto corrections = linalg::GenericOp::create(
        b, loc, TypeRange{scalarType, scalarType}, ValueRange{op.getStep()},
        ValueRange{tensor::EmptyOp::create(b, loc, ArrayRef<int64_t>{}, t),
                   tensor::EmptyOp::create(b, loc, ArrayRef<int64_t>{}, t)},
        ArrayRef<AffineMap>{scalarMap(b, 0), scalarMap(b, 0), scalarMap(b, 0)},
        ArrayRef<utils::IteratorType>{},
        [&](OpBuilder &nb, Location l, ValueRange a) {
          Type f64 = nb.getF64Type();
          Value t1 = arith::SIToFPOp::create(
              nb, l, f64,
              arith::AddIOp::create(
                  nb, l, a[0],
                  arith::ConstantOp::create(
                      nb, l, nb.getIntegerAttr(a[0].getType(), 1))));
          auto correction = [&](double beta) {
            Value power = math::PowFOp::create(
                nb, l, floatConstant(nb, l, f64, beta), t1);
            Value c = arith::SubFOp::create(
                nb, l, floatConstant(nb, l, f64, 1.0), power);
            return arith::TruncFOp::create(nb, l, t, c).getResult();
          };
          linalg::YieldOp::create(
              nb, l, ValueRange{correction(beta1), correction(beta2)});
        });
    corrections->setAttr(kComputedOnceAttrName, b.getUnitAttr());
    SmallVector<Value> outs;
    for (int i = 0; i < 3; ++i)
      outs.push_back(tensor::EmptyOp::create(b, loc, type.getShape(), t));
    // ins: param, grad, m, v, clip coefficient, lr, both corrections.
    auto update = linalg::GenericOp::create(
        b, loc, TypeRange{type, type, type},
        ValueRange{op.getParam(), op.getGrad(), op.getExpAvg(),
                   op.getExpAvgSq(), op.getClipCoefficient(), op.getLr(),
                   corrections.getResult(0), corrections.getResult(1)},
        outs,
        ArrayRef<AffineMap>{id, id, id, id, scalar, scalar, scalar, scalar, id,
                            id, id},
        parallel(rank), [&](OpBuilder &nb, Location l, ValueRange a) {
          Value g = arith::MulFOp::create(nb, l, a[1], a[4]);
          Value m = moment(nb, l, a[2], g, beta1, false);
          Value v = moment(nb, l, a[3], g, beta2, true);
          Value correction1 = a[6], correction2 = a[7];
          Value lr = a[5];
          Value decayed = arith::SubFOp::create(
              nb, l, a[0],
              arith::MulFOp::create(
                  nb, l,
                  arith::MulFOp::create(nb, l, lr,
                                        floatConstant(nb, l, t, decay)),
                  a[0]));
          Value mHat = arith::DivFOp::create(nb, l, m, correction1);
          Value denominator = arith::AddFOp::create(
              nb, l,
              math::SqrtOp::create(
                  nb, l, arith::DivFOp::create(nb, l, v, correction2)),
              floatConstant(nb, l, t, eps));
          Value step = arith::DivFOp::create(
              nb, l, arith::MulFOp::create(nb, l, lr, mHat), denominator);
          Value p = arith::SubFOp::create(nb, l, decayed, step);
          linalg::YieldOp::create(nb, l, ValueRange{p, m, v});
        });
    Value p = update.getResult(0), m = update.getResult(1),
          v = update.getResult(2);
    b.replaceOp(op, {p, m, v});
    return success();
  }
};

/// A fusion region not outlined: its ops are lowered in place.
struct InlineFusion : OpRewritePattern<FusionOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(FusionOp op,
                                PatternRewriter &b) const override {
    Block &body = op.getBody().front();
    auto yield = cast<YieldOp>(body.getTerminator());
    SmallVector<Value> results(yield.getValues());
    b.eraseOp(yield);
    b.inlineBlockBefore(&body, op, op.getInputs());
    b.replaceOp(op, results);
    return success();
  }
};

/// Per-row sums of f(row values) over the last dimension of a [rows, D]
/// tensor, in order: the reductions of LayerNorm and the loss.
Value rowSums(OpBuilder &b, Location loc, ValueRange inputs,
              ArrayRef<AffineMap> maps, RankedTensorType rowType,
              function_ref<Value(OpBuilder &, Location, ValueRange)> term) {
  SmallVector<AffineMap> all(maps.begin(), maps.end());
  MLIRContext *ctx = b.getContext();
  unsigned rank = rowType.getRank() + 1;
  SmallVector<AffineExpr> rowExprs;
  for (unsigned d = 0; d + 1 < rank; ++d)
    rowExprs.push_back(getAffineDimExpr(d, ctx));
  all.push_back(AffineMap::get(rank, 0, rowExprs, ctx));
  SmallVector<utils::IteratorType> iterators = parallel(rank - 1);
  iterators.push_back(utils::IteratorType::reduction);
  return linalg::GenericOp::create(
             b, loc, rowType, inputs, zeros(b, loc, rowType), all, iterators,
             [&](OpBuilder &nb, Location l, ValueRange a) {
               Value t = term(nb, l, a.drop_back());
               linalg::YieldOp::create(
                   nb, l,
                   arith::AddFOp::create(nb, l, a.back(), t).getResult());
             })
      .getResult(0);
}

struct LowerLayerNormGrad : OpRewritePattern<LayerNormGradOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(LayerNormGradOp op,
                                PatternRewriter &b) const override {
    Location loc = op.getLoc();
    MLIRContext *ctx = op.getContext();
    auto type = tensorType(op.getInputGrad());
    Type et = type.getElementType();
    Value x = collapseTo2d(b, loc, op.getInput());
    Value dy = collapseTo2d(b, loc, op.getGrad());
    int64_t rows = tensorType(x).getDimSize(0), d = type.getShape().back();
    auto rowType = RankedTensorType::get({rows}, et);
    auto fullType = RankedTensorType::get({rows, d}, et);
    AffineMap full = b.getMultiDimIdentityMap(2);
    AffineMap row = AffineMap::get(2, 0, {getAffineDimExpr(0, ctx)}, ctx);
    AffineMap column = AffineMap::get(2, 0, {getAffineDimExpr(1, ctx)}, ctx);
    Value count = floatConstant(b, loc, et, double(d));
    double eps = op.getEpsilon().convertToDouble();
    auto divide = [&](Value rowsum) {
      return elementwise(
          b, loc, rowType, {rowsum}, {b.getMultiDimIdentityMap(1)},
          [&](OpBuilder &nb, Location l, ValueRange a, ValueRange) {
            return arith::DivFOp::create(nb, l, a[0], count).getResult();
          });
    };
    // Statistics as the forward computes them.
    Value mean = divide(
        rowSums(b, loc, {x}, {full}, rowType,
                [](OpBuilder &, Location, ValueRange a) { return a[0]; }));
    Value var = divide(
        rowSums(b, loc, {x, mean}, {full, row}, rowType,
                [](OpBuilder &nb, Location l, ValueRange a) {
                  Value diff = arith::SubFOp::create(nb, l, a[0], a[1]);
                  return arith::MulFOp::create(nb, l, diff, diff).getResult();
                }));
    Value rstd = elementwise(
        b, loc, rowType, {var}, {b.getMultiDimIdentityMap(1)},
        [&](OpBuilder &nb, Location l, ValueRange a, ValueRange) {
          return arith::DivFOp::create(
                     nb, l, floatConstant(nb, l, et, 1.0),
                     math::SqrtOp::create(
                         nb, l,
                         arith::AddFOp::create(nb, l, a[0],
                                               floatConstant(nb, l, et, eps))))
              .getResult();
        });
    Value xhat = elementwise(
        b, loc, fullType, {x, mean, rstd}, {full, row, row},
        [](OpBuilder &nb, Location l, ValueRange a, ValueRange) {
          return arith::MulFOp::create(
                     nb, l, arith::SubFOp::create(nb, l, a[0], a[1]), a[2])
              .getResult();
        });
    Value gw = elementwise(
        b, loc, fullType, {dy, op.getWeight()}, {full, column},
        [](OpBuilder &nb, Location l, ValueRange a, ValueRange) {
          return arith::MulFOp::create(nb, l, a[0], a[1]).getResult();
        });
    Value meanG = divide(
        rowSums(b, loc, {gw}, {full}, rowType,
                [](OpBuilder &, Location, ValueRange a) { return a[0]; }));
    Value meanGX = divide(
        rowSums(b, loc, {gw, xhat}, {full, full}, rowType,
                [](OpBuilder &nb, Location l, ValueRange a) {
                  return arith::MulFOp::create(nb, l, a[0], a[1]).getResult();
                }));
    Value dx =
        elementwise(b, loc, fullType, {gw, meanG, xhat, meanGX, rstd},
                    {full, row, full, row, row},
                    [](OpBuilder &nb, Location l, ValueRange a, ValueRange) {
                      Value t = arith::SubFOp::create(
                          nb, l, arith::SubFOp::create(nb, l, a[0], a[1]),
                          arith::MulFOp::create(nb, l, a[2], a[3]));
                      return arith::MulFOp::create(nb, l, a[4], t).getResult();
                    });
    // Column sums over rows, in row order.
    auto columnType = RankedTensorType::get({d}, et);
    auto columnSum = [&](ValueRange inputs,
                         function_ref<Value(OpBuilder &, Location, ValueRange)>
                             term) {
      SmallVector<AffineMap> maps(inputs.size(), full);
      maps.push_back(column);
      return linalg::GenericOp::create(
                 b, loc, columnType, inputs, zeros(b, loc, columnType), maps,
                 {utils::IteratorType::reduction,
                  utils::IteratorType::parallel},
                 [&](OpBuilder &nb, Location l, ValueRange a) {
                   Value t = term(nb, l, a.drop_back());
                   linalg::YieldOp::create(
                       nb, l,
                       arith::AddFOp::create(nb, l, a.back(), t).getResult());
                 })
          .getResult(0);
    };
    Value dw =
        columnSum({dy, xhat}, [](OpBuilder &nb, Location l, ValueRange a) {
          return arith::MulFOp::create(nb, l, a[0], a[1]).getResult();
        });
    Value db = columnSum(
        {dy}, [](OpBuilder &, Location, ValueRange a) { return a[0]; });
    b.replaceOp(op, {expandFrom2d(b, loc, dx, type), dw, db});
    return success();
  }
};

/// The first counted row of sample b: max(prefix[b], 1), as an index.
Value firstTarget(OpBuilder &b, Location loc, Value prefixElement) {
  Value k = arith::IndexCastOp::create(b, loc, b.getIndexType(), prefixElement);
  return arith::MaxSIOp::create(b, loc, k,
                                arith::ConstantIndexOp::create(b, loc, 1));
}

/// Per-(b, n) normalisation statistics of the target patches: mean and
/// 1 / sqrt(var + eps) with Bessel's correction, as [B, N] tensors.
std::pair<Value, Value> targetStatistics(OpBuilder &b, Location loc,
                                         Value target, double eps) {
  auto type = tensorType(target);
  Type et = type.getElementType();
  int64_t p = type.getDimSize(2);
  auto statType =
      RankedTensorType::get({type.getDimSize(0), type.getDimSize(1)}, et);
  AffineMap full = b.getMultiDimIdentityMap(3);
  MLIRContext *ctx = b.getContext();
  AffineMap patch = AffineMap::get(
      3, 0, {getAffineDimExpr(0, ctx), getAffineDimExpr(1, ctx)}, ctx);
  AffineMap id2 = b.getMultiDimIdentityMap(2);
  Value sum = rowSums(b, loc, {target}, {full}, statType,
                      [](OpBuilder &, Location, ValueRange a) { return a[0]; });
  Value mean =
      elementwise(b, loc, statType, {sum}, {id2},
                  [&](OpBuilder &nb, Location l, ValueRange a, ValueRange) {
                    return arith::DivFOp::create(
                               nb, l, a[0], floatConstant(nb, l, et, double(p)))
                        .getResult();
                  });
  Value squares =
      rowSums(b, loc, {target, mean}, {full, patch}, statType,
              [](OpBuilder &nb, Location l, ValueRange a) {
                Value diff = arith::SubFOp::create(nb, l, a[0], a[1]);
                return arith::MulFOp::create(nb, l, diff, diff).getResult();
              });
  Value inv = elementwise(
      b, loc, statType, {squares}, {id2},
      [&](OpBuilder &nb, Location l, ValueRange a, ValueRange) {
        Value var = arith::DivFOp::create(
            nb, l, a[0], floatConstant(nb, l, et, double(p - 1)));
        return arith::DivFOp::create(
                   nb, l, floatConstant(nb, l, et, 1.0),
                   math::SqrtOp::create(
                       nb, l,
                       arith::AddFOp::create(nb, l, var,
                                             floatConstant(nb, l, et, eps))))
            .getResult();
      });
  return {mean, inv};
}

/// The number of counted (b, n) pairs, sum_b (N - max(K_b, 1)), as a 0-d
/// i64 tensor.
Value countPairs(OpBuilder &b, Location loc, Value prefix, int64_t tokens) {
  // A reduction on tensors, not a scalar loop: the GPU backend runs it as a
  // kernel instead of reading the prefix lengths on the host.
  MLIRContext *ctx = b.getContext();
  auto scalar = RankedTensorType::get({}, b.getI64Type());
  Value init = linalg::FillOp::create(
                   b, loc,
                   ValueRange{arith::ConstantIntOp::create(b, loc,
                                                           b.getI64Type(), 0)},
                   ValueRange{tensor::EmptyOp::create(b, loc, ArrayRef<int64_t>{},
                                                      b.getI64Type())})
                   .getResult(0);
  return linalg::GenericOp::create(
             b, loc, scalar, ValueRange{prefix}, ValueRange{init},
             ArrayRef<AffineMap>{b.getMultiDimIdentityMap(1),
                                 AffineMap::get(1, 0, {}, ctx)},
             {utils::IteratorType::reduction},
             [&](OpBuilder &nb, Location l, ValueRange a) {
               Value count = arith::SubIOp::create(
                   nb, l, arith::ConstantIndexOp::create(nb, l, tokens),
                   firstTarget(nb, l, a[0]));
               Value count64 = arith::IndexCastOp::create(
                   nb, l, nb.getI64Type(), count);
               linalg::YieldOp::create(
                   nb, l, arith::AddIOp::create(nb, l, a[1], count64)
                              .getResult());
             })
      .getResult(0);
}

struct LowerTargetCount : OpRewritePattern<TargetCountOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(TargetCountOp op,
                                PatternRewriter &b) const override {
    Location loc = op.getLoc();
    auto type = tensorType(op.getResult());
    Value count = countPairs(b, loc, op.getPrefix(), op.getPatches());
    b.replaceOp(op, elementwise(b, loc, type, {count}, {scalarMap(b, 0)},
                                [&](OpBuilder &nb, Location l, ValueRange a,
                                    ValueRange) {
                                  return arith::SIToFPOp::create(
                                             nb, l, type.getElementType(), a[0])
                                      .getResult();
                                }));
    return success();
  }
};

struct LowerLoss : OpRewritePattern<NormalizedPixelLossOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(NormalizedPixelLossOp op,
                                PatternRewriter &b) const override {
    Location loc = op.getLoc();
    MLIRContext *ctx = op.getContext();
    auto type = tensorType(op.getPrediction());
    Type et = type.getElementType();
    int64_t batch = type.getDimSize(0), n = type.getDimSize(1),
            p = type.getDimSize(2);
    auto [mean, inv] = targetStatistics(b, loc, op.getTarget(),
                                        op.getEpsilon().convertToDouble());
    Value prediction = op.getPrediction(), target = op.getTarget(),
          prefix = op.getPrefix();
    // Squared error of each target patch against the prediction before it;
    // zero for patches the loss does not count.
    auto pairType = RankedTensorType::get({batch, n}, et);
    AffineMap id2 = b.getMultiDimIdentityMap(2);
    AffineMap sample = AffineMap::get(2, 0, {getAffineDimExpr(0, ctx)}, ctx);
    Value perPair = elementwise(
        b, loc, pairType, {mean, inv, prefix}, {id2, id2, sample},
        [&](OpBuilder &nb, Location l, ValueRange a, ValueRange idx) {
          Value s = idx[0], t = idx[1];
          Value c0 = arith::ConstantIndexOp::create(nb, l, 0);
          Value c1 = arith::ConstantIndexOp::create(nb, l, 1);
          Value counted = arith::CmpIOp::create(
              nb, l, arith::CmpIPredicate::uge, t, firstTarget(nb, l, a[2]));
          Value previous = arith::MaxSIOp::create(
              nb, l, arith::SubIOp::create(nb, l, t, c1), c0);
          auto loop = scf::ForOp::create(
              nb, l, c0, arith::ConstantIndexOp::create(nb, l, p), c1,
              ValueRange{floatConstant(nb, l, et, 0.0)},
              [&](OpBuilder &lb, Location ll, Value j, ValueRange acc) {
                Value pv = tensor::ExtractOp::create(
                    lb, ll, prediction, ValueRange{s, previous, j});
                Value tv = tensor::ExtractOp::create(lb, ll, target,
                                                     ValueRange{s, t, j});
                Value normalized = arith::MulFOp::create(
                    lb, ll, arith::SubFOp::create(lb, ll, tv, a[0]), a[1]);
                Value diff = arith::SubFOp::create(lb, ll, pv, normalized);
                scf::YieldOp::create(
                    lb, ll,
                    ValueRange{arith::AddFOp::create(
                        lb, ll, acc[0],
                        arith::MulFOp::create(lb, ll, diff, diff))});
              });
          Value meanSquare = arith::DivFOp::create(
              nb, l, loop.getResult(0), floatConstant(nb, l, et, double(p)));
          return arith::SelectOp::create(nb, l, counted, meanSquare,
                                         floatConstant(nb, l, et, 0.0))
              .getResult();
        });
    // Total in (b, n) order, over the number of counted pairs.
    auto scalar = RankedTensorType::get({}, et);
    Value total =
        linalg::GenericOp::create(
            b, loc, scalar, ValueRange{perPair}, zeros(b, loc, scalar),
            ArrayRef<AffineMap>{id2, AffineMap::get(2, 0, {}, ctx)},
            {utils::IteratorType::reduction, utils::IteratorType::reduction},
            [](OpBuilder &nb, Location l, ValueRange a) {
              linalg::YieldOp::create(
                  nb, l, arith::AddFOp::create(nb, l, a[1], a[0]).getResult());
            })
            .getResult(0);
    Value pairs = countPairs(b, loc, prefix, n);
    Value loss = elementwise(
        b, loc, scalar, {total}, {AffineMap::get(0, 0, {}, ctx)},
        [&](OpBuilder &nb, Location l, ValueRange a, ValueRange) {
          Value count = arith::SIToFPOp::create(
              nb, l, et, tensor::ExtractOp::create(nb, l, pairs, ValueRange{}));
          return arith::DivFOp::create(nb, l, a[0], count).getResult();
        });
    b.replaceOp(op, loss);
    return success();
  }
};

struct LowerLossGrad : OpRewritePattern<NormalizedPixelLossGradOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(NormalizedPixelLossGradOp op,
                                PatternRewriter &b) const override {
    Location loc = op.getLoc();
    MLIRContext *ctx = op.getContext();
    auto type = tensorType(op.getResult());
    Type et = type.getElementType();
    int64_t n = type.getDimSize(1), p = type.getDimSize(2);
    auto [mean, inv] = targetStatistics(b, loc, op.getTarget(),
                                        op.getEpsilon().convertToDouble());
    Value pairs = countPairs(b, loc, op.getPrefix(), n);
    Value target = op.getTarget();
    AffineMap full = b.getMultiDimIdentityMap(3);
    AffineMap sample = AffineMap::get(3, 0, {getAffineDimExpr(0, ctx)}, ctx);
    // Output row m predicts patch m + 1; counted iff max(K, 1) <= m + 1 <= N
    // - 1.
    Value d = elementwise(
        b, loc, type, {op.getPrediction(), op.getPrefix(), op.getGrad()},
        {full, sample, AffineMap::get(3, 0, {}, ctx)},
        [&](OpBuilder &nb, Location l, ValueRange a, ValueRange idx) {
          Value s = idx[0], m = idx[1], j = idx[2];
          Value c1 = arith::ConstantIndexOp::create(nb, l, 1);
          Value next = arith::MinSIOp::create(
              nb, l, arith::AddIOp::create(nb, l, m, c1),
              arith::ConstantIndexOp::create(nb, l, n - 1));
          Value counted = arith::AndIOp::create(
              nb, l,
              arith::CmpIOp::create(
                  nb, l, arith::CmpIPredicate::ule,
                  arith::AddIOp::create(nb, l, m, c1),
                  arith::ConstantIndexOp::create(nb, l, n - 1)),
              arith::CmpIOp::create(nb, l, arith::CmpIPredicate::uge,
                                    arith::AddIOp::create(nb, l, m, c1),
                                    firstTarget(nb, l, a[1])));
          Value tv =
              tensor::ExtractOp::create(nb, l, target, ValueRange{s, next, j});
          Value mu =
              tensor::ExtractOp::create(nb, l, mean, ValueRange{s, next});
          Value iv = tensor::ExtractOp::create(nb, l, inv, ValueRange{s, next});
          // factor = grad * 2 / (P * pairs), P * pairs as an integer.
          Value denominator = arith::SIToFPOp::create(
              nb, l, et,
              arith::MulIOp::create(
                  nb, l, tensor::ExtractOp::create(nb, l, pairs, ValueRange{}),
                  arith::ConstantIntOp::create(nb, l, nb.getI64Type(), p)));
          Value factor = arith::DivFOp::create(
              nb, l,
              arith::MulFOp::create(nb, l, a[2], floatConstant(nb, l, et, 2.0)),
              denominator);
          Value normalized = arith::MulFOp::create(
              nb, l, arith::SubFOp::create(nb, l, tv, mu), iv);
          Value v = arith::MulFOp::create(
              nb, l, factor, arith::SubFOp::create(nb, l, a[0], normalized));
          return arith::SelectOp::create(nb, l, counted, v,
                                         floatConstant(nb, l, et, 0.0))
              .getResult();
        });
    b.replaceOp(op, d);
    return success();
  }
};

/// Which (b, m) the live row r of a batch is: walks the samples, as
/// liveRows() does. Returns (b, m, found) as index, index, i1.
std::tuple<Value, Value, Value>
liveRowAt(OpBuilder &b, Location loc, Value prefix, int64_t tokens, Value row) {
  int64_t batch = tensorType(prefix).getDimSize(0);
  auto index = [&](int64_t v) {
    return arith::ConstantIndexOp::create(b, loc, v).getResult();
  };
  Value no = arith::ConstantIntOp::create(b, loc, b.getI1Type(), 0);
  auto loop = scf::ForOp::create(
      b, loc, index(0), index(batch), index(1),
      ValueRange{index(0), index(0), index(0), no},
      [&](OpBuilder &nb, Location l, Value s, ValueRange acc) {
        Value first = arith::SubIOp::create(
            nb, l,
            firstTarget(
                nb, l, tensor::ExtractOp::create(nb, l, prefix, ValueRange{s})),
            arith::ConstantIndexOp::create(nb, l, 1));
        Value count = arith::SubIOp::create(
            nb, l, arith::ConstantIndexOp::create(nb, l, tokens - 1), first);
        Value end = arith::AddIOp::create(nb, l, acc[0], count);
        Value inside = arith::AndIOp::create(
            nb, l,
            arith::XOrIOp::create(
                nb, l, acc[3],
                arith::ConstantIntOp::create(nb, l, nb.getI1Type(), 1)),
            arith::CmpIOp::create(nb, l, arith::CmpIPredicate::ult, row, end));
        Value m = arith::AddIOp::create(
            nb, l, first, arith::SubIOp::create(nb, l, row, acc[0]));
        scf::YieldOp::create(
            nb, l,
            ValueRange{end, arith::SelectOp::create(nb, l, inside, s, acc[1]),
                       arith::SelectOp::create(nb, l, inside, m, acc[2]),
                       arith::OrIOp::create(nb, l, acc[3], inside)});
      });
  return {loop.getResult(1), loop.getResult(2), loop.getResult(3)};
}

struct LowerGatherLiveRows : OpRewritePattern<GatherLiveRowsOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(GatherLiveRowsOp op,
                                PatternRewriter &b) const override {
    auto in = tensorType(op.getInput());
    bool shared = in.getRank() == 2;
    int64_t tokens = in.getDimSize(shared ? 0 : 1);
    Value input = op.getInput(), prefix = op.getPrefix();
    Type et = in.getElementType();
    b.replaceOp(
        op, elementwise(
                b, op.getLoc(), tensorType(op.getResult()), {}, {},
                [&](OpBuilder &nb, Location l, ValueRange, ValueRange idx) {
                  auto [s, m, found] = liveRowAt(nb, l, prefix, tokens, idx[0]);
                  // Padding rows read row 0 and are replaced by zero.
                  Value zero = arith::ConstantIndexOp::create(nb, l, 0);
                  Value ms = arith::SelectOp::create(nb, l, found, m, zero);
                  Value ss = arith::SelectOp::create(nb, l, found, s, zero);
                  Value v =
                      shared ? tensor::ExtractOp::create(nb, l, input,
                                                         ValueRange{ms, idx[1]})
                                   .getResult()
                             : tensor::ExtractOp::create(
                                   nb, l, input, ValueRange{ss, ms, idx[1]})
                                   .getResult();
                  return arith::SelectOp::create(nb, l, found, v,
                                                 floatConstant(nb, l, et, 0.0))
                      .getResult();
                }));
    return success();
  }
};

struct LowerScatterLiveRows : OpRewritePattern<ScatterLiveRowsOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(ScatterLiveRowsOp op,
                                PatternRewriter &b) const override {
    auto type = tensorType(op.getResult());
    int64_t tokens = type.getDimSize(1),
            capacity = tensorType(op.getInput()).getDimSize(0);
    Value input = op.getInput(), prefix = op.getPrefix();
    Type et = type.getElementType();
    b.replaceOp(
        op,
        elementwise(
            b, op.getLoc(), type, {}, {},
            [&](OpBuilder &nb, Location l, ValueRange, ValueRange idx) {
              auto index = [&](int64_t v) {
                return arith::ConstantIndexOp::create(nb, l, v).getResult();
              };
              Value s = idx[0], m = idx[1];
              // Rows before sample s: sum of its predecessors' counts.
              auto before = scf::ForOp::create(
                  nb, l, index(0), s, index(1), ValueRange{index(0)},
                  [&](OpBuilder &lb, Location ll, Value t, ValueRange acc) {
                    Value first =
                        firstTarget(lb, ll,
                                    tensor::ExtractOp::create(lb, ll, prefix,
                                                              ValueRange{t}));
                    Value count = arith::SubIOp::create(
                        lb, ll, arith::ConstantIndexOp::create(lb, ll, tokens),
                        first);
                    scf::YieldOp::create(lb, ll,
                                         ValueRange{arith::AddIOp::create(
                                             lb, ll, acc[0], count)});
                  });
              Value first = arith::SubIOp::create(
                  nb, l,
                  firstTarget(
                      nb, l,
                      tensor::ExtractOp::create(nb, l, prefix, ValueRange{s})),
                  index(1));
              Value row = arith::SubIOp::create(
                  nb, l, arith::AddIOp::create(nb, l, before.getResult(0), m),
                  first);
              Value live = arith::AndIOp::create(
                  nb, l,
                  arith::AndIOp::create(
                      nb, l,
                      arith::CmpIOp::create(nb, l, arith::CmpIPredicate::sge, m,
                                            first),
                      arith::CmpIOp::create(nb, l, arith::CmpIPredicate::sle, m,
                                            index(tokens - 2))),
                  arith::CmpIOp::create(nb, l, arith::CmpIPredicate::slt, row,
                                        index(capacity)));
              Value safeRow =
                  arith::SelectOp::create(nb, l, live, row, index(0));
              Value v = tensor::ExtractOp::create(nb, l, input,
                                                  ValueRange{safeRow, idx[2]});
              return arith::SelectOp::create(nb, l, live, v,
                                             floatConstant(nb, l, et, 0.0))
                  .getResult();
            }));
    return success();
  }
};

} // namespace

Value mlir::aim::keyIsVisible(OpBuilder &b, Location loc, MaskKind mask,
                              Value q, Value k,
                   Value prefix) {
  Value causal = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ule, k, q);
  switch (mask) {
  case MaskKind::bidirectional:
    return arith::ConstantIntOp::create(b, loc, b.getI1Type(), 1);
  case MaskKind::causal:
    return causal;
  case MaskKind::prefix_causal:
    return arith::OrIOp::create(
        b, loc, causal,
        arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ult, k, prefix));
  }
  return causal;
}

namespace {

/// C(o, i, m, n) += sum_k A(o, i, m, k) B(o, i, k, n) as a generic over
/// (o, i, m, n, k), marked as a batch of GEMMs (kBatchedGemmAttrName); each
/// map places the operand's dimensions among those five.
Value batchedGemm(OpBuilder &b, Location loc, Value a, AffineMap aMap, Value bm,
                  AffineMap bMap, Value init, AffineMap cMap) {
  SmallVector<utils::IteratorType> iterators = parallel(4);
  iterators.push_back(utils::IteratorType::reduction);
  Type sumType = cast<RankedTensorType>(init.getType()).getElementType();
  auto op = linalg::GenericOp::create(
      b, loc, init.getType(), ValueRange{a, bm}, init,
      ArrayRef<AffineMap>{aMap, bMap, cMap}, iterators,
      [&](OpBuilder &nb, Location l, ValueRange args) {
        auto widened = [&](Value x) { // bfloat16 pairs, float32 sums
          return x.getType() == sumType
                     ? x
                     : arith::ExtFOp::create(nb, l, sumType, x).getResult();
        };
        Value p = arith::MulFOp::create(nb, l, widened(args[0]),
                                        widened(args[1]));
        linalg::YieldOp::create(
            nb, l, arith::AddFOp::create(nb, l, args[2], p).getResult());
      });
  op->setAttr(kBatchedGemmAttrName, b.getUnitAttr());
  return op.getResult(0);
}

/// scale * <q, k> for every (b, head, q, k): [B, heads, N, N]. A temporary of
/// this lowering (the host path is dense for now; the IR never holds one).
Value attentionScores(OpBuilder &b, Location loc, Value query, Value key,
                      int64_t heads, double scale, bool blas) {
  MLIRContext *ctx = b.getContext();
  auto q = tensorType(query);
  int64_t batch = q.getDimSize(0), n = q.getDimSize(1),
          dh = q.getDimSize(2) / heads;
  Type et = q.getElementType();
  auto type = RankedTensorType::get({batch, heads, n, n}, et);
  // Views [B, N, heads, dh]: query[b, q, h, i], key[b, k, h, i].
  auto split = [&](Value v) {
    auto t = RankedTensorType::get({batch, n, heads, dh}, et);
    return tensor::ExpandShapeOp::create(
        b, loc, t, v, ArrayRef<ReassociationIndices>{{0}, {1}, {2, 3}});
  };
  auto d = [&](unsigned i) { return getAffineDimExpr(i, ctx); };
  auto scaled = [&](Value dots) {
    return elementwise(
        b, loc, type, {dots}, {b.getMultiDimIdentityMap(4)},
        [&](OpBuilder &nb, Location l, ValueRange a, ValueRange) {
          return arith::MulFOp::create(nb, l, a[0],
                                       floatConstant(nb, l, et, scale))
              .getResult();
        });
  };
  if (blas) // per (b, h): Q_bh [N, dh] times K_bh [N, dh] transposed
    return scaled(batchedGemm(
        b, loc, split(query),
        AffineMap::get(5, 0, {d(0), d(2), d(1), d(4)}, ctx), split(key),
        AffineMap::get(5, 0, {d(0), d(3), d(1), d(4)}, ctx),
        zeros(b, loc, type),
        AffineMap::get(5, 0, {d(0), d(1), d(2), d(3)}, ctx)));
  // The keys as [B, heads, dh, N], so that the loop nest (b, h, q, i, k) has
  // the contiguous k innermost and vectorises; each dot product still sums
  // over i in ascending order.
  auto keysByColumnType = RankedTensorType::get({batch, heads, dh, n}, et);
  Value keysByColumn = linalg::GenericOp::create(
                           b, loc, keysByColumnType, ValueRange{split(key)},
                           tensor::EmptyOp::create(b, loc,
                                                   keysByColumnType.getShape(),
                                                   et)
                               .getResult(),
                           ArrayRef<AffineMap>{
                               AffineMap::get(4, 0, {d(0), d(3), d(1), d(2)}, ctx),
                               b.getMultiDimIdentityMap(4)},
                           parallel(4),
                           [](OpBuilder &nb, Location l, ValueRange a) {
                             linalg::YieldOp::create(nb, l, a[0]);
                           })
                           .getResult(0);
  AffineMap qMap = AffineMap::get(5, 0, {d(0), d(2), d(1), d(3)}, ctx);
  AffineMap kMap = AffineMap::get(5, 0, {d(0), d(1), d(3), d(4)}, ctx);
  AffineMap out = AffineMap::get(5, 0, {d(0), d(1), d(2), d(4)}, ctx);
  SmallVector<utils::IteratorType> iterators = parallel(3);
  iterators.push_back(utils::IteratorType::reduction);
  iterators.push_back(utils::IteratorType::parallel);
  Value dots =
      linalg::GenericOp::create(
          b, loc, type, ValueRange{split(query), keysByColumn},
          zeros(b, loc, type), ArrayRef<AffineMap>{qMap, kMap, out}, iterators,
          [](OpBuilder &nb, Location l, ValueRange a) {
            Value p = arith::MulFOp::create(nb, l, a[0], a[1]);
            linalg::YieldOp::create(
                nb, l, arith::AddFOp::create(nb, l, a[2], p).getResult());
          })
          .getResult(0);
  return scaled(dots);
}

/// result[b, x, c] = sum_y pairs[b, c / dh, (x, y) or, transposed, (y, x)]
/// rows[b, y, c] for pairs [B, heads, N, N] and rows [B, N, heads * dh]: the
/// products of attention and its gradient. The loop nest is (b, x, y, c):
/// the contiguous c innermost (vectorised), each sum over y in ascending
/// order, as the interpreter adds.
Value headProduct(OpBuilder &b, Location loc, Value pairs, bool transposePairs,
                  Value rows, int64_t dh, bool blas) {
  MLIRContext *ctx = b.getContext();
  auto d = [&](unsigned i) { return getAffineDimExpr(i, ctx); };
  if (blas) {
    // Per (b, h): P_bh [N, N] (or its transpose) times rows_bh [N, dh],
    // over (b, h, x, j, y) on views [B, N, heads, dh].
    auto rowType = tensorType(rows);
    int64_t batch = rowType.getDimSize(0), n = rowType.getDimSize(1),
            heads = rowType.getDimSize(2) / dh;
    auto viewType =
        RankedTensorType::get({batch, n, heads, dh}, rowType.getElementType());
    SmallVector<ReassociationIndices> split = {{0}, {1}, {2, 3}};
    Value view = tensor::ExpandShapeOp::create(b, loc, viewType, rows, split);
    AffineMap pairMap =
        transposePairs ? AffineMap::get(5, 0, {d(0), d(1), d(4), d(2)}, ctx)
                       : AffineMap::get(5, 0, {d(0), d(1), d(2), d(4)}, ctx);
    Value product =
        batchedGemm(b, loc, pairs, pairMap, view,
                    AffineMap::get(5, 0, {d(0), d(4), d(1), d(3)}, ctx),
                    zeros(b, loc, viewType),
                    AffineMap::get(5, 0, {d(0), d(2), d(1), d(3)}, ctx));
    return tensor::CollapseShapeOp::create(b, loc, rowType, product, split);
  }
  AffineExpr head = d(3).floorDiv(dh);
  AffineMap pairMap =
      transposePairs ? AffineMap::get(4, 0, {d(0), head, d(2), d(1)}, ctx)
                     : AffineMap::get(4, 0, {d(0), head, d(1), d(2)}, ctx);
  AffineMap rowMap = AffineMap::get(4, 0, {d(0), d(2), d(3)}, ctx);
  AffineMap outMap = AffineMap::get(4, 0, {d(0), d(1), d(3)}, ctx);
  auto outType = tensorType(rows);
  return linalg::GenericOp::create(
             b, loc, outType, ValueRange{pairs, rows}, zeros(b, loc, outType),
             ArrayRef<AffineMap>{pairMap, rowMap, outMap},
             {utils::IteratorType::parallel, utils::IteratorType::parallel,
              utils::IteratorType::reduction, utils::IteratorType::parallel},
             [](OpBuilder &nb, Location l, ValueRange a) {
               Value p = arith::MulFOp::create(nb, l, a[0], a[1]);
               linalg::YieldOp::create(
                   nb, l, arith::AddFOp::create(nb, l, a[2], p).getResult());
             })
      .getResult(0);
}

/// The prefix length of sample b (dimension 0 of the iteration) as an index,
/// or 0 without prefix.
Value prefixOfSample(OpBuilder &b, Location loc, Value prefix, Value sample) {
  if (!prefix)
    return arith::ConstantIndexOp::create(b, loc, 0);
  return arith::IndexCastOp::create(
      b, loc, b.getIndexType(),
      tensor::ExtractOp::create(b, loc, prefix, ValueRange{sample}));
}

/// The attention lowerings' options: with `blas`, the products as batches
/// of GEMMs, whose [B, heads, N, N] operands (probabilities, score
/// gradients) are rounded as `pairOperands` says before fusion, so that the
/// kernel computing them writes the rounded copy (one pass over N x N
/// elements instead of a float32 tensor plus a rounding copy per product).
struct AttentionLoweringOptions {
  bool blas = false; // the products as batches of GEMMs
  GemmOperands pairOperands = GemmOperands::F32;
  Value gemmOperand(OpBuilder &b, Location loc, Value pairs) const {
    return blas && pairOperands != GemmOperands::F32
               ? roundedGemmOperand(b, loc, pairs, pairOperands)
               : pairs;
  }
};

struct LowerAttention : OpRewritePattern<AttentionOp> {
  LowerAttention(MLIRContext *ctx, AttentionLoweringOptions options)
      : OpRewritePattern(ctx), options(options) {}
  AttentionLoweringOptions options;
  LogicalResult matchAndRewrite(AttentionOp op,
                                PatternRewriter &b) const override {
    Location loc = op.getLoc();
    MLIRContext *ctx = op.getContext();
    if (op.getLiveQueries())
      return rewriteLive(op, b);
    auto q = tensorType(op.getQuery());
    Type et = q.getElementType();
    int64_t heads = op.getHeads(), batch = q.getDimSize(0), n = q.getDimSize(1),
            dh = q.getDimSize(2) / heads;
    double scale = op.getScale().convertToDouble();
    MaskKind mask = op.getMask();
    Value prefix = op.getPrefix();
    Value scores =
        attentionScores(b, loc, op.getQuery(), op.getKey(), heads, scale,
                        options.blas);
    auto rowType = RankedTensorType::get({batch, heads, n}, et);
    auto d = [&](unsigned i) { return getAffineDimExpr(i, ctx); };
    AffineMap all4 = b.getMultiDimIdentityMap(4);
    AffineMap row4 = AffineMap::get(4, 0, {d(0), d(1), d(2)}, ctx);
    SmallVector<utils::IteratorType> overKeys = parallel(3);
    overKeys.push_back(utils::IteratorType::reduction);
    // Row maximum and denominator over the visible keys, in key order.
    Value lowest = tensor::EmptyOp::create(b, loc, rowType.getShape(), et);
    lowest = linalg::FillOp::create(
                 b, loc, floatConstant(b, loc, et, -INFINITY), lowest)
                 .getResult(0);
    auto masked = [&](OpBuilder &nb, Location l) {
      Value s = linalg::IndexOp::create(nb, l, 0);
      Value qi = linalg::IndexOp::create(nb, l, 2);
      Value ki = linalg::IndexOp::create(nb, l, 3);
      return keyIsVisible(nb, l, mask, qi, ki, prefixOfSample(nb, l, prefix, s));
    };
    Value rowMax =
        linalg::GenericOp::create(
            b, loc, rowType, ValueRange{scores}, lowest,
            ArrayRef<AffineMap>{all4, row4}, overKeys,
            [&](OpBuilder &nb, Location l, ValueRange a) {
              Value m = arith::MaximumFOp::create(nb, l, a[1], a[0]);
              linalg::YieldOp::create(
                  nb, l,
                  arith::SelectOp::create(nb, l, masked(nb, l), m, a[1])
                      .getResult());
            })
            .getResult(0);
    Value denominator =
        linalg::GenericOp::create(
            b, loc, rowType, ValueRange{scores, rowMax}, zeros(b, loc, rowType),
            ArrayRef<AffineMap>{all4, row4, row4}, overKeys,
            [&](OpBuilder &nb, Location l, ValueRange a) {
              Value e = math::ExpOp::create(
                  nb, l, arith::SubFOp::create(nb, l, a[0], a[1]));
              Value sum = arith::AddFOp::create(nb, l, a[2], e);
              linalg::YieldOp::create(
                  nb, l,
                  arith::SelectOp::create(nb, l, masked(nb, l), sum, a[2])
                      .getResult());
            })
            .getResult(0);
    // p = exp(s - max) / denominator on visible pairs (0 elsewhere), once
    // per pair; out[b, q, c] = sum_k p[b, c / dh, q, k] v[b, k, c].
    Value probabilities = elementwise(
        b, loc, tensorType(scores), {scores, rowMax, denominator},
        {all4, row4, row4},
        [&](OpBuilder &nb, Location l, ValueRange a, ValueRange) {
          Value e = math::ExpOp::create(
              nb, l, arith::SubFOp::create(nb, l, a[0], a[1]));
          Value p = arith::DivFOp::create(nb, l, e, a[2]);
          return arith::SelectOp::create(nb, l, masked(nb, l), p,
                                         floatConstant(nb, l, et, 0.0))
              .getResult();
        });
    Value output =
        headProduct(b, loc, options.gemmOperand(b, loc, probabilities),
                    /*transposePairs=*/false, op.getValue(), dh, options.blas);
    Value lse = elementwise(
        b, loc, tensorType(op.getRowLogsumexp()), {rowMax, denominator},
        {b.getMultiDimIdentityMap(3), b.getMultiDimIdentityMap(3)},
        [](OpBuilder &nb, Location l, ValueRange a, ValueRange) {
          return arith::AddFOp::create(nb, l, a[0],
                                       math::LogOp::create(nb, l, a[1]))
              .getResult();
        });
    b.replaceOp(op, {output, lse});
    return success();
  }

  /// Live queries: scatter them to their positions, attend densely, gather
  /// the live rows back (dead rows hold zero queries and are dropped).
  LogicalResult rewriteLive(AttentionOp op, PatternRewriter &b) const {
    Location loc = op.getLoc();
    auto keyType = tensorType(op.getKey());
    int64_t heads = op.getHeads();
    Value queries = ScatterLiveRowsOp::create(b, loc, keyType, op.getQuery(),
                                              op.getPrefix());
    auto statsType = RankedTensorType::get(
        {keyType.getDimSize(0), heads, keyType.getDimSize(1)}, b.getF32Type());
    auto full = AttentionOp::create(
        b, loc, TypeRange{keyType, statsType}, queries, op.getKey(),
        op.getValue(), op.getPrefix(), op.getHeadsAttr(), op.getMaskAttr(),
        op.getScaleAttr(), op.getTileEmptyFromAttr(),
        op.getTileFullUntilAttr(), nullptr);
    Value out = GatherLiveRowsOp::create(b, loc, op.getResult().getType(),
                                         full.getResult(), op.getPrefix());
    // [B, heads, N] -> [B, N, heads] -> live rows [R, heads].
    MLIRContext *ctx = op.getContext();
    auto transposedType = RankedTensorType::get(
        {keyType.getDimSize(0), keyType.getDimSize(1), heads}, b.getF32Type());
    auto d = [&](unsigned i) { return getAffineDimExpr(i, ctx); };
    Value transposed = elementwise(
        b, loc, transposedType, {full.getRowLogsumexp()},
        {AffineMap::get(3, 0, {d(0), d(2), d(1)}, ctx)},
        [](OpBuilder &, Location, ValueRange a, ValueRange) { return a[0]; });
    Value lse = GatherLiveRowsOp::create(b, loc, op.getRowLogsumexp().getType(),
                                         transposed, op.getPrefix());
    b.replaceOp(op, {out, lse});
    return success();
  }
};

struct LowerAttentionGrad : OpRewritePattern<AttentionGradOp> {
  LowerAttentionGrad(MLIRContext *ctx, AttentionLoweringOptions options)
      : OpRewritePattern(ctx), options(options) {}
  AttentionLoweringOptions options;
  LogicalResult matchAndRewrite(AttentionGradOp op,
                                PatternRewriter &b) const override {
    if (op.getLiveQueries())
      return rewriteLive(op, b);
    Location loc = op.getLoc();
    MLIRContext *ctx = op.getContext();
    auto q = tensorType(op.getQuery());
    Type et = q.getElementType();
    int64_t heads = op.getHeads(), batch = q.getDimSize(0), n = q.getDimSize(1),
            dh = q.getDimSize(2) / heads;
    double scale = op.getScale().convertToDouble();
    MaskKind mask = op.getMask();
    Value prefix = op.getPrefix();
    auto d = [&](unsigned i) { return getAffineDimExpr(i, ctx); };
    auto pairType = RankedTensorType::get({batch, heads, n, n}, et);
    auto rowType = RankedTensorType::get({batch, heads, n}, et);
    AffineMap all4 = b.getMultiDimIdentityMap(4);
    AffineMap row4 = AffineMap::get(4, 0, {d(0), d(1), d(2)}, ctx);
    auto visibleHere = [&](OpBuilder &nb, Location l) {
      Value s = linalg::IndexOp::create(nb, l, 0);
      return keyIsVisible(nb, l, mask, linalg::IndexOp::create(nb, l, 2),
                     linalg::IndexOp::create(nb, l, 3),
                     prefixOfSample(nb, l, prefix, s));
    };
    // p = exp(scale <q, k> - lse) on visible pairs, 0 elsewhere.
    Value scores =
        attentionScores(b, loc, op.getQuery(), op.getKey(), heads, scale,
                        options.blas);
    Value probabilities = elementwise(
        b, loc, pairType, {scores, op.getRowLogsumexp()}, {all4, row4},
        [&](OpBuilder &nb, Location l, ValueRange a, ValueRange) {
          Value p = math::ExpOp::create(
              nb, l, arith::SubFOp::create(nb, l, a[0], a[1]));
          return arith::SelectOp::create(nb, l, visibleHere(nb, l), p,
                                         floatConstant(nb, l, et, 0.0))
              .getResult();
        });
    // dp = <dout_q, v_k> (scores of dout against v, unscaled) and
    // delta_q = <dout_q, out_q>.
    Value dp =
        attentionScores(b, loc, op.getGrad(), op.getValue(), heads, 1.0,
                        options.blas);
    auto split = [&](Value v) {
      auto t = RankedTensorType::get({batch, n, heads, dh}, et);
      return tensor::ExpandShapeOp::create(
          b, loc, t, v, ArrayRef<ReassociationIndices>{{0}, {1}, {2, 3}});
    };
    Value delta =
        linalg::GenericOp::create(
            b, loc, rowType,
            ValueRange{split(op.getGrad()), split(op.getOutput())},
            zeros(b, loc, rowType),
            ArrayRef<AffineMap>{
                AffineMap::get(4, 0, {d(0), d(2), d(1), d(3)}, ctx),
                AffineMap::get(4, 0, {d(0), d(2), d(1), d(3)}, ctx),
                AffineMap::get(4, 0, {d(0), d(1), d(2)}, ctx)},
            {utils::IteratorType::parallel, utils::IteratorType::parallel,
             utils::IteratorType::parallel, utils::IteratorType::reduction},
            [](OpBuilder &nb, Location l, ValueRange a) {
              Value p = arith::MulFOp::create(nb, l, a[0], a[1]);
              linalg::YieldOp::create(
                  nb, l, arith::AddFOp::create(nb, l, a[2], p).getResult());
            })
            .getResult(0);
    // ds = p (dp - delta) scale.
    Value ds = elementwise(
        b, loc, pairType, {probabilities, dp, delta}, {all4, all4, row4},
        [&](OpBuilder &nb, Location l, ValueRange a, ValueRange) {
          Value t = arith::MulFOp::create(
              nb, l, a[0], arith::SubFOp::create(nb, l, a[1], a[2]));
          return arith::MulFOp::create(nb, l, t,
                                       floatConstant(nb, l, et, scale))
              .getResult();
        });
    // The three products, each summed in the order the interpreter adds;
    // ds rounded once for its two.
    auto product = [&](Value pairs, bool transposePairs, Value rows) {
      return headProduct(b, loc, pairs, transposePairs, rows, dh,
                         options.blas);
    };
    Value dsOperand = options.gemmOperand(b, loc, ds);
    Value dq = product(dsOperand, false, op.getKey());  // sum_k ds[q, k] k_k
    Value dk = product(dsOperand, true, op.getQuery()); // sum_q ds[q, k] q_q
    Value dv = product(options.gemmOperand(b, loc, probabilities), true,
                       op.getGrad()); // sum_q p[q, k] dout_q
    b.replaceOp(op, {dq, dk, dv});
    return success();
  }

  /// Live queries: the rows at their positions (dead rows zero, which adds
  /// nothing to any gradient), the dense gradient, the live rows of dq back.
  LogicalResult rewriteLive(AttentionGradOp op, PatternRewriter &b) const {
    Location loc = op.getLoc();
    MLIRContext *ctx = op.getContext();
    auto keyType = tensorType(op.getKey());
    int64_t heads = op.getHeads(), batch = keyType.getDimSize(0),
            n = keyType.getDimSize(1);
    auto toFull = [&](Value rows) {
      return ScatterLiveRowsOp::create(b, loc, keyType, rows, op.getPrefix())
          .getResult();
    };
    // [R, heads] -> [B, N, heads] -> [B, heads, N].
    auto byToken = RankedTensorType::get({batch, n, heads}, b.getF32Type());
    Value stats = ScatterLiveRowsOp::create(
        b, loc, byToken, op.getRowLogsumexp(), op.getPrefix());
    auto d = [&](unsigned i) { return getAffineDimExpr(i, ctx); };
    Value lse = elementwise(
        b, loc, RankedTensorType::get({batch, heads, n}, b.getF32Type()),
        {stats}, {AffineMap::get(3, 0, {d(0), d(2), d(1)}, ctx)},
        [](OpBuilder &, Location, ValueRange a, ValueRange) { return a[0]; });
    auto full = AttentionGradOp::create(
        b, loc, TypeRange{keyType, keyType, keyType}, toFull(op.getGrad()),
        toFull(op.getQuery()), op.getKey(), op.getValue(),
        toFull(op.getOutput()), lse, op.getPrefix(), op.getHeadsAttr(),
        op.getMaskAttr(), op.getScaleAttr(), op.getTileEmptyFromAttr(),
        op.getTileFullUntilAttr(), nullptr);
    Value dq = GatherLiveRowsOp::create(b, loc, op.getQueryGrad().getType(),
                                        full.getQueryGrad(), op.getPrefix());
    b.replaceOp(op, {dq, full.getKeyGrad(), full.getValueGrad()});
    return success();
  }
};

} // namespace

LogicalResult mlir::aim::lowerAimToLinalg(ModuleOp module,
                                          const LinalgLoweringOptions &options) {
  const bool blas = options.blas;
  MLIRContext *ctx = module.getContext();
  ctx->loadDialect<arith::ArithDialect, linalg::LinalgDialect,
                   math::MathDialect, scf::SCFDialect, tensor::TensorDialect>();
  RewritePatternSet patterns(ctx);
  patterns.add<
      LowerAdd, LowerGelu, LowerCast, LowerSumLeading,
      LowerLayerNorm, LowerReshape, LowerSlice, LowerPad, LowerGeluGrad,
      LowerPosEmbed, LowerPatchify, LowerClipCoefficient, LowerGlobalNorm,
      LowerAdamW, LowerLayerNormGrad, LowerLoss, LowerLossGrad,
      LowerGatherLiveRows, LowerScatterLiveRows, LowerSumSquares, LowerSqrt,
      LowerReweight, LowerEnterPartial, LowerTargetCount, InlineFusion>(ctx);
  const bool epilogues = blas && options.gemmEpilogues;
  const GemmOperands operands =
      epilogues ? options.gemmOperands : GemmOperands::F32;
  patterns.add<LowerAttention, LowerAttentionGrad>(
      ctx, AttentionLoweringOptions{blas, operands});
  patterns.add<LowerLinear>(ctx, blas, epilogues, operands);
  patterns.add<LowerMatmul>(ctx, epilogues, operands);
  if (options.attention != AttentionLowering::Dense) {
    ctx->loadDialect<bufferization::BufferizationDialect,
                     memref::MemRefDialect>();
    populateTiledAttentionPatterns(patterns);
  }
  if (failed(applyPatternsGreedily(module, std::move(patterns))))
    return module.emitError() << "lowering aim to linalg did not converge";
  WalkResult left = module.walk([](Operation *op) {
    if (isa<AimDialect>(op->getDialect()) &&
        !isa<AttentionKernelOp, AttentionGradKernelOp>(op)) {
      op->emitOpError() << "has no host lowering yet";
      return WalkResult::interrupt();
    }
    return WalkResult::advance();
  });
  return failure(left.wasInterrupted());
}
