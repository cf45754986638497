//===- GemmCalls.cpp - GEMMs as calls of a cblas_sgemm-shaped function ----===//
#include "codegen/kernels/GemmCalls.h"

#include "codegen/kernels/LowerToLinalg.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/MemRef/Utils/MemRefUtils.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/IR/Builders.h"

namespace mlir::aim {

Value dataPointer(OpBuilder &b, Location loc, Value memref,
                  Value elementOffset) {
  Value base = memref::ExtractAlignedPointerAsIndexOp::create(b, loc, memref);
  auto metadata = memref::ExtractStridedMetadataOp::create(b, loc, memref);
  Value elements = metadata.getOffset();
  if (elementOffset)
    elements = arith::AddIOp::create(b, loc, elements, elementOffset);
  Value bytes = arith::MulIOp::create(
      b, loc, elements,
      arith::ConstantIndexOp::create(
          b, loc,
          cast<MemRefType>(memref.getType()).getElementTypeBitWidth() / 8));
  Value address = arith::IndexCastOp::create(
      b, loc, b.getI64Type(), arith::AddIOp::create(b, loc, base, bytes));
  return LLVM::IntToPtrOp::create(
      b, loc, LLVM::LLVMPointerType::get(b.getContext()), address);
}

// As a float32: its low 16 bits cleared, rounded to nearest, ties to even,
// in integer arithmetic (the host has no bfloat16 conversion to call).
Value roundToBf16(OpBuilder &b, Location loc, Value x, bool asF32) {
  if (!asF32)
    return arith::TruncFOp::create(b, loc, b.getBF16Type(), x);
  Type i32 = b.getI32Type();
  auto constant = [&](int64_t v) {
    return arith::ConstantIntOp::create(b, loc, i32, v);
  };
  Value bits = arith::BitcastOp::create(b, loc, i32, x);
  Value odd = arith::AndIOp::create(
      b, loc, arith::ShRUIOp::create(b, loc, bits, constant(16)), constant(1));
  Value rounded = arith::AddIOp::create(
      b, loc, bits, arith::AddIOp::create(b, loc, odd, constant(0x7fff)));
  Value kept = arith::AndIOp::create(
      b, loc, rounded, constant(static_cast<int32_t>(0xffff0000)));
  return arith::BitcastOp::create(b, loc, b.getF32Type(), kept);
}

namespace {

constexpr int64_t kRowMajor = 101, kNoTrans = 111, kTrans = 112;

bool isContiguousF32(Value v) {
  auto t = dyn_cast<MemRefType>(v.getType());
  return t && t.getElementType().isF32() &&
         memref::isStaticShapeAndContiguousRowMajor(t);
}

/// A float32 buffer with a static layout (strides and offset): a view a
/// BLAS reads through its leading dimension, or a copy reads.
bool isStaticStridedF32(Value v) {
  auto t = dyn_cast<MemRefType>(v.getType());
  SmallVector<int64_t> strides;
  int64_t offset = 0;
  return t && t.getElementType().isF32() && t.hasStaticShape() &&
         succeeded(t.getStridesAndOffset(strides, offset)) &&
         !ShapedType::isDynamic(offset) &&
         llvm::none_of(strides, ShapedType::isDynamic);
}

bool isContiguousBf16(Value v) {
  auto t = dyn_cast<MemRefType>(v.getType());
  return t && t.getElementType().isBF16() &&
         memref::isStaticShapeAndContiguousRowMajor(t);
}

/// The declaration of `symbol` with cblas_sgemm's signature, made on first
/// use.
func::FuncOp gemmDeclaration(ModuleOp module, StringRef symbol) {
  if (auto f = module.lookupSymbol<func::FuncOp>(symbol))
    return f;
  MLIRContext *ctx = module.getContext();
  OpBuilder b(ctx);
  Type i32 = b.getI32Type(), f32 = b.getF32Type();
  auto ptr = LLVM::LLVMPointerType::get(ctx);
  auto type = b.getFunctionType(
      {i32, i32, i32, i32, i32, i32, f32, ptr, i32, ptr, i32, f32, ptr, i32},
      {});
  b.setInsertionPointToStart(module.getBody());
  auto f = func::FuncOp::create(b, module.getLoc(), symbol, type);
  f.setPrivate();
  return f;
}

/// The declaration of `symbol` with cblas_sgemm's signature plus a stride
/// after each matrix (i64) and the batch count last (i32), made on first use.
func::FuncOp stridedBatchedDeclaration(ModuleOp module, StringRef symbol) {
  if (auto f = module.lookupSymbol<func::FuncOp>(symbol))
    return f;
  MLIRContext *ctx = module.getContext();
  OpBuilder b(ctx);
  Type i32 = b.getI32Type(), i64 = b.getI64Type(), f32 = b.getF32Type();
  auto ptr = LLVM::LLVMPointerType::get(ctx);
  auto type = b.getFunctionType({i32, i32, i32, i32, i32, i32, f32, ptr, i32,
                                 i64, ptr, i32, i64, f32, ptr, i32, i64, i32},
                                {});
  b.setInsertionPointToStart(module.getBody());
  auto f = func::FuncOp::create(b, module.getLoc(), symbol, type);
  f.setPrivate();
  return f;
}

/// The declaration of `symbol` with aimcCudaGemm's signature (GemmCalls.h),
/// made on first use.
func::FuncOp epilogueDeclaration(ModuleOp module, StringRef symbol) {
  if (auto f = module.lookupSymbol<func::FuncOp>(symbol))
    return f;
  MLIRContext *ctx = module.getContext();
  OpBuilder b(ctx);
  Type i32 = b.getI32Type(), f32 = b.getF32Type();
  auto ptr = LLVM::LLVMPointerType::get(ctx);
  auto type = b.getFunctionType({i32, i32, i32, i32, i32, i32, i32, f32, ptr,
                                 i32, ptr, i32, f32, ptr, i32, ptr, i32, ptr},
                                {});
  b.setInsertionPointToStart(module.getBody());
  auto f = func::FuncOp::create(b, module.getLoc(), symbol, type);
  f.setPrivate();
  return f;
}

Value integer(OpBuilder &b, Location loc, unsigned bits, int64_t v) {
  return arith::ConstantIntOp::create(b, loc, b.getIntegerType(bits), v);
}

/// The arguments cblas_sgemm starts with: row-major, the transpositions,
/// M, N, K.
SmallVector<Value> gemmPrologue(OpBuilder &b, Location loc, bool transposeA,
                                bool transposeB, int64_t m, int64_t n,
                                int64_t k) {
  return {integer(b, loc, 32, kRowMajor),
          integer(b, loc, 32, transposeA ? kTrans : kNoTrans),
          integer(b, loc, 32, transposeB ? kTrans : kNoTrans),
          integer(b, loc, 32, m),
          integer(b, loc, 32, n),
          integer(b, loc, 32, k)};
}

/// C = op(A) op(B) + beta C through `gemm`, row-major, alpha 1.
void callGemm(OpBuilder &b, Location loc, func::FuncOp gemm, bool transposeA,
              bool transposeB, int64_t m, int64_t n, int64_t k, Value a,
              int64_t lda, Value bm, int64_t ldb, float beta, Value c,
              int64_t ldc) {
  SmallVector<Value> args =
      gemmPrologue(b, loc, transposeA, transposeB, m, n, k);
  Value one = arith::ConstantOp::create(b, loc, b.getF32FloatAttr(1.0));
  Value betaValue = arith::ConstantOp::create(b, loc, b.getF32FloatAttr(beta));
  args.append({one, a, integer(b, loc, 32, lda), bm, integer(b, loc, 32, ldb),
               betaValue, c, integer(b, loc, 32, ldc)});
  func::CallOp::create(b, loc, gemm, args);
}

/// The buffer `v` views, through reshapes (the whole of it).
Value reshapedFrom(Value v) {
  while (Operation *def = v.getDefiningOp()) {
    if (!isa<memref::CollapseShapeOp, memref::ExpandShapeOp>(def))
      break;
    v = def->getOperand(0);
  }
  return v;
}

/// The beta of `gemm`'s call: 0 where the op just before it fills the whole
/// of its output with zeros -- that fill is erased: a BLAS with beta 0 does
/// not read C, so the GEMM writes it once instead of twice --, else 1.
float betaErasingZeroFill(linalg::GenericOp gemm) {
  Value c = reshapedFrom(gemm.getDpsInits()[0]);
  for (Value input : gemm.getDpsInputs())
    if (reshapedFrom(input) == c)
      return 1; // the zeros are read as an operand too
  for (Operation *prev = gemm->getPrevNode(); prev;
       prev = prev->getPrevNode()) {
    if (isa<memref::CollapseShapeOp, memref::ExpandShapeOp,
            memref::ExtractAlignedPointerAsIndexOp,
            memref::ExtractStridedMetadataOp, arith::ConstantOp>(prev))
      continue; // no memory written
    auto fill = dyn_cast<linalg::FillOp>(prev);
    if (!fill || reshapedFrom(fill.getOutputs()[0]) != c)
      return 1;
    auto zero = fill.getInputs()[0].getDefiningOp<arith::ConstantOp>();
    auto value = zero ? dyn_cast<FloatAttr>(zero.getValue()) : FloatAttr();
    if (!value || !value.getValue().isPosZero())
      return 1;
    fill->erase();
    return 0;
  }
  return 1;
}

/// Element strides of the loops (o, i, m, n, k) in an operand read through
/// `map` (a permutation of some of them): the stride of the buffer
/// dimension each loop indexes (its layout's: a view such as q inside qkv
/// has rows longer than its own), 0 for the loops it ignores.
std::optional<SmallVector<int64_t>> loopStrides(Value operand, AffineMap map) {
  SmallVector<int64_t> bufferStrides;
  int64_t offset = 0;
  if (failed(cast<MemRefType>(operand.getType())
                 .getStridesAndOffset(bufferStrides, offset)) ||
      llvm::any_of(bufferStrides, ShapedType::isDynamic))
    return std::nullopt;
  SmallVector<int64_t> strides(map.getNumDims(), 0);
  for (auto [r, stride] : llvm::enumerate(bufferStrides)) {
    auto dim = dyn_cast<AffineDimExpr>(map.getResult(r));
    if (!dim)
      return std::nullopt;
    strides[dim.getPosition()] = stride;
  }
  return strides;
}

bool roundsOperands(GemmOperands operands) {
  return operands != GemmOperands::F32;
}

/// The element type of a GEMM operand's copy.
Type copyElementType(OpBuilder &b, Value operand, GemmOperands operands) {
  return operands == GemmOperands::BF16
             ? b.getBF16Type()
             : cast<MemRefType>(operand.getType()).getElementType();
}

/// An element-wise copy between `operand`, read or written through
/// `operandMap` (over the buffer's dimensions), and the identity-laid-out
/// `buffer`; copied into the buffer, rounded as `rounding` asks.
void copyBetween(OpBuilder &b, Location loc, Value operand, Value buffer,
                 AffineMap operandMap, bool toBuffer,
                 GemmOperands rounding = GemmOperands::F32) {
  unsigned rank = operandMap.getNumDims();
  AffineMap identity = b.getMultiDimIdentityMap(rank);
  SmallVector<utils::IteratorType> parallel(rank,
                                            utils::IteratorType::parallel);
  Value from = toBuffer ? operand : buffer, to = toBuffer ? buffer : operand;
  AffineMap fromMap = toBuffer ? operandMap : identity,
            toMap = toBuffer ? identity : operandMap;
  linalg::GenericOp::create(
      b, loc, ValueRange{from}, ValueRange{to},
      ArrayRef<AffineMap>{fromMap, toMap}, parallel,
      [&](OpBuilder &nb, Location l, ValueRange args) {
        Value x = args[0];
        if (toBuffer && roundsOperands(rounding))
          x = roundToBf16(nb, l, x, rounding == GemmOperands::BF16AsF32);
        linalg::YieldOp::create(nb, l, x);
      });
}

/// A GEMM operand copied to a fresh buffer of its shape, rounded as
/// `operands` asks (the caller deallocates it).
Value roundedCopy(OpBuilder &b, Location loc, Value operand,
                  GemmOperands operands) {
  auto type = cast<MemRefType>(operand.getType());
  Value buffer = memref::AllocOp::create(
      b, loc,
      MemRefType::get(type.getShape(), copyElementType(b, operand, operands)));
  copyBetween(b, loc, operand, buffer, b.getMultiDimIdentityMap(type.getRank()),
              /*toBuffer=*/true, operands);
  return buffer;
}

/// Whether the batch loops (o, i) of an operand with loop strides `s` are one
/// batch of range[O] x range[I] with a single stride: offset(o, i) =
/// (o range[I] + i) s[I].
bool uniformBatch(ArrayRef<int64_t> s, ArrayRef<int64_t> range) {
  return s[0] == s[1] * range[1];
}

/// A new buffer holding `operand` (read through `map` over the loops
/// (o, i, m, n, k)) with its o and i dimensions first, so that it is one
/// uniform batch (uniformBatch); its map in the GEMM is returned too. The
/// copy in is made when `copyIn`; the caller copies out and deallocates.
/// Attention's q, k, v and its output are [B, N, heads, dh] views, batches of
/// (sample, head) whose offsets are not one stride: copied to
/// [B, heads, N, dh], each product is one cuBLASLt call instead of one per
/// sample (aim-600m: 1344 calls a step, 38 ms of a 312 ms fp32 step, at
/// 7 TFLOP/s).
std::pair<Value, AffineMap>
batchMajorBuffer(OpBuilder &b, Location loc, Value operand, AffineMap map,
                 bool copyIn, GemmOperands rounding = GemmOperands::F32) {
  auto type = cast<MemRefType>(operand.getType());
  unsigned rank = map.getNumResults();
  SmallVector<unsigned> order; // operand dims, in the new buffer's order
  for (unsigned loop : {0u, 1u})
    for (unsigned r = 0; r < rank; ++r)
      if (map.getDimPosition(r) == loop)
        order.push_back(r);
  for (unsigned r = 0; r < rank; ++r)
    if (map.getDimPosition(r) > 1)
      order.push_back(r);
  SmallVector<int64_t> shape;
  SmallVector<AffineExpr> gemmResults, readResults(rank);
  for (auto [position, r] : llvm::enumerate(order)) {
    shape.push_back(type.getDimSize(r));
    gemmResults.push_back(map.getResult(r));
    readResults[r] = b.getAffineDimExpr(position);
  }
  auto bufferType =
      MemRefType::get(shape, copyElementType(b, operand, rounding));
  Value buffer = memref::AllocOp::create(b, loc, bufferType);
  if (copyIn)
    copyBetween(b, loc, operand, buffer,
                AffineMap::get(rank, 0, readResults, b.getContext()),
                /*toBuffer=*/true, rounding);
  return {buffer,
          AffineMap::get(map.getNumDims(), 0, gemmResults, b.getContext())};
}

/// A batch of GEMMs (kBatchedGemmAttrName) as calls, each operand addressed
/// at its offset with its own leading dimension. With a strided-batched
/// function (the GPU): one call for the whole batch, operands whose (o, i)
/// offsets are not one stride copied to batch-major buffers first
/// (batchMajorBuffer; the result copied back); else two loops of calls, one
/// GEMM per (o, i). False (and nothing changed) where a layout is not one a
/// BLAS reads: a matrix without a unit-stride dimension.
bool callBatchedGemm(linalg::GenericOp op, func::FuncOp gemm,
                     func::FuncOp stridedBatched, GemmOperands rounding) {
  enum { O, I, M, N, K };
  Value a = op.getDpsInputs()[0], bm = op.getDpsInputs()[1],
        c = op.getDpsInits()[0];
  // A or B may be bfloat16 already (attention's N x N operands, rounded
  // before fusion: LowerToLinalg.cpp); then the call reads bfloat16 both.
  auto roundedBefore = [&](Value v) {
    return rounding == GemmOperands::BF16 && isContiguousBf16(v);
  };
  // A and B may be views (attention's q, k and v inside qkv): read through
  // their strides, or copied batch-major.
  if (!isContiguousF32(c) || !llvm::all_of(ValueRange{a, bm}, [&](Value v) {
        return isStaticStridedF32(v) || roundedBefore(v);
      }))
    return false;
  SmallVector<AffineMap> maps = op.getIndexingMapsArray();
  auto sa = loopStrides(a, maps[0]), sb = loopStrides(bm, maps[1]),
       sc = loopStrides(c, maps[2]);
  if (!sa || !sb || !sc || (*sc)[N] != 1)
    return false;
  bool transposeA = (*sa)[K] != 1, transposeB = (*sb)[N] != 1;
  if ((transposeA && (*sa)[M] != 1) || (transposeB && (*sb)[K] != 1))
    return false;
  SmallVector<int64_t> range = op.getStaticLoopRanges();
  // Every operand must index both batch loops to be made batch-major.
  auto batched = [](AffineMap map) {
    return map.isFunctionOfDim(O) && map.isFunctionOfDim(I);
  };
  bool oneCall = stridedBatched && llvm::all_of(maps, batched);
  if (!oneCall && (roundedBefore(a) || roundedBefore(bm)))
    return false; // the per-GEMM calls read float32: stays a loop nest
  const float beta = betaErasingZeroFill(op);
  OpBuilder b(op);
  Location loc = op.getLoc();
  auto index = [&](int64_t v) {
    return arith::ConstantIndexOp::create(b, loc, v).getResult();
  };
  if (oneCall) {
    Value operands[3] = {a, bm, c};
    std::optional<SmallVector<int64_t>> *strides[3] = {&sa, &sb, &sc};
    Value cBuffer;
    for (int x = 0; x < 3; ++x) {
      // A and B are copied when rounded here (batch-major on the way); C,
      // and operands rounded before, only when not one uniform batch.
      bool rounded =
          x < 2 && roundsOperands(rounding) && !roundedBefore(operands[x]);
      if (!rounded && uniformBatch(**strides[x], range))
        continue;
      auto [buffer, map] = batchMajorBuffer(
          b, loc, operands[x], maps[x], /*copyIn=*/x < 2 || beta != 0,
          rounded ? rounding : GemmOperands::F32);
      operands[x] = buffer;
      maps[x] = map;
      *strides[x] = loopStrides(buffer, map);
      if (x == 2)
        cBuffer = buffer;
    }
    auto int32 = [&](int64_t v) { return integer(b, loc, 32, v); };
    auto int64 = [&](int64_t v) { return integer(b, loc, 64, v); };
    int64_t lda = transposeA ? (*sa)[K] : (*sa)[M];
    int64_t ldb = transposeB ? (*sb)[N] : (*sb)[K];
    SmallVector<Value> args = gemmPrologue(b, loc, transposeA, transposeB,
                                           range[M], range[N], range[K]);
    Value one = arith::ConstantOp::create(b, loc, b.getF32FloatAttr(1.0));
    Value betaValue =
        arith::ConstantOp::create(b, loc, b.getF32FloatAttr(beta));
    args.append({one, dataPointer(b, loc, operands[0]), int32(lda),
                 int64((*sa)[I]), dataPointer(b, loc, operands[1]), int32(ldb),
                 int64((*sb)[I]), betaValue, dataPointer(b, loc, operands[2]),
                 int32((*sc)[M]), int64((*sc)[I]), int32(range[O] * range[I])});
    func::CallOp::create(b, loc, stridedBatched, args);
    if (cBuffer) {
      // The same permutation as the copy in: back through c's own map.
      AffineMap cMap = op.getIndexingMapsArray()[2];
      SmallVector<AffineExpr> results(cMap.getNumResults());
      for (unsigned r = 0; r < cMap.getNumResults(); ++r)
        for (unsigned p = 0; p < maps[2].getNumResults(); ++p)
          if (maps[2].getResult(p) == cMap.getResult(r))
            results[r] = b.getAffineDimExpr(p);
      copyBetween(
          b, loc, c, cBuffer,
          AffineMap::get(cMap.getNumResults(), 0, results, b.getContext()),
          /*toBuffer=*/false);
    }
    for (int x = 0; x < 3; ++x)
      if (operands[x] != (x == 0 ? a : x == 1 ? bm : c))
        memref::DeallocOp::create(b, loc, operands[x]);
    op->erase();
    return true;
  }
  // Rounded copies keep the operands' shapes, row-major: a view's copy
  // has its own strides.
  Value roundedA, roundedB;
  if (roundsOperands(rounding)) {
    a = roundedA = roundedCopy(b, loc, a, rounding);
    bm = roundedB = roundedCopy(b, loc, bm, rounding);
    sa = loopStrides(a, maps[0]);
    sb = loopStrides(bm, maps[1]);
  }
  int64_t lda = transposeA ? (*sa)[K] : (*sa)[M];
  int64_t ldb = transposeB ? (*sb)[N] : (*sb)[K];
  auto freeRounded = [&] {
    OpBuilder after(op);
    for (Value copy : {roundedA, roundedB})
      if (copy)
        memref::DeallocOp::create(after, loc, copy);
  };
  auto outer = scf::ForOp::create(b, loc, index(0), index(range[O]), index(1));
  b.setInsertionPointToStart(outer.getBody());
  if (stridedBatched) {
    // One call per o, the inner batch in it.
    auto at = [&](Value memref, ArrayRef<int64_t> strides) {
      return dataPointer(b, loc, memref,
                         arith::MulIOp::create(b, loc, outer.getInductionVar(),
                                               index(strides[O])));
    };
    auto int32 = [&](int64_t v) { return integer(b, loc, 32, v); };
    auto int64 = [&](int64_t v) { return integer(b, loc, 64, v); };
    SmallVector<Value> args = gemmPrologue(b, loc, transposeA, transposeB,
                                           range[M], range[N], range[K]);
    Value one = arith::ConstantOp::create(b, loc, b.getF32FloatAttr(1.0));
    Value betaValue =
        arith::ConstantOp::create(b, loc, b.getF32FloatAttr(beta));
    args.append({one, at(a, *sa), int32(lda), int64((*sa)[I]), at(bm, *sb),
                 int32(ldb), int64((*sb)[I]), betaValue, at(c, *sc),
                 int32((*sc)[M]), int64((*sc)[I]), int32(range[I])});
    func::CallOp::create(b, loc, stridedBatched, args);
    freeRounded();
    op->erase();
    return true;
  }
  auto inner = scf::ForOp::create(b, loc, index(0), index(range[I]), index(1));
  b.setInsertionPointToStart(inner.getBody());
  auto at = [&](Value memref, ArrayRef<int64_t> strides) {
    Value offset = arith::AddIOp::create(
        b, loc,
        arith::MulIOp::create(b, loc, outer.getInductionVar(),
                              index(strides[O])),
        arith::MulIOp::create(b, loc, inner.getInductionVar(),
                              index(strides[I])));
    return dataPointer(b, loc, memref, offset);
  };
  callGemm(b, loc, gemm, transposeA, transposeB, range[M], range[N], range[K],
           at(a, *sa), lda, at(bm, *sb), ldb, beta, at(c, *sc), (*sc)[M]);
  freeRounded();
  op->erase();
  return true;
}

/// A GEMM with its epilogue (kGemmEpilogueAttrName) as one call of
/// `gemm` (aimcCudaGemm's signature): D = A op(B) + [1 residual] + [bias],
/// C the residual's buffer (beta 1) or none (beta 0, C = D, not read).
/// The name of the layer `loc` is in (its first NameLoc), or `loc` printed.
std::string siteOf(Location loc) {
  std::string site;
  loc->walk([&](Location inner) {
    if (auto name = dyn_cast<NameLoc>(inner)) {
      site = name.getName().str();
      return WalkResult::interrupt();
    }
    return WalkResult::advance();
  });
  if (site.empty())
    llvm::raw_string_ostream(site) << loc;
  return site;
}

std::optional<GemmChoice> callEpilogueGemm(linalg::GenericOp op,
                                           func::FuncOp gemm,
                                           GemmOperands operands,
                                           GeneratedGemms generated) {
  auto has = op->getAttrOfType<DenseI64ArrayAttr>(kGemmEpilogueAttrName);
  ValueRange inputs = op.getDpsInputs();
  Value a = inputs[0], bm = inputs[1], d = op.getDpsInits()[0];
  unsigned next = 2;
  Value bias = has[0] ? inputs[next++] : Value();
  Value residual = has[1] ? inputs[next++] : Value();
  SmallVector<Value> buffers = {d};
  for (Value v : {bias, residual})
    if (v)
      buffers.push_back(v);
  // A and B: float32, or bfloat16 both (rounded before fusion,
  // kGemmOperandsRoundedAttrName).
  bool bf16 = isContiguousBf16(a) && isContiguousBf16(bm);
  if (!llvm::all_of(buffers, isContiguousF32) ||
      !(bf16 || (isContiguousF32(a) && isContiguousF32(bm))))
    return std::nullopt; // stays a loop nest (its body adds the epilogue)
  const bool roundHere =
      roundsOperands(operands) && !op->hasAttr(kGemmOperandsRoundedAttrName);
  auto flags = op->getAttrOfType<DenseI64ArrayAttr>(kGemmAttrName);
  bool transposeA = flags[0] != 0, transposeB = flags[1] != 0;
  auto aShape = cast<MemRefType>(a.getType()).getShape();
  auto bShape = cast<MemRefType>(bm.getType()).getShape();
  auto dShape = cast<MemRefType>(d.getType()).getShape();
  int64_t m = dShape[0], n = dShape[1], k = transposeA ? aShape[0] : aShape[1];
  OpBuilder b(op);
  Location loc = op.getLoc();
  Value roundedA, roundedB;
  if (roundHere) {
    a = roundedA = roundedCopy(b, loc, a, operands);
    bm = roundedB = roundedCopy(b, loc, bm, operands);
    bf16 = operands == GemmOperands::BF16;
  }
  auto freeRounded = [&] {
    for (Value copy : {roundedA, roundedB})
      if (copy)
        memref::DeallocOp::create(b, loc, copy);
  };
  GemmChoice choice{siteOf(loc), m,          n,          k,
                    transposeA,  transposeB, bool(bias), bool(residual)};
  // The generated kernel reads bfloat16 values only (rounded here or
  // before fusion), as bfloat16 on the GPU, as float32 on the host.
  const bool bf16Values =
      roundsOperands(operands) || op->hasAttr(kGemmOperandsRoundedAttrName);
  if (generated.kernel == GemmKernel::Wgmma && bf16Values &&
      wgmmaGemmApplies(transposeA, transposeB, cast<MemRefType>(a.getType()),
                       cast<MemRefType>(bm.getType()))) {
    emitWgmmaGemm(b, loc, generated.target, a, bm, d, bias, residual);
    freeRounded();
    op->erase();
    choice.kernel = GemmKernel::Wgmma;
    return choice;
  }
  auto ptr = LLVM::LLVMPointerType::get(b.getContext());
  Value dPointer = dataPointer(b, loc, d);
  SmallVector<Value> args = {integer(b, loc, 32, bf16 ? 1 : 0)};
  llvm::append_range(args,
                     gemmPrologue(b, loc, transposeA, transposeB, m, n, k));
  args.append({arith::ConstantOp::create(b, loc, b.getF32FloatAttr(1.0)),
               dataPointer(b, loc, a), integer(b, loc, 32, aShape[1]),
               dataPointer(b, loc, bm), integer(b, loc, 32, bShape[1]),
               arith::ConstantOp::create(
                   b, loc, b.getF32FloatAttr(residual ? 1.0 : 0.0)),
               residual ? dataPointer(b, loc, residual) : dPointer,
               integer(b, loc, 32, n), dPointer, integer(b, loc, 32, n),
               bias ? dataPointer(b, loc, bias)
                    : LLVM::ZeroOp::create(b, loc, ptr).getResult()});
  func::CallOp::create(b, loc, gemm, args);
  freeRounded();
  op->erase();
  return choice;
}

} // namespace

namespace {
/// The body of a host stand-in `f` (a declaration until now) that calls
/// `gemm`: its entry block and a builder at its end.
struct StandIn {
  func::FuncOp gemm;
  Block *body;
  OpBuilder b;
  Location loc;
};
std::optional<StandIn> beginStandIn(ModuleOp module, func::FuncOp f,
                                    StringRef gemmSymbol) {
  if (!f.isDeclaration())
    return std::nullopt; // defined already
  Block *body = f.addEntryBlock();
  return StandIn{gemmDeclaration(module, gemmSymbol), body,
                 OpBuilder::atBlockEnd(body), f.getLoc()};
}
} // namespace

void defineStridedBatchedLoop(ModuleOp module, StringRef symbol,
                              StringRef gemmSymbol) {
  std::optional<StandIn> in = beginStandIn(
      module, stridedBatchedDeclaration(module, symbol), gemmSymbol);
  if (!in)
    return;
  // References, not a structured binding: lambdas below capture them.
  func::FuncOp gemm = in->gemm;
  Block *body = in->body;
  OpBuilder &b = in->b;
  Location loc = in->loc;
  MLIRContext *ctx = module.getContext();
  // (layout, transA, transB, m, n, k, alpha, a, lda, strideA, b, ldb,
  //  strideB, beta, c, ldc, strideC, batch)
  auto arg = [&](unsigned i) { return body->getArgument(i); };
  Value batch = arith::IndexCastOp::create(b, loc, b.getIndexType(), arg(17));
  auto loop =
      scf::ForOp::create(b, loc, arith::ConstantIndexOp::create(b, loc, 0),
                         batch, arith::ConstantIndexOp::create(b, loc, 1));
  b.setInsertionPointToStart(loop.getBody());
  Value i = arith::IndexCastOp::create(b, loc, b.getI64Type(),
                                       loop.getInductionVar());
  auto ptr = LLVM::LLVMPointerType::get(ctx);
  auto at = [&](unsigned matrix, unsigned stride) -> Value {
    Value offset = arith::MulIOp::create(b, loc, i, arg(stride));
    return LLVM::GEPOp::create(b, loc, ptr, b.getF32Type(), arg(matrix),
                               ValueRange{offset});
  };
  func::CallOp::create(b, loc, gemm,
                       ValueRange{arg(0), arg(1), arg(2), arg(3), arg(4),
                                  arg(5), arg(6), at(7, 9), arg(8), at(10, 12),
                                  arg(11), arg(13), at(14, 16), arg(15)});
  b.setInsertionPointToEnd(body);
  func::ReturnOp::create(b, loc);
}

void defineEpilogueGemm(ModuleOp module, StringRef symbol,
                        StringRef gemmSymbol) {
  std::optional<StandIn> in =
      beginStandIn(module, epilogueDeclaration(module, symbol), gemmSymbol);
  if (!in)
    return;
  // References, not a structured binding: lambdas below capture them.
  func::FuncOp gemm = in->gemm;
  Block *body = in->body;
  OpBuilder &b = in->b;
  Location loc = in->loc;
  MLIRContext *ctx = module.getContext();
  // (operands, layout, transA, transB, m, n, k, alpha, a, lda, b, ldb, beta,
  //  c, ldc, d, ldd, bias)
  auto arg = [&](unsigned i) { return body->getArgument(i); };
  auto ptr = LLVM::LLVMPointerType::get(ctx);
  Type f32 = b.getF32Type(), i64 = b.getI64Type();
  auto index = [&](Value v) {
    return arith::IndexCastOp::create(b, loc, b.getIndexType(), v).getResult();
  };
  Value zero = arith::ConstantOp::create(b, loc, b.getF32FloatAttr(0.0));
  Value hasBias = LLVM::ICmpOp::create(b, loc, LLVM::ICmpPredicate::ne, arg(17),
                                       LLVM::ZeroOp::create(b, loc, ptr));
  Value readsC =
      arith::CmpFOp::create(b, loc, arith::CmpFPredicate::UNE, arg(12), zero);
  auto c0 = arith::ConstantIndexOp::create(b, loc, 0);
  auto c1 = arith::ConstantIndexOp::create(b, loc, 1);
  // D[i, j] = bias[j] + beta C[i, j] (each where present)...
  auto rows = scf::ForOp::create(b, loc, c0, index(arg(4)), c1);
  b.setInsertionPointToStart(rows.getBody());
  auto cols = scf::ForOp::create(b, loc, c0, index(arg(5)), c1);
  b.setInsertionPointToStart(cols.getBody());
  auto toI64 = [&](Value v) {
    return arith::IndexCastOp::create(b, loc, i64, v).getResult();
  };
  Value i = toI64(rows.getInductionVar()), j = toI64(cols.getInductionVar());
  auto at = [&](Value base, Value offset) {
    return LLVM::GEPOp::create(b, loc, ptr, f32, base, ValueRange{offset});
  };
  auto rowMajor = [&](Value ld) {
    return arith::AddIOp::create(
        b, loc,
        arith::MulIOp::create(b, loc, i,
                              arith::ExtSIOp::create(b, loc, i64, ld)),
        j);
  };
  auto loadIf = [&](Value condition, Value base, Value offset) {
    auto choice = scf::IfOp::create(
        b, loc, condition,
        [&](OpBuilder &tb, Location tl) {
          Value v = LLVM::LoadOp::create(
              tb, tl, f32,
              LLVM::GEPOp::create(tb, tl, ptr, f32, base, ValueRange{offset}));
          scf::YieldOp::create(tb, tl, v);
        },
        [&](OpBuilder &eb, Location el) {
          scf::YieldOp::create(eb, el, zero);
        });
    return choice.getResult(0);
  };
  Value start = arith::AddFOp::create(
      b, loc, loadIf(hasBias, arg(17), j),
      arith::MulFOp::create(b, loc, arg(12),
                            loadIf(readsC, arg(13), rowMajor(arg(14)))));
  LLVM::StoreOp::create(b, loc, start, at(arg(15), rowMajor(arg(16))));
  // ... then D += alpha op(A) op(B).
  b.setInsertionPointToEnd(body);
  Value one = arith::ConstantOp::create(b, loc, b.getF32FloatAttr(1.0));
  func::CallOp::create(b, loc, gemm,
                       ValueRange{arg(1), arg(2), arg(3), arg(4), arg(5),
                                  arg(6), arg(7), arg(8), arg(9), arg(10),
                                  arg(11), one, arg(15), arg(16)});
  func::ReturnOp::create(b, loc);
}

std::vector<GemmChoice> callGemmFunction(ModuleOp module, StringRef symbol,
                                         StringRef stridedBatchedSymbol,
                                         GemmOperands operands,
                                         StringRef epilogueSymbol,
                                         GeneratedGemms generated) {
  std::vector<GemmChoice> choices;
  SmallVector<linalg::GenericOp> gemms, batches;
  module.walk([&](linalg::GenericOp op) {
    if (op->hasAttr(kGemmAttrName))
      gemms.push_back(op);
    if (op->hasAttr(kBatchedGemmAttrName))
      batches.push_back(op);
  });
  for (linalg::GenericOp op : batches) // else loops
    callBatchedGemm(
        op, gemmDeclaration(module, symbol),
        stridedBatchedSymbol.empty()
            ? func::FuncOp()
            : stridedBatchedDeclaration(module, stridedBatchedSymbol),
        operands);
  for (linalg::GenericOp op : gemms) {
    if (op->hasAttr(kGemmEpilogueAttrName)) {
      if (epilogueSymbol.empty())
        continue; // a loop nest
      if (std::optional<GemmChoice> choice =
              callEpilogueGemm(op, epilogueDeclaration(module, epilogueSymbol),
                               operands, generated))
        choices.push_back(std::move(*choice));
      continue;
    }
    Value a = op.getDpsInputs()[0], bm = op.getDpsInputs()[1],
          c = op.getDpsInits()[0];
    if (!llvm::all_of(ValueRange{a, bm, c}, isContiguousF32))
      continue; // stays a loop nest
    auto flags = op->getAttrOfType<DenseI64ArrayAttr>(kGemmAttrName);
    bool transposeA = flags[0] != 0, transposeB = flags[1] != 0;
    auto aShape = cast<MemRefType>(a.getType()).getShape();
    auto bShape = cast<MemRefType>(bm.getType()).getShape();
    auto cShape = cast<MemRefType>(c.getType()).getShape();
    int64_t m = cShape[0], n = cShape[1],
            k = transposeA ? aShape[0] : aShape[1];
    const float beta = betaErasingZeroFill(op);
    OpBuilder b(op);
    Location loc = op.getLoc();
    if (roundsOperands(operands)) {
      a = roundedCopy(b, loc, a, operands);
      bm = roundedCopy(b, loc, bm, operands);
    }
    callGemm(b, loc, gemmDeclaration(module, symbol), transposeA, transposeB, m,
             n, k, dataPointer(b, loc, a), aShape[1], dataPointer(b, loc, bm),
             bShape[1], beta, dataPointer(b, loc, c), n);
    if (roundsOperands(operands)) {
      OpBuilder after(op);
      memref::DeallocOp::create(after, loc, a);
      memref::DeallocOp::create(after, loc, bm);
    }
    op->erase();
  }
  return choices;
}

} // namespace mlir::aim
